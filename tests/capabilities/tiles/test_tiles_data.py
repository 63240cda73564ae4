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
