"""Building a sketch-searchable collection from image folders."""

from __future__ import annotations

import numpy as np


def test_build_stores_items_vectors_tokens_and_labels(built):
    from geoseek.collection import Collection

    col = Collection.open(built)
    assert col.manifest["modality"] == "aerial-image" and len(col) == 30
    tokens = col.array("tokens")
    assert tokens.dtype == np.float16 and tokens.shape == (30, 1 + 8, 32)
    assert col.get("discs/0").label == "discs"
    col.close()
