"""Sketch simulator: determinism, strength, salience, blocks, and the real-scene round trip."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from geoseek.sources.layers import LAYER_INDEX
from geoseek.sources.sketch_simulator import SimulatorConfig, scene_features, simulate_sketch
from geoseek.sources.sketchmap import LocalFeature, draw_local_features

W = 480.0


def toy_scene() -> list[LocalFeature]:
    feats = []
    # a row of 6 houses 2 m apart (one block to a sketcher) and one tiny shed
    for i in range(6):
        feats.append(LocalFeature("building", shapely.box(40 + i * 22, 300, 60 + i * 22, 330)))
    feats.append(LocalFeature("building", shapely.box(400, 60, 404, 64)))  # 16 m²: dropped
    # a road made of 3 segments, a short footpath, a park with a hole, points
    feats += [LocalFeature("major_road", shapely.LineString([(0, 200), (160, 200)])),
              LocalFeature("major_road", shapely.LineString([(160, 200), (320, 210)])),
              LocalFeature("major_road", shapely.LineString([(320, 210), (480, 210)])),
              LocalFeature("path", shapely.LineString([(10, 10), (15, 12)]))]
    feats.append(LocalFeature("park", shapely.Polygon([(250, 250), (450, 250), (450, 450), (250, 450)],
                                                      [[(330, 330), (360, 330), (360, 360), (330, 360)]])))
    feats += [LocalFeature("amenity", shapely.Point(100 + 10 * i, 100)) for i in range(10)]
    return feats


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return float((a & b).sum() / max((a | b).sum(), 1))


def test_deterministic_under_seed_and_varies_across_seeds():
    scene = toy_scene()
    a = draw_local_features(simulate_sketch(scene, W, strength=1.0, seed=3), W, 64)
    b = draw_local_features(simulate_sketch(scene, W, strength=1.0, seed=3), W, 64)
    c = draw_local_features(simulate_sketch(scene, W, strength=1.0, seed=4), W, 64)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_blocks_salience_and_outlines():
    sk = simulate_sketch(toy_scene(), W, strength=0.0, seed=0)
    by = {}
    for f in sk:
        by.setdefault(f.layer, []).append(f.geometry)
    assert len(by["building"]) == 1  # six houses merged into one block, the shed dropped
    block = by["building"][0]
    assert block.bounds[0] == pytest.approx(40, abs=1) and block.bounds[2] == pytest.approx(170, abs=1)
    assert len(by["major_road"]) == 1  # segments joined into one stroke
    assert "path" not in by  # a 5-m footpath is not drawn
    assert len(by["park"]) == 1 and len(by["park"][0].interiors) == 0  # outlined: no hole
    assert len(by["amenity"]) == 10  # strength 0 forgets nothing


def test_strength_increases_distortion_and_omission():
    scene = toy_scene()
    real = draw_local_features(scene, W, 64)
    ious = []
    n_points = []
    for s in (0.0, 1.0, 2.0):
        vals, pts = [], []
        for seed in range(6):
            sk = simulate_sketch(scene, W, strength=s, seed=seed)
            vals.append(iou(draw_local_features(sk, W, 64), real))
            pts.append(sum(f.layer == "amenity" for f in sk))
        ious.append(np.mean(vals))
        n_points.append(np.mean(pts))
    assert ious[0] > 0.8
    assert ious[0] > ious[1] > ious[2]
    assert n_points[0] == 10 and n_points[2] < n_points[1] < 10


def test_config_and_bad_strength():
    scene = toy_scene()
    sk = simulate_sketch(scene, W, strength=0.0, config=SimulatorConfig(min_area_m2=10_000))
    assert not any(f.layer == "building" for f in sk)
    with pytest.raises(ValueError, match="strength"):
        simulate_sketch(scene, W, strength=-1)


def test_real_scene_features_match_the_renderer(shared_data):
    from geoseek.sources.osm import read_osm
    from geoseek.sources.render import render_bounds, window_bounds_m

    osm = read_osm(shared_data / "osm" / "helsinki-center.osm.pbf")
    lon, lat = osm.bbox.center if hasattr(osm.bbox, "center") else (24.94, 60.17)
    b = window_bounds_m(lon, lat, W)
    feats = scene_features(osm, b)
    assert len(feats) > 20
    real = render_bounds(osm, b, 64)
    mine = draw_local_features(feats, W, 64)
    assert ((real > 0) == (mine > 0)).mean() > 0.99
    sk = draw_local_features(simulate_sketch(feats, W, strength=1.0, seed=0), W, 64)
    assert 0.2 < iou(sk, real) < 0.9
    assert sk[LAYER_INDEX["building"]].any()
