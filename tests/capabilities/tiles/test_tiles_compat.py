"""The old import path ``geoseek.tiles`` still re-exports what it defined, from the new package."""

from __future__ import annotations


def test_old_module_re_exports_the_package_names():
    import geoseek.tiles as old
    from geoseek.capabilities import tiles
    from geoseek.capabilities.common import save_json
    from geoseek.capabilities.tiles import evaluate, search

    for name in ("TileTrainConfig", "TileTripletTask", "train_tiles", "evaluate_tiles", "build_osm_collection",
                 "similar", "arithmetic", "interpolate", "basemap_png", "land_use_loss", "ensemble_checkpoints",
                 "member_path", "load_features", "embed_tiles", "knn_report", "MODALITY", "DEFAULT_ZOOM"):
        assert getattr(old, name) is getattr(tiles, name), name
    assert old._raw_vectors is evaluate.raw_vectors
    assert old._CollectionContext is search.CollectionContext
    assert old.save_json is save_json
