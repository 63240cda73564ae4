"""geoseek.capabilities.tiles.data: the labelled tiles of the training blocks."""

from __future__ import annotations

import numpy as np


def test_training_block_tiles_stay_out_of_held_out_blocks(helsinki):
    from geoseek.capabilities.tiles.data import load_features, training_block_tiles
    from geoseek.sources.render import xyz_bounds_m
    from geoseek.sources.tile_sampler import SpatialSplit

    split = SpatialSplit(block_m=500, holdout=0.5)
    tiles, labels, centers = training_block_tiles(load_features(helsinki), split, 25)
    assert len(tiles) == len(labels) == len(centers) and 0 < len(tiles) <= 25
    assert all(labels) and tiles.dtype == np.uint8
    from geoseek.sources.layers import LAND_USE_LAYERS, LAYER_INDEX

    assert not tiles[:, [LAYER_INDEX[n] for n in LAND_USE_LAYERS]].any()  # land use hidden
    from geoseek.geo import lonlat_to_mercator_m

    assert not split.held_out_xy(lonlat_to_mercator_m(centers)).any()


def test_training_block_windows_stay_out_of_held_out_blocks(helsinki):
    """With 250 m windows (wider than Helsinki's 153 m z17 tiles) the whole window, not just the tile, is in training blocks."""
    from geoseek.capabilities.tiles.data import TILE_GROUND_M, load_features, tile_input_bounds_m, training_block_tiles
    from geoseek.geo import lonlat_to_tile
    from geoseek.sources.tile_sampler import SpatialSplit

    split = SpatialSplit(block_m=500, holdout=0.5)
    _, _, centers = training_block_tiles(load_features(helsinki), split, 25)
    assert len(centers)
    windows = np.array([tile_input_bounds_m(17, *lonlat_to_tile(lon, lat, 17), TILE_GROUND_M) for lon, lat in centers])
    assert (split.split_of_bounds(windows) == "train").all()


def test_region_tiles_render_the_model_input_at_ground_m(helsinki):
    from geoseek.capabilities.tiles.data import TILE_GROUND_M, load_features, region_tiles, render_tile
    from geoseek.sources.render import dominant_land_use_batch, render_xyz

    feats = load_features(helsinki)
    xyz_tiles = region_tiles(feats, size=32, ground_m=None)
    win = region_tiles(feats, size=32)  # default: TILE_GROUND_M
    for et, render in ((xyz_tiles, lambda z, x, y: render_xyz(feats, z, x, y, 32)),
                       (win, lambda z, x, y: render_tile(feats, z, x, y, 32, TILE_GROUND_M))):
        assert len(et.tiles) > 50
        for i in (0, len(et.tiles) // 2, len(et.tiles) - 1):
            assert np.array_equal(et.tiles[i], render(*(int(v) for v in et.xyz[i])))
        assert et.labels == dominant_land_use_batch(et.tiles)  # labels read from what the model sees
    # the same XYZ tile, two inputs: Helsinki's z17 tiles are 153 m wide, the windows 250 m
    row = {tuple(r): i for i, r in enumerate(win.xyz.tolist())}
    pairs = [(i, row[tuple(r)]) for i, r in enumerate(xyz_tiles.xyz.tolist()) if tuple(r) in row]
    assert pairs and sum(not np.array_equal(xyz_tiles.tiles[i], win.tiles[j]) for i, j in pairs) > 0.9 * len(pairs)
