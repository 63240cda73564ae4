"""geoseek.capabilities.tiles.build: ``geoseek build osm`` → an osm-tiles collection."""

from __future__ import annotations

import io

import numpy as np


def test_build_stores_tiles_with_footprints_labels_thumbnails(built):
    from PIL import Image

    from geoseek.collection import Collection

    col = Collection.open(built[1])
    assert col.manifest["modality"] == "osm-tiles" and col.manifest["extra"]["zoom"] == 17
    assert 60 <= len(col) <= 150
    items = list(col.items())
    assert all(it.footprint is not None for it in items)
    assert {it.label for it in items} & {"commercial", "park"}
    it = col.get(items[0].id)
    img = Image.open(io.BytesIO(it.thumbnail))
    assert img.size == (64, 64)
    v = col.vector(items[0].id)
    assert v.shape == (128,) and abs(float(np.linalg.norm(v)) - 1) < 1e-4
