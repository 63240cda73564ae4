"""Loc2Vec triplet sampling: distances of positives and negatives, content, spatial split."""

from __future__ import annotations

import numpy as np
from shapely.geometry import box

from geoseek.geo import haversine_m
from geoseek.sources.osm import features_from_geometries
from geoseek.sources.tile_sampler import SpatialSplit, TileTripletSampler, TripletConfig, far_enough, offset_lonlat


def city(n: int = 40, step_deg: float = 0.002):
    """A 40 × 40 grid of 60 m buildings over ~7 km at 47° N (enough room for 2 km negatives)."""
    geoms = []
    for i in range(n):
        for j in range(n):
            lon, lat = 9.5 + i * step_deg, 47.0 + j * step_deg * 0.7
            geoms.append(box(lon, lat, lon + 0.0008, lat + 0.0005))
    return features_from_geometries({"building": geoms})


def test_offset_lonlat_distance():
    lon, lat = offset_lonlat(9.5, 47.0, 1234.0, 1.0)
    assert abs(float(np.ravel(haversine_m(np.array([9.5, 47.0]), np.array([lon, lat])))[0]) - 1234.0) < 1.0


def test_triplet_distances_and_content():
    cfg = TripletConfig(split=None, size=64)
    s = TileTripletSampler(city(), cfg)
    tiles, centers = s.sample(12, np.random.default_rng(0))
    assert tiles.shape == (3, 12, 14, 64, 64) and tiles.dtype == np.uint8
    d_pos = haversine_m(centers[0], centers[1])
    d_neg = haversine_m(centers[0], centers[2])
    assert (d_pos >= 100 - 1).all() and (d_pos <= 500 + 1).all()
    assert (d_neg >= 2000).all()
    content = tiles[0].any(1).reshape(12, -1).mean(1)
    assert (content >= cfg.min_content).all()


def test_sampling_is_reproducible():
    s = TileTripletSampler(city(), TripletConfig(split=None, size=32))
    a = s.sample(3, np.random.default_rng(5))
    b = s.sample(3, np.random.default_rng(5))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


def test_split_keeps_windows_out_of_held_out_blocks():
    split = SpatialSplit(block_m=1500, holdout=0.3)
    s = TileTripletSampler(city(), TripletConfig(split=split, size=32))
    _, centers = s.sample(10, np.random.default_rng(1))
    from geoseek.geo import lonlat_to_mercator_m

    xy = lonlat_to_mercator_m(centers.reshape(-1, 2))
    assert not split.held_out_xy(xy).any()
    # the split holds out roughly the requested share of blocks
    grid = np.stack(np.meshgrid(np.arange(200) * 1500.0 + 10, np.arange(200) * 1500.0 + 10), -1).reshape(-1, 2)
    assert 0.25 < split.held_out_xy(grid).mean() < 0.35


def test_far_enough_mask():
    a = np.array([[9.5, 47.0]])
    b = np.array([[9.5, 47.0], [9.5, 47.03]])  # 0 m and ~3.3 km
    assert far_enough(a, b, 2000).tolist() == [[False, True]]


def test_land_use_cover_is_measured_before_land_use_is_blanked():
    from geoseek.sources.layers import LAND_USE_LAYERS, LAYER_INDEX
    from geoseek.sources.tile_sampler import land_use_cover

    t = np.zeros((2, 14, 8, 8), np.uint8)
    t[0, LAYER_INDEX["forest"], :4] = 255  # half the tile
    t[1, LAYER_INDEX["water"], :2, :2] = 255  # 4 of 64 pixels
    cover = land_use_cover(t)
    assert cover.shape == (2, len(LAND_USE_LAYERS))
    assert cover[0, LAND_USE_LAYERS.index("forest")] == 0.5 and cover[0].sum() == 0.5
    assert cover[1, LAND_USE_LAYERS.index("water")] == 4 / 64

    # every tile's land use is blanked, yet the cover returned is the tile's before blanking
    buildings = [g for i in range(40) for j in range(40)
                 for g in [box(9.5 + i * 0.002, 47.0 + j * 0.0014, 9.5008 + i * 0.002, 47.0005 + j * 0.0014)]]
    park = box(9.49, 46.99, 9.5 + 40 * 0.002 + 0.01, 47.0 + 40 * 0.0014 + 0.01)
    feats = features_from_geometries({"building": buildings, "park": [park]})
    s = TileTripletSampler(feats, TripletConfig(split=None, size=32, drop_land_use=1.0))
    tiles, centers, cover = s.sample_pairs(4, np.random.default_rng(0), land_use=True)
    assert tiles.shape == (2, 4, 14, 32, 32) and cover.shape == (2, 4, len(LAND_USE_LAYERS))
    assert not tiles[:, :, LAYER_INDEX["park"]].any()  # blanked
    assert (cover[..., LAND_USE_LAYERS.index("park")] > 0.3).all()  # but measured
    again = s.sample_pairs(4, np.random.default_rng(0))  # same draws without the cover
    assert np.array_equal(again[0], tiles) and np.array_equal(again[1], centers)
