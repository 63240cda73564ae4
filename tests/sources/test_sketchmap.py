"""Sketch-map format: validation errors, JSON Schema, canvas/map coordinates, rasterization."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoseek.errors import InvalidInputError
from geoseek.sources.layers import LAYER_INDEX, NUM_LAYERS
from geoseek.sources.sketchmap import (
    LocalFeature,
    draw_local_features,
    load_sketch_map,
    parse_sketch_map,
    to_geojson,
    validate_with_schema,
)


def canvas_sketch() -> dict:
    return {
        "type": "FeatureCollection",
        "crs": "canvas",
        "canvas": {"width": 400, "height": 400},
        "features": [
            # a building block in the top-left quarter (canvas y grows downwards)
            {"type": "Feature", "properties": {"layer": "building"},
             "geometry": {"type": "Polygon", "coordinates": [[[20, 20], [180, 20], [180, 180], [20, 180], [20, 20]]]}},
            # a major road across the bottom
            {"type": "Feature", "properties": {"layer": "major_road"},
             "geometry": {"type": "LineString", "coordinates": [[0, 350], [400, 350]]}},
            {"type": "Feature", "properties": {"layer": "amenity"}, "geometry": {"type": "Point", "coordinates": [300, 100]}},
        ],
    }


def test_canvas_sketch_rasterizes_into_osm_channels():
    sm = parse_sketch_map(canvas_sketch(), window_m=400)
    r = sm.rasterize(64)
    assert r.shape == (NUM_LAYERS, 64, 64) and r.dtype == np.uint8
    b = r[LAYER_INDEX["building"]] > 0
    # top-left quarter filled, bottom-right empty: y-down canvas -> row 0 = north
    assert b[5:25, 5:25].all() and not b[40:, 40:].any()
    road = r[LAYER_INDEX["major_road"]] > 0
    assert road[54:58].any(axis=0).all() and not road[:40].any()
    amen = r[LAYER_INDEX["amenity"]] > 0
    assert amen[14:18, 46:50].any() and amen.sum() < 20
    assert sm.counts() == {"building": 1, "major_road": 1, "amenity": 1}


def test_map_sketch_matches_canvas_sketch():
    # the same square in (lon, lat): north is up in both
    lon0, lat0 = 14.5, 35.9
    d = 0.002
    obj = {
        "type": "FeatureCollection", "crs": "map", "bbox": [lon0, lat0, lon0 + d, lat0 + d * 0.81],
        "features": [{"type": "Feature", "properties": {"layer": "water"},
                      "geometry": {"type": "Polygon", "coordinates": [[[lon0, lat0 + d * 0.4], [lon0 + d * 0.5, lat0 + d * 0.4],
                                                                       [lon0 + d * 0.5, lat0 + d * 0.81], [lon0, lat0 + d * 0.81],
                                                                       [lon0, lat0 + d * 0.4]]]}}],
    }
    r = parse_sketch_map(obj, window_m=480).rasterize(32)
    w = r[LAYER_INDEX["water"]] > 0
    assert w[2:10, 2:12].all()  # north-west part
    assert not w[24:, :].any() and not w[:, 24:].any()


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda o: o.update(features=[]), "empty"),
        (lambda o: o.update(features="x"), "'features' must be an array"),
        (lambda o: o["features"][0]["properties"].pop("layer"), "features[0].properties.layer is missing"),
        (lambda o: o["features"][1]["properties"].update(layer="castle"), "'castle' is not a layer"),
        (lambda o: o["features"][0]["geometry"].update(type="Circle"), "features[0].geometry.type must be one of"),
        (lambda o: o["features"][1]["geometry"].update(coordinates=[[0, 1]]), "at least 2 positions"),
        (lambda o: o["features"][2]["geometry"].update(coordinates=["a", 1]), "finite numbers"),
        (lambda o: o["features"][0]["geometry"].update(coordinates=[[[0, 0], [1, 1]]]), "at least 3 positions"),
        (lambda o: o.pop("canvas"), "needs 'canvas'"),
        (lambda o: o.update(canvas={"width": -5, "height": 10}), "canvas.width"),
        (lambda o: o.update(crs="utm"), "crs must be"),
        (lambda o: o.update(type="Feature"), "FeatureCollection"),
    ],
)
def test_invalid_sketches_name_the_problem(mutate, message):
    obj = canvas_sketch()
    mutate(obj)
    with pytest.raises(InvalidInputError, match="invalid sketch map") as exc:
        parse_sketch_map(obj)
    assert message in str(exc.value)


def test_not_json_and_map_range_errors(tmp_path):
    with pytest.raises(InvalidInputError, match="not JSON"):
        parse_sketch_map("{nope")
    p = tmp_path / "s.json"
    p.write_text("[1, 2]")
    with pytest.raises(InvalidInputError, match="top level"):
        load_sketch_map(p)
    with pytest.raises(InvalidInputError, match="no sketch-map file"):
        load_sketch_map(tmp_path / "missing.json")
    far = {"crs": "map", "features": [{"properties": {"layer": "path"},
                                       "geometry": {"type": "LineString", "coordinates": [[14.0, 35.0], [15.0, 36.0]]}}]}
    with pytest.raises(InvalidInputError, match="at most 20 km"):
        parse_sketch_map(far)
    bad = {"crs": "map", "features": [{"properties": {"layer": "path"},
                                       "geometry": {"type": "LineString", "coordinates": [[500, 35.0], [15.0, 36.0]]}}]}
    with pytest.raises(InvalidInputError, match="lon, lat"):
        parse_sketch_map(bad)


def test_json_schema_agrees_with_the_validator():
    validate_with_schema(canvas_sketch())
    bad = canvas_sketch()
    bad["features"][1]["properties"]["layer"] = "castle"
    with pytest.raises(InvalidInputError, match="features/1/properties/layer"):
        validate_with_schema(bad)
    no_canvas = canvas_sketch()
    no_canvas.pop("canvas")
    with pytest.raises(InvalidInputError):
        validate_with_schema(no_canvas)


def test_geojson_roundtrip_and_layer_coercion():
    import shapely

    feats = [
        LocalFeature("building", shapely.box(10, 10, 100, 100)),
        LocalFeature("minor_road", shapely.LineString([(0, 200), (480, 200)])),
        # an area outlined with a closed line is filled; a polygon on a line layer is its outline
        LocalFeature("park", shapely.LineString([(300, 300), (450, 300), (450, 450), (300, 450), (300, 300)])),
        LocalFeature("amenity", shapely.box(200, 400, 220, 420)),
    ]
    r = draw_local_features(feats, 480, 48)
    obj = to_geojson(feats, 480, canvas=480)
    json.dumps(obj)
    r2 = parse_sketch_map(obj, window_m=480).rasterize(48)
    assert (r == r2).mean() > 0.995
    park = r[LAYER_INDEX["park"]] > 0
    assert park[3:13, 32:44].all()  # filled interior, not only the outline
    assert r[LAYER_INDEX["amenity"]].sum() > 0
