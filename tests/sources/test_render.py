"""The renderer: known geometry → known pixels, determinism, RGB style and basemap PNGs."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import LineString, Point, Polygon, box

from geoseek.errors import InvalidInputError
from geoseek.sources.layers import LAYER_INDEX, LAYERS, NUM_LAYERS
from geoseek.sources.osm import features_from_geometries, mercator_to_lonlat
from geoseek.sources.render import (
    dominant_land_use,
    nonempty_tiles,
    render_basemap_png,
    render_bounds,
    render_xyz,
    to_rgb,
    xyz_bounds_m,
)

Z, X, Y = 17, 72000, 37000  # any tile; geometry is placed relative to it


def tile_lonlat_box(fx0: float, fy0: float, fx1: float, fy1: float) -> Polygon:
    """A lon/lat polygon covering fractions [fx0, fx1] × [fy0, fy1] of the tile (y from the top)."""
    minx, miny, maxx, maxy = xyz_bounds_m(Z, X, Y)
    w, h = maxx - minx, maxy - miny
    (lon0, lat0), (lon1, lat1) = mercator_to_lonlat(np.array([[minx + fx0 * w, maxy - fy1 * h], [minx + fx1 * w, maxy - fy0 * h]]))
    return box(lon0, lat0, lon1, lat1)


def tile_lonlat(fx: float, fy: float) -> tuple[float, float]:
    minx, miny, maxx, maxy = xyz_bounds_m(Z, X, Y)
    lon, lat = mercator_to_lonlat(np.array([[minx + fx * (maxx - minx), maxy - fy * (maxy - miny)]]))[0]
    return float(lon), float(lat)


def test_filled_square_gives_exact_pixels():
    feats = features_from_geometries({"building": [tile_lonlat_box(0.25, 0.25, 0.75, 0.75)]})
    t = render_xyz(feats, Z, X, Y, 128)
    assert t.shape == (NUM_LAYERS, 128, 128) and t.dtype == np.uint8
    b = t[LAYER_INDEX["building"]]
    assert (b[33:95, 33:95] == 255).all()  # inside
    assert (b[:31] == 0).all() and (b[97:] == 0).all() and (b[:, :31] == 0).all() and (b[:, 97:] == 0).all()
    assert abs(int((b > 0).sum()) - 64 * 64) <= 2 * 64 + 4  # a quarter of the tile, ±1 px border
    others = np.delete(t, LAYER_INDEX["building"], axis=0)
    assert not others.any()


def test_hole_is_cut():
    outer = tile_lonlat_box(0.0, 0.0, 1.0, 1.0)
    inner = tile_lonlat_box(0.25, 0.25, 0.75, 0.75)
    feats = features_from_geometries({"forest": [Polygon(outer.exterior.coords, [inner.exterior.coords])]})
    f = render_xyz(feats, Z, X, Y, 64)[LAYER_INDEX["forest"]]
    assert (f[20:44, 20:44] == 0).all()
    assert (f[:12] == 255).all() and (f[52:] == 255).all()


def test_line_width_in_metres():
    lon0, lat0 = tile_lonlat(0.0, 0.5)
    lon1, lat1 = tile_lonlat(1.0, 0.5)
    feats = features_from_geometries({"major_road": [LineString([(lon0 - 0.01, lat0), (lon1 + 0.01, lat1)])]})
    t = render_xyz(feats, Z, X, Y, 128)[LAYER_INDEX["major_road"]]
    minx, miny, maxx, maxy = xyz_bounds_m(Z, X, Y)
    lat = np.radians(lat0)
    ground_px = (maxx - minx) * np.cos(lat) / 128  # ground metres per pixel
    expected = round(LAYERS[LAYER_INDEX["major_road"]].width_m / ground_px)
    col = t[:, 64] > 0
    assert abs(int(col.sum()) - expected) <= 1
    assert col[62:66].all()  # centred on the middle row
    assert (t > 0).any(0).all()  # spans the whole width


def test_point_disc_and_empty_tile():
    feats = features_from_geometries({"amenity": [Point(*tile_lonlat(0.5, 0.5))]})
    a = render_xyz(feats, Z, X, Y, 128)[LAYER_INDEX["amenity"]]
    ys, xs = np.nonzero(a)
    assert abs(ys.mean() - 63.5) < 1 and abs(xs.mean() - 63.5) < 1
    assert not render_xyz(feats, Z, X + 5, Y, 128).any()


def test_deterministic_and_real_tiles(shared_data):
    from geoseek.sources.osm import read_osm

    feats = read_osm(shared_data / "osm" / "helsinki-center.osm.pbf")
    tiles = nonempty_tiles(feats, 17)
    assert 40 <= len(tiles) <= 150  # ~1 × 1.7 km at 153 m per z17 tile, plus a one-tile margin
    a = np.stack([render_xyz(feats, 17, x, y) for x, y in tiles[:30]])
    b = np.stack([render_xyz(feats, 17, x, y) for x, y in tiles[:30]])
    np.testing.assert_array_equal(a, b)
    assert a[:, LAYER_INDEX["building"]].any()
    assert set(np.unique(a)) <= {0, 255}
    png = render_basemap_png(feats, 17, *tiles[0])
    img = Image.open(io.BytesIO(png))
    assert img.size == (256, 256) and img.mode == "RGB"


def test_rgb_style_and_land_use():
    t = np.zeros((NUM_LAYERS, 8, 8), np.uint8)
    t[LAYER_INDEX["residential"], :, :6] = 255
    t[LAYER_INDEX["building"], :2, :2] = 255
    rgb = to_rgb(t)
    assert tuple(rgb[0, 0]) == LAYERS[LAYER_INDEX["building"]].rgb  # buildings drawn over land use
    assert tuple(rgb[5, 5]) == LAYERS[LAYER_INDEX["residential"]].rgb
    assert dominant_land_use(t) == "residential"
    assert dominant_land_use(np.zeros_like(t)) is None
    with pytest.raises(InvalidInputError):
        to_rgb(np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(InvalidInputError):
        render_bounds(features_from_geometries({}), (0, 0, 0, 0))
