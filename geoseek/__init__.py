"""geoseek: find places and geographic scenes by sketch, by image, or by location.

Coordinates are (lon, lat) in degrees, WGS84, everywhere unless a name says otherwise.
Importing the package has no side effects; subpackages are imported on use.
"""

__version__ = "0.1.0"
