"""Render OSM features into multi-channel tiles: C×H×W uint8, one channel per layer.

A tile is any axis-aligned web-mercator rectangle: an XYZ tile (:func:`render_xyz`), a metric
window of ``size_m`` ground metres around (lon, lat) (:func:`render_window`), or raw mercator
bounds (:func:`render_bounds`). Channel ``c`` is layer ``LAYERS[c]`` (0 or 255, no
anti-aliasing, so renders are deterministic). Areas are filled (holes cut), lines are stroked
``width_m`` ground metres wide (at least 1 px), points are discs of ``width_m`` metres.

Features are selected per tile with the layer's grid index; vertices are projected with NumPy
in one pass per layer and drawn with PIL's C rasterizer.

Also: :func:`to_rgb` (the RGB map style of thumbnails), :func:`render_basemap_png` (an
offline 256-px XYZ basemap tile as PNG bytes), :func:`dominant_land_use` and
:func:`nonempty_tiles`.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw

from geoseek.errors import InvalidInputError
from geoseek.geo import lonlat_to_mercator_m
from geoseek.sources.layers import LABEL_MIN_FRACTION, LAND_USE_LAYERS, LAYER_INDEX, LAYERS, NUM_LAYERS
from geoseek.sources.osm import R_MERC, LayerGeometry, OsmFeatures

HALF_WORLD = math.pi * R_MERC
BACKGROUND_RGB = (242, 239, 233)
# painter's order of the RGB style (bottom first)
STYLE_ORDER = (
    "farmland", "residential", "commercial", "industrial", "forest", "park", "water", "waterway",
    "path", "minor_road", "major_road", "railway", "building", "amenity",
)
# XYZ basemap: the lowest zoom at which a layer is drawn (keeps low zooms cheap and legible)
BASEMAP_MIN_ZOOM = {"building": 14, "path": 14, "amenity": 15, "minor_road": 12}

Bounds = tuple[float, float, float, float]


def xyz_bounds_m(z: int, x: int, y: int) -> Bounds:
    """(minx, miny, maxx, maxy) web-mercator metres of XYZ tile (z, x, y)."""
    n = 2**z
    if not (0 <= x < n and 0 <= y < n) or z < 0:
        raise InvalidInputError(f"tile {z}/{x}/{y} does not exist")
    size = 2 * HALF_WORLD / n
    minx = -HALF_WORLD + x * size
    maxy = HALF_WORLD - y * size
    return minx, maxy - size, minx + size, maxy


def window_bounds_m(lon: float, lat: float, size_m: float) -> Bounds:
    """Mercator bounds of a square of ``size_m`` ground metres centred at (lon, lat) degrees."""
    cx, cy = lonlat_to_mercator_m([[lon, lat]])[0]
    half = size_m / 2 / math.cos(math.radians(lat))
    return cx - half, cy - half, cx + half, cy + half


def _ground_scale(bounds: Bounds) -> float:
    """Mercator metres per ground metre at the bounds' centre latitude (1 / cos φ)."""
    cy = (bounds[1] + bounds[3]) / 2
    lat = 2 * math.atan(math.exp(cy / R_MERC)) - math.pi / 2
    return 1.0 / max(math.cos(lat), 1e-6)


def _gather(g: LayerGeometry, parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of ``parts`` (concatenated) and their offsets into that array."""
    starts, ends = g.offsets[parts], g.offsets[parts + 1]
    lens = ends - starts
    offs = np.r_[0, np.cumsum(lens)]
    idx = np.repeat(starts - offs[:-1], lens) + np.arange(offs[-1])
    return g.coords[idx], offs


def _draw_layer(
    img: Image.Image, g: LayerGeometry, bounds: Bounds, width: int, height: int, ground_scale: float
) -> bool:
    """Draw layer ``g`` into the 'L' image ``img``; returns whether anything was drawn."""
    res_x = (bounds[2] - bounds[0]) / width
    res_y = (bounds[3] - bounds[1]) / height
    layer = g.layer
    pad = layer.width_m * ground_scale  # strokes / discs reach this far outside their vertices
    parts = g.query((bounds[0] - pad, bounds[1] - pad, bounds[2] + pad, bounds[3] + pad))
    if len(parts) == 0:
        return False
    pts, offs = _gather(g, parts)
    # pixel coordinates; PIL's pixel (i, j) covers [i, i+1) so pixel centres sit at i + 0.5
    px = (pts[:, 0] - bounds[0]) / res_x - 0.5
    py = (bounds[3] - pts[:, 1]) / res_y - 0.5
    flat = np.stack([px, py], 1).ravel().tolist()
    draw = ImageDraw.Draw(img)
    o = (offs * 2).tolist()
    if layer.kind == "area":
        holes = g.part_hole[parts].tolist()
        for i, hole in enumerate(holes):
            if not hole:
                draw.polygon(flat[o[i] : o[i + 1]], fill=255)
        if any(holes):
            for i, hole in enumerate(holes):
                if hole:
                    draw.polygon(flat[o[i] : o[i + 1]], fill=0)
    elif layer.kind == "line":
        w = max(1, int(round(layer.width_m * ground_scale / res_x)))
        for i in range(len(parts)):
            draw.line(flat[o[i] : o[i + 1]], fill=255, width=w)
    else:
        r = layer.width_m * ground_scale / res_x / 2
        if r < 1.0:  # sub-pixel discs: one pixel each
            draw.point([(round(flat[o[i]]), round(flat[o[i] + 1])) for i in range(len(parts))], fill=255)
        else:
            for i in range(len(parts)):
                x, y = flat[o[i]], flat[o[i] + 1]
                draw.ellipse((x - r + 0.5, y - r + 0.5, x + r - 0.5, y + r - 0.5), fill=255)
    return True


def render_bounds(
    features: OsmFeatures,
    bounds: Bounds,
    size: int | tuple[int, int] = 128,
    layers: Sequence[str] | None = None,
    ground_scale: float | None = None,
) -> np.ndarray:
    """Render mercator ``bounds`` (minx, miny, maxx, maxy) into a (C, H, W) uint8 tile.

    Args:
        size: pixels (square) or (height, width).
        layers: only these layers are drawn (the others stay 0); default all.
        ground_scale: mercator metres per ground metre for line widths (default: at the centre).
    """
    height, width = (size, size) if isinstance(size, int) else size
    if bounds[2] <= bounds[0] or bounds[3] <= bounds[1]:
        raise InvalidInputError(f"empty render bounds {bounds}")
    gs = _ground_scale(bounds) if ground_scale is None else ground_scale
    out = np.zeros((NUM_LAYERS, height, width), dtype=np.uint8)
    wanted = set(layers) if layers is not None else None
    for c, layer in enumerate(LAYERS):
        if wanted is not None and layer.name not in wanted:
            continue
        g = features.layers.get(layer.name)
        if g is None or g.n_parts == 0:
            continue
        img = Image.new("L", (width, height), 0)
        if _draw_layer(img, g, bounds, width, height, gs):
            out[c] = np.asarray(img)
    return out


def render_xyz(features: OsmFeatures, z: int, x: int, y: int, size: int = 128, layers: Sequence[str] | None = None) -> np.ndarray:
    """(C, size, size) uint8 render of XYZ tile (z, x, y)."""
    return render_bounds(features, xyz_bounds_m(z, x, y), size, layers)


def render_window(features: OsmFeatures, lon: float, lat: float, size_m: float = 300.0, size: int = 128) -> np.ndarray:
    """(C, size, size) uint8 render of a ``size_m``-metre square centred at (lon, lat) degrees."""
    return render_bounds(features, window_bounds_m(lon, lat, size_m), size)


def to_rgb(tile: np.ndarray) -> np.ndarray:
    """(C, H, W) layer tile → (H, W, 3) uint8 in the map style (colours of :data:`LAYERS`)."""
    if tile.ndim != 3 or tile.shape[0] != NUM_LAYERS:
        raise InvalidInputError(f"expected a ({NUM_LAYERS}, H, W) tile, got {tile.shape}")
    rgb = np.empty(tile.shape[1:] + (3,), np.uint8)
    rgb[:] = BACKGROUND_RGB
    for name in STYLE_ORDER:
        c = LAYER_INDEX[name]
        m = tile[c] > 0
        if m.any():
            rgb[m] = LAYERS[c].rgb
    return rgb


def png_bytes(rgb: np.ndarray, size: int | None = None) -> bytes:
    """PNG encoding of an (H, W, 3) uint8 image, optionally resized to ``size`` px square."""
    img = Image.fromarray(rgb)
    if size and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def render_basemap_png(features: OsmFeatures, z: int, x: int, y: int, size: int = 256) -> bytes:
    """Offline basemap: XYZ tile (z, x, y) in the RGB map style as PNG bytes (``size`` px)."""
    layers = [l.name for l in LAYERS if z >= BASEMAP_MIN_ZOOM.get(l.name, 0)]
    return png_bytes(to_rgb(render_xyz(features, z, x, y, size, layers)))


def land_use_fractions(tile: np.ndarray) -> dict[str, float]:
    """Share of the tile's pixels covered by each land-use layer."""
    return {name: float((tile[LAYER_INDEX[name]] > 0).mean()) for name in LAND_USE_LAYERS}


def dominant_land_use(tile: np.ndarray, min_fraction: float = LABEL_MIN_FRACTION) -> str | None:
    """The land-use layer covering most of ``tile`` (C, H, W), or None below ``min_fraction``."""
    idx = [LAYER_INDEX[n] for n in LAND_USE_LAYERS]
    cover = (tile[idx] > 0).reshape(len(idx), -1).mean(1)
    best = int(np.argmax(cover))
    return LAND_USE_LAYERS[best] if cover[best] >= min_fraction else None


def dominant_land_use_batch(tiles: np.ndarray, min_fraction: float = LABEL_MIN_FRACTION) -> list[str | None]:
    """:func:`dominant_land_use` for (N, C, H, W) tiles."""
    idx = [LAYER_INDEX[n] for n in LAND_USE_LAYERS]
    cover = (tiles[:, idx] > 0).reshape(len(tiles), len(idx), -1).mean(2)
    best = cover.argmax(1)
    return [LAND_USE_LAYERS[b] if cover[i, b] >= min_fraction else None for i, b in enumerate(best)]


def tile_range(features: OsmFeatures, z: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) inclusive XYZ range covering the features' bounds at zoom ``z``."""
    minx, miny, maxx, maxy = features.bounds_m
    n = 2**z
    size = 2 * HALF_WORLD / n
    x0 = int(np.clip((minx + HALF_WORLD) // size, 0, n - 1))
    x1 = int(np.clip((maxx + HALF_WORLD) // size, 0, n - 1))
    y0 = int(np.clip((HALF_WORLD - maxy) // size, 0, n - 1))
    y1 = int(np.clip((HALF_WORLD - miny) // size, 0, n - 1))
    return x0, y0, x1, y1


def nonempty_tiles(features: OsmFeatures, z: int) -> list[tuple[int, int]]:
    """XYZ (x, y) of every tile at zoom ``z`` that some feature touches (a 1 px-per-tile render)."""
    x0, y0, x1, y1 = tile_range(features, z)
    n = 2**z
    size = 2 * HALF_WORLD / n
    bounds = (-HALF_WORLD + x0 * size, HALF_WORLD - (y1 + 1) * size, -HALF_WORLD + (x1 + 1) * size, HALF_WORLD - y0 * size)
    grid = render_bounds(features, bounds, (y1 - y0 + 1, x1 - x0 + 1)).any(0)
    # a feature smaller than a pixel may fall in a neighbour cell: dilate by one tile
    dil = grid.copy()
    dil[1:] |= grid[:-1]
    dil[:-1] |= grid[1:]
    dil[:, 1:] |= grid[:, :-1]
    dil[:, :-1] |= grid[:, 1:]
    ys, xs = np.nonzero(dil)
    return [(int(x0 + a), int(y0 + b)) for a, b in zip(xs, ys)]


def iter_region_tiles(
    features: OsmFeatures, z: int, size: int = 128, batch: int = 256
) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """Batches of (xy list, (B, C, size, size) tiles) over every non-empty tile at zoom ``z``."""
    xy = nonempty_tiles(features, z)
    for i in range(0, len(xy), batch):
        chunk = xy[i : i + batch]
        tiles = np.stack([render_xyz(features, z, x, y, size) for x, y in chunk])
        keep = tiles.reshape(len(chunk), -1).any(1)
        if keep.any():
            yield [c for c, k in zip(chunk, keep) if k], tiles[keep]
