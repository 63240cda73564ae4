"""Data sources: OSM extracts, rasters and image folders, sketches; all turned into scenes."""
