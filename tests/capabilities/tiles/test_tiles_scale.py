"""Tile scale in ground metres (``render_tile``, ``--tile-m``): the same ground at every latitude,
recorded by the build, used by the search, and the XYZ render kept for collections built before."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
from shapely.geometry import LineString, Point, box

from geoseek.capabilities.tiles.data import TILE_GROUND_M, render_tile, tile_center_lonlat, tile_input_bounds_m
from geoseek.errors import InvalidInputError
from geoseek.geo import lonlat_to_tile, tile_bounds
from geoseek.sources.layers import LAYER_INDEX
from geoseek.sources.osm import features_from_geometries
from geoseek.sources.render import render_xyz

Z = 17
M_PER_DEG_LAT = 111_320.0


def _square_at(lat0: float, side_m: float = 100.0):
    """(features with one ``side_m`` × ``side_m`` building centred on its z17 tile's centre, (x, y)) near ``lat0``° N."""
    x, y = lonlat_to_tile(14.5, lat0, Z)
    lon, lat = tile_center_lonlat(Z, x, y)
    dlat = side_m / 2 / M_PER_DEG_LAT
    dlon = side_m / 2 / (M_PER_DEG_LAT * math.cos(math.radians(lat)))
    return features_from_geometries({"building": [box(lon - dlon, lat - dlat, lon + dlon, lat + dlat)]}), (x, y)


def _extent_px(tile: np.ndarray) -> tuple[int, int]:
    ys, xs = np.nonzero(tile[LAYER_INDEX["building"]])
    return int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def test_render_tile_covers_the_same_ground_metres_at_36_and_60_degrees():
    (f36, (x36, y36)), (f60, (x60, y60)) = _square_at(36.0), _square_at(60.0)
    w36, h36 = _extent_px(render_tile(f36, Z, x36, y36, 64, ground_m=250.0))
    w60, h60 = _extent_px(render_tile(f60, Z, x60, y60, 64, ground_m=250.0))
    assert abs(w36 - w60) <= 1 and abs(h36 - h60) <= 1
    assert abs(w36 - 64 * 100 / 250) <= 1.5  # 100 m of a 250 m window
    # the XYZ tile: 247 m wide at 36° N, 153 m at 60° N, so the building is ~1.6× larger in pixels
    x36w, _ = _extent_px(render_tile(f36, Z, x36, y36, 64, ground_m=None))
    x60w, _ = _extent_px(render_tile(f60, Z, x60, y60, 64, ground_m=None))
    assert 1.45 < x60w / x36w < 1.75


def test_render_tile_is_centred_on_the_xyz_tile():
    x, y = lonlat_to_tile(24.945, 60.17, Z)
    lon, lat = tile_center_lonlat(Z, x, y)
    b = tile_bounds(x, y, Z)
    assert b.west < lon < b.east and b.south < lat < b.north
    assert abs(lon - (b.west + b.east) / 2) < 1e-12 and abs(lat - (b.south + b.north) / 2) < 1e-6
    # the window's mercator bounds are centred on the XYZ tile's, and 250 m / cos(lat) mercator metres wide
    wx0, wy0, wx1, wy1 = tile_input_bounds_m(Z, x, y, 250.0)
    tx0, ty0, tx1, ty1 = tile_input_bounds_m(Z, x, y, None)
    assert abs((wx0 + wx1) / 2 - (tx0 + tx1) / 2) < 1e-6 and abs((wy0 + wy1) / 2 - (ty0 + ty1) / 2) < 1e-6
    assert abs((wx1 - wx0) * math.cos(math.radians(lat)) - 250.0) < 1e-6


def test_render_tile_without_ground_m_is_the_xyz_render_exactly():
    x, y = lonlat_to_tile(24.945, 60.17, Z)
    lon, lat = tile_center_lonlat(Z, x, y)
    feats = features_from_geometries({
        "building": [box(lon - 4e-4, lat - 2e-4, lon + 1e-4, lat + 3e-4)],
        "major_road": [LineString([(lon - 0.01, lat - 5e-4), (lon + 0.01, lat + 5e-4)])],
        "park": [box(lon, lat - 1e-3, lon + 1e-3, lat)],
        "amenity": [Point(lon + 2e-4, lat - 1e-4)],
    })
    for size in (64, 128):
        ref = render_xyz(feats, Z, x, y, size)
        assert np.array_equal(render_tile(feats, Z, x, y, size), ref)
        assert np.array_equal(render_tile(feats, Z, x, y, size, ground_m=None), ref)
        assert np.array_equal(render_tile(feats, Z, x, y, size, ground_m=0), ref)
        assert not np.array_equal(render_tile(feats, Z, x, y, size, ground_m=TILE_GROUND_M), ref)  # 153 m vs 250 m
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError):
            render_tile(feats, Z, x, y, 64, ground_m=bad)


def _fresh_vector(col, item_id: str, monkeypatch):
    """The search's query vector for the centre of tile ``item_id`` when the collection has no stored vector for it."""
    from geoseek.capabilities.tiles.search import vector_at

    z, x, y = (int(v) for v in item_id.split("/"))
    lon, lat = tile_center_lonlat(z, x, y)

    def missing(_id):
        raise KeyError(_id)

    monkeypatch.setattr(col, "vector", missing)
    v, tid = vector_at(col, lon, lat)
    monkeypatch.undo()
    assert tid is None  # rendered, not looked up
    return v


def test_build_records_tile_ground_m_and_search_renders_the_query_with_it(built, monkeypatch):
    from geoseek.capabilities.tiles.search import CollectionContext
    from geoseek.collection import Collection

    col = Collection.open(built[1])
    assert col.manifest["extra"]["tile_ground_m"] == TILE_GROUND_M  # the CLI's default
    items = list(col.items())
    assert items and all(it.metadata["ground_m"] == TILE_GROUND_M for it in items)
    it = items[len(items) // 2]
    z, x, y = (int(v) for v in it.id.split("/"))
    assert it.footprint == pytest.approx(tile_bounds(x, y, z).as_tuple())  # footprints stay the XYZ tile
    assert CollectionContext.of(col).ground_m == TILE_GROUND_M
    stored = np.asarray(col.vector(it.id), np.float32)
    np.testing.assert_allclose(_fresh_vector(col, it.id, monkeypatch), stored, atol=1e-5, rtol=0)


def test_collection_without_the_key_searches_with_the_xyz_render(built, tmp_path, monkeypatch):
    """A collection built before ``tile_ground_m`` existed renders its query tiles as it was built: XYZ."""
    from geoseek.capabilities.tiles.data import embed_tiles
    from geoseek.capabilities.tiles.search import CollectionContext
    from geoseek.collection import Collection

    old = tmp_path / "old"
    shutil.copytree(built[1], old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["extra"]["tile_ground_m"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    col = Collection.open(old)
    ctx = CollectionContext.of(col)
    assert ctx.ground_m is None
    it = next(iter(col.items()))
    z, x, y = (int(v) for v in it.id.split("/"))
    xyz = embed_tiles(ctx.model, render_xyz(ctx.features, z, x, y, ctx.tile_px)[None])[0]
    fresh = _fresh_vector(col, it.id, monkeypatch)
    np.testing.assert_allclose(fresh, xyz, atol=1e-5, rtol=0)
    # and not the 250 m window this collection's vectors were built from (Helsinki: 153 m XYZ tiles)
    assert np.abs(fresh - np.asarray(col.vector(it.id), np.float32)).max() > 1e-4


def test_tile_ground_m_is_in_the_build_fingerprint(helsinki, built, monkeypatch, tmp_path):
    """A resumed build never mixes shards rendered at two scales: the value is part of the fingerprint."""
    import geoseek.build
    from geoseek.build.engine import plan_fingerprint
    from geoseek.capabilities.tiles.build import build_osm_collection

    plans = []

    def capture(plan, **kw):
        plans.append(plan)
        return {"items": 0}

    monkeypatch.setattr(geoseek.build, "run_build", capture)  # the plan only: nothing is rendered
    for g in (TILE_GROUND_M, 0, 300.0):
        build_osm_collection(helsinki, tmp_path / "c", built[0], progress=False, workers=1, tile_ground_m=g)
    assert [p.context["ground_m"] for p in plans] == [TILE_GROUND_M, None, 300.0]
    assert [p.fingerprint["tile_ground_m"] for p in plans] == [TILE_GROUND_M, 0.0, 300.0]
    assert [p.collection["extra"]["tile_ground_m"] for p in plans] == [TILE_GROUND_M, 0.0, 300.0]
    assert len({plan_fingerprint(p) for p in plans}) == 3


def test_build_cli_tile_m_0_is_the_xyz_render(helsinki, built, tmp_path):
    """``build osm --tile-m 0``: XYZ inputs as before; the manifest says 0, items their tile's ground width."""
    from geoseek.capabilities.tiles.data import load_features
    from geoseek.capabilities.tiles.search import CollectionContext
    from geoseek.cli import main
    from geoseek.collection import Collection
    from geoseek.sources.render import png_bytes, to_rgb

    out = tmp_path / "xyz"
    assert main(["build", "osm", str(helsinki), "--out", str(out), "--model", str(built[0]), "--tile-m", "0",
                 "--workers", "1", "--json"]) == 0
    col = Collection.open(out)
    assert col.manifest["extra"]["tile_ground_m"] == 0.0 and CollectionContext.of(col).ground_m is None
    it = next(iter(col.items()))
    z, x, y = (int(v) for v in it.id.split("/"))
    _, lat = tile_center_lonlat(z, x, y)
    assert it.metadata["ground_m"] == pytest.approx(2 * math.pi * 6378137 / 2**z * math.cos(math.radians(lat)), abs=0.1)
    assert 150 < it.metadata["ground_m"] < 156  # Helsinki, 60.2° N
    assert it.thumbnail == png_bytes(to_rgb(render_xyz(load_features(helsinki), z, x, y, 128)), 64)


def test_a_collection_rebuilt_at_the_same_path_gets_a_fresh_context(built, tmp_path):
    """The context is memoized per path *and build*: a rebuild with another tile scale is never
    answered with the old build's scale (a long-running service keeps its contexts)."""
    from geoseek.capabilities.tiles.search import CollectionContext
    from geoseek.collection import Collection

    path = tmp_path / "c"
    shutil.copytree(built[1], path)
    first = CollectionContext.of(Collection.open(path))
    assert first.ground_m == TILE_GROUND_M
    assert CollectionContext.of(Collection.open(path)) is first  # same build: memoized
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["extra"]["tile_ground_m"] = 0.0  # as a rebuild with --tile-m 0 would write it
    manifest["build_id"] = "another-build"
    (path / "manifest.json").write_text(json.dumps(manifest))
    again = CollectionContext.of(Collection.open(path))
    assert again is not first and again.ground_m is None
