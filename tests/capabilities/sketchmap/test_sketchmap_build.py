"""Scene collections: ``build_scene_collection`` stores scenes with footprints, rasters and the model."""

from __future__ import annotations


def test_collection_holds_scenes(scene_collection):
    from geoseek.collection import Collection

    col = Collection.open(scene_collection)
    assert col.manifest["modality"] == "osm-scenes" and len(col) >= 4
    assert col.array("rasters").shape == (len(col), 14, 32, 32)
    item = next(iter(col.items()))
    assert item.id.startswith("scene/") and item.footprint is not None
