"""The old import path ``geoseek.sketch_image`` still re-exports its names."""

from __future__ import annotations


def test_old_module_reexports_the_package_names():
    import geoseek.sketch_image as old
    from geoseek.capabilities import sketch_image as new
    from geoseek.capabilities.common import collection_model
    from geoseek.capabilities.sketch_image.search import search_drawing, search_ink_maps

    for name in new.__all__:
        assert getattr(old, name) is getattr(new, name), name
    assert old.search_sketch is search_drawing and old.search_sketches is search_ink_maps
    assert old.rerank_fn is new.rerank and old.collection_model is collection_model
    assert old.TASK == "sketch-image" and old.MODALITY == "aerial-image"
