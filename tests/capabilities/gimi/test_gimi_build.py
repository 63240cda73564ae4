"""GIMI build: a geo-images collection with its model, items at their places, and the search scale."""

import numpy as np
import pytest

from geoseek.capabilities.gimi.build import MODALITY, TASK


def test_build_stores_items_vectors_model_and_scale(geo_collection):
    col, images = geo_collection
    assert len(col) == len(images) == 6
    assert col.manifest["modality"] == MODALITY == "geo-images"
    extra = col.manifest["extra"]
    assert extra["task"] == TASK == "geo-image" and extra["geo_scale_m"] == 2000
    assert col.file("model.pt").is_file()
    item = col.get("img2")
    assert item.centroid == pytest.approx((14.50, 35.9)) and item.label == "c2"
    assert item.thumbnail  # PNG bytes kept for the web page
    vecs = col.vectors(["img0", "img1"])
    assert vecs.shape == (2, 16) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
