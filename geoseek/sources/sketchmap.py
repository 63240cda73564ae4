"""Sketch maps: typed objects drawn on a canvas (or placed on a map), rasterized into OSM channels.

Format (JSON Schema: ``geoseek/schemas/sketch-map.schema.json``)
-----------------------------------------------------------------
A GeoJSON-like ``FeatureCollection``::

    {"type": "FeatureCollection",
     "crs": "canvas",                       # "canvas" (default) or "map"
     "canvas": {"width": 512, "height": 512},  # canvas only: pixels, origin top-left, y down
     "features": [
        {"type": "Feature", "properties": {"layer": "building"},
         "geometry": {"type": "Polygon", "coordinates": [[[x, y], ...]]}},
        {"type": "Feature", "properties": {"layer": "major_road"},
         "geometry": {"type": "LineString", "coordinates": [[x, y], ...]}},
        {"type": "Feature", "properties": {"layer": "amenity"},
         "geometry": {"type": "Point", "coordinates": [x, y]}}]}

``properties.layer`` is a layer name of :mod:`geoseek.sources.layers`. Geometry types are
Polygon / MultiPolygon / LineString / MultiLineString / Point / MultiPoint. With
``"crs": "map"`` coordinates are (lon, lat) degrees and the sketch covers the features' bounding
box (or ``"bbox": [west, south, east, north]``).

Rasterization
-------------
A sketch is assumed to depict one scene window (``window_m`` metres square, the size of the
scenes it is compared with). Canvas coordinates are scaled so the longer canvas side spans
the window; map coordinates are projected to local metres (equirectangular about the centre)
and the longer bbox side is scaled to the window. The result is the same (C, H, W) uint8
layout as OSM scene rasters (channel order of :data:`geoseek.sources.layers.LAYERS`, 255 =
present), drawn by :func:`draw_local_features`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

from geoseek.errors import InvalidInputError
from geoseek.sources.layers import LAYER_INDEX, LAYER_NAMES, LAYERS

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "schemas" / "sketch-map.schema.json"
MAX_FEATURES = 5000
MAX_VERTICES = 200_000
GEOMETRY_TYPES = ("Polygon", "MultiPolygon", "LineString", "MultiLineString", "Point", "MultiPoint")
DEFAULT_WINDOW_M = 480.0
DEFAULT_SIZE = 64


@dataclass
class LocalFeature:
    """One object in local window coordinates: metres, x east, y north, origin at the SW corner."""

    layer: str
    geometry: BaseGeometry
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class SketchMap:
    """A validated sketch map. ``features`` are in local metres of a ``window_m`` square."""

    features: list[LocalFeature]
    window_m: float
    crs: str
    bbox: tuple[float, float, float, float] | None = None
    """(west, south, east, north) degrees for ``crs == "map"``."""

    def rasterize(self, size: int = DEFAULT_SIZE) -> np.ndarray:
        """(C, size, size) uint8 raster in the OSM channel order."""
        return draw_local_features(self.features, self.window_m, size)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.features:
            out[f.layer] = out.get(f.layer, 0) + 1
        return out


def _err(msg: str) -> InvalidInputError:
    return InvalidInputError(f"invalid sketch map: {msg}")


def _check_coords(coords: Any, depth: int, where: str) -> int:
    """Check nested coordinate arrays of the given depth (0 = a position); return vertex count."""
    if depth == 0:
        if not isinstance(coords, (list, tuple)) or len(coords) < 2:
            raise _err(f"{where}: a position must be [x, y], got {json.dumps(coords)[:60]}")
        for v in coords[:2]:
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                raise _err(f"{where}: coordinates must be finite numbers, got {json.dumps(coords)[:60]}")
        return 1
    if not isinstance(coords, (list, tuple)):
        raise _err(f"{where}: coordinates must be nested arrays")
    return sum(_check_coords(c, depth - 1, f"{where}[{i}]") for i, c in enumerate(coords))


_DEPTH = {"Point": 0, "MultiPoint": 1, "LineString": 1, "MultiLineString": 2, "Polygon": 2, "MultiPolygon": 3}


def _check_geometry(geom: Any, where: str) -> int:
    if not isinstance(geom, dict):
        raise _err(f"{where}.geometry must be an object with type and coordinates")
    gtype = geom.get("type")
    if gtype not in GEOMETRY_TYPES:
        raise _err(f"{where}.geometry.type must be one of {', '.join(GEOMETRY_TYPES)}, got {gtype!r}")
    if "coordinates" not in geom:
        raise _err(f"{where}.geometry has no coordinates")
    coords = geom["coordinates"]
    n = _check_coords(coords, _DEPTH[gtype], f"{where}.geometry.coordinates")
    if gtype == "LineString" and len(coords) < 2:
        raise _err(f"{where}: a LineString needs at least 2 positions")
    if gtype == "MultiLineString" and any(len(c) < 2 for c in coords):
        raise _err(f"{where}: every line of a MultiLineString needs at least 2 positions")
    rings = coords if gtype == "Polygon" else [r for p in coords for r in p] if gtype == "MultiPolygon" else []
    if gtype in ("Polygon", "MultiPolygon"):
        if gtype == "Polygon" and not coords:
            raise _err(f"{where}: a Polygon needs an outer ring")
        for r in rings:
            if len(r) < 3:
                raise _err(f"{where}: a polygon ring needs at least 3 positions")
    return n


def parse_sketch_map(obj: Any, *, window_m: float = DEFAULT_WINDOW_M) -> SketchMap:
    """Validate a sketch-map JSON object and convert it to local metres.

    Raises :class:`InvalidInputError` whose message names the offending feature and field.
    """
    if isinstance(obj, (str, bytes, bytearray)):
        from geoseek.safejson import loads_limited

        obj = loads_limited(obj, what="the sketch map")
    if not isinstance(obj, dict):
        raise _err("the top level must be a JSON object (a GeoJSON FeatureCollection)")
    if obj.get("type", "FeatureCollection") != "FeatureCollection":
        raise _err(f"type must be 'FeatureCollection', got {obj.get('type')!r}")
    feats = obj.get("features")
    if not isinstance(feats, list):
        raise _err("'features' must be an array of GeoJSON features")
    if not feats:
        raise _err("'features' is empty: draw at least one object")
    if len(feats) > MAX_FEATURES:
        raise _err(f"too many features ({len(feats)} > {MAX_FEATURES})")
    crs = obj.get("crs", "canvas")
    if not isinstance(crs, str) or crs not in ("canvas", "map"):
        raise _err(f"crs must be 'canvas' or 'map', got {crs!r}")
    if not (isinstance(window_m, (int, float)) and window_m > 0):
        raise _err("window_m must be a positive number of metres")

    total = 0
    raw: list[tuple[str, BaseGeometry]] = []
    for i, f in enumerate(feats):
        where = f"features[{i}]"
        if not isinstance(f, dict):
            raise _err(f"{where} must be a GeoJSON Feature object")
        props = f.get("properties")
        if not isinstance(props, dict) or "layer" not in props:
            raise _err(f"{where}.properties.layer is missing; layers are: {', '.join(LAYER_NAMES)}")
        name = props["layer"]
        if not isinstance(name, str):
            raise _err(f"{where}.properties.layer must be a string (a layer name), got {type(name).__name__}; "
                       f"layers are: {', '.join(LAYER_NAMES)}")
        if name not in LAYER_INDEX:
            raise _err(f"{where}.properties.layer {name!r} is not a layer; layers are: {', '.join(LAYER_NAMES)}")
        total += _check_geometry(f.get("geometry"), where)
        if total > MAX_VERTICES:
            raise _err(f"too many vertices (> {MAX_VERTICES})")
        try:
            geom = shape(f["geometry"])
        except Exception as exc:  # shapely rejects some degenerate inputs
            raise _err(f"{where}.geometry cannot be read: {exc}") from None
        if geom.is_empty:
            raise _err(f"{where}.geometry is empty")
        raw.append((name, geom))

    if crs == "canvas":
        canvas = obj.get("canvas")
        if not isinstance(canvas, dict):
            raise _err("a canvas sketch needs 'canvas': {'width': W, 'height': H} in pixels")
        w, h = canvas.get("width"), canvas.get("height")
        for k, v in (("width", w), ("height", h)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v <= 100_000):
                raise _err(f"canvas.{k} must be a positive number of pixels, got {v!r}")
        scale = window_m / max(w, h)
        # pixel (x, y down) -> metres (x east, y north), canvas centred in the window
        ox = (window_m - w * scale) / 2
        oy = (window_m - h * scale) / 2
        matrix = [scale, 0, 0, -scale, ox, oy + h * scale]
        feats_local = [LocalFeature(n, shapely.affinity.affine_transform(g, matrix)) for n, g in raw]
        return SketchMap(feats_local, float(window_m), "canvas")

    bbox = obj.get("bbox")
    for i, (_, g) in enumerate(raw):
        x0, y0, x1, y1 = g.bounds
        if not (-180 <= x0 <= x1 <= 180 and -90 <= y0 <= y1 <= 90):
            raise _err(f"features[{i}]: map coordinates must be (lon, lat) degrees")
    if bbox is None:
        bounds = np.array([g.bounds for _, g in raw])
        bbox = (bounds[:, 0].min(), bounds[:, 1].min(), bounds[:, 2].max(), bounds[:, 3].max())
    elif not (isinstance(bbox, list) and len(bbox) == 4
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox)):
        raise _err("bbox must be [west, south, east, north] in degrees")
    west, south, east, north = map(float, bbox)
    if not (west <= east and south <= north):
        raise _err("bbox must be [west, south, east, north] with west <= east and south <= north")
    lat0 = math.radians((south + north) / 2)
    mx = 111_320.0 * math.cos(lat0)
    my = 110_540.0
    span = max((east - west) * mx, (north - south) * my)
    if span > 20_000:
        raise _err(f"the sketch spans {span / 1000:.1f} km; a sketch map depicts one scene (at most 20 km)")
    if span <= 0:
        span = window_m
    scale = window_m / span
    cx, cy = (west + east) / 2, (south + north) / 2
    matrix = [mx * scale, 0, 0, my * scale, window_m / 2 - cx * mx * scale, window_m / 2 - cy * my * scale]
    feats_local = [LocalFeature(n, shapely.affinity.affine_transform(g, matrix)) for n, g in raw]
    return SketchMap(feats_local, float(window_m), "map", (west, south, east, north))


def load_sketch_map(path: str | Path, *, window_m: float = DEFAULT_WINDOW_M) -> SketchMap:
    """Read and validate a sketch-map JSON file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"no sketch-map file at {path}")
    from geoseek.safejson import loads_limited

    return parse_sketch_map(loads_limited(path.read_bytes(), what=f"the sketch map {path.name}"), window_m=window_m)


def to_geojson(features: list[LocalFeature], window_m: float, canvas: int = 512) -> dict[str, Any]:
    """Local features → a canvas sketch-map JSON object (``canvas`` px square, y down)."""
    s = canvas / window_m
    matrix = [s, 0, 0, -s, 0, canvas]
    out = []
    for f in features:
        g = shapely.affinity.affine_transform(f.geometry, matrix)
        out.append({"type": "Feature", "properties": {"layer": f.layer}, "geometry": shapely.geometry.mapping(g)})
    return {"type": "FeatureCollection", "crs": "canvas", "canvas": {"width": canvas, "height": canvas}, "features": out}


# ---------------------------------------------------------------------------------------------
# Rasterization of local-metre features into OSM channels.


def _iter_parts(g: BaseGeometry):
    if hasattr(g, "geoms"):
        for p in g.geoms:
            yield from _iter_parts(p)
    else:
        yield g


def _as_layer_kind(geom: BaseGeometry, kind: str, width_m: float) -> list[BaseGeometry]:
    """Coerce one drawn part to the geometry kind its layer is rendered with.

    Area layers: closed lines become polygons, open lines and points become 4-m wide strokes /
    discs (a sketcher may outline a park with a line). Line layers: polygons become their
    outline, points a dot. Point layers: anything becomes its centroid.
    """
    gt = geom.geom_type
    if kind == "point":
        return [geom if gt == "Point" else geom.centroid]
    if kind == "line":
        if gt == "Polygon":
            return [shapely.LineString(geom.exterior.coords)]
        if gt == "Point":
            r = max(width_m, 2.0) / 2
            return [shapely.LineString([(geom.x - r, geom.y), (geom.x + r, geom.y)])]
        return [geom]
    if gt == "Polygon":
        return [geom]
    if gt in ("LineString", "LinearRing"):
        c = np.asarray(geom.coords)
        if len(c) >= 4 and np.allclose(c[0], c[-1]):
            return [p for p in _iter_parts(shapely.make_valid(shapely.Polygon(c))) if p.geom_type == "Polygon"]
    return [p for p in _iter_parts(geom.buffer(2.0, quad_segs=2)) if p.geom_type == "Polygon"]


def local_to_osm_features(features: list[LocalFeature]):
    """Local-metre features → :class:`geoseek.sources.osm.OsmFeatures` whose "mercator" frame is
    the local metre frame (render with ``ground_scale=1``), so the OSM renderer draws sketches."""
    from geoseek.sources.osm import LayerGeometry, OsmFeatures, _from_parts

    by_layer: dict[str, list[BaseGeometry]] = {}
    for f in features:
        lay = LAYERS[LAYER_INDEX[f.layer]]
        for part in _iter_parts(f.geometry):
            if not part.is_empty:
                by_layer.setdefault(f.layer, []).extend(_as_layer_kind(part, lay.kind, lay.width_m))
    layers = {}
    for lay in LAYERS:
        geoms = [g for g in by_layer.get(lay.name, []) if not g.is_empty]
        if not geoms:
            layers[lay.name] = LayerGeometry.empty(lay)
            continue
        arr = np.asarray(geoms, dtype=object)
        if lay.kind == "point":
            xy = shapely.get_coordinates(arr)
            n = len(xy)
            layers[lay.name] = LayerGeometry(lay, xy, np.arange(n + 1), np.arange(n), np.zeros(n, bool), np.concatenate([xy, xy], 1))
        elif lay.kind == "line":
            xy, idx = shapely.get_coordinates(arr, return_index=True)
            layers[lay.name] = _from_parts(lay, xy, idx, np.arange(len(arr)), np.zeros(len(arr), bool), len(arr))
        else:
            n_int = shapely.get_num_interior_rings(arr)
            rings, poly_of_ring = shapely.get_rings(arr, return_index=True)
            first = np.r_[0, np.cumsum(n_int + 1)[:-1]]
            hole = np.ones(len(rings), bool)
            hole[first] = False
            xy, ring_of_vertex = shapely.get_coordinates(rings, return_index=True)
            layers[lay.name] = _from_parts(lay, xy, ring_of_vertex, poly_of_ring, hole, len(arr))
    return OsmFeatures(layers, source="sketch")


def draw_local_features(features: list[LocalFeature], window_m: float, size: int = DEFAULT_SIZE) -> np.ndarray:
    """Rasterize local-metre features into a (C, size, size) uint8 array (255 = present).

    The drawing is done by the OSM renderer (:func:`geoseek.sources.render.render_bounds`) on
    the local frame, so sketches and scenes share one rasterizer: areas filled, lines stroked
    ``width_m`` metres, points discs of ``width_m`` metres. Row 0 is the north edge.
    """
    from geoseek.sources.render import render_bounds

    return render_bounds(local_to_osm_features(features), (0.0, 0.0, float(window_m), float(window_m)), size, ground_scale=1.0)


def validate_with_schema(obj: Any) -> None:
    """Validate ``obj`` against the JSON Schema (structure only); :func:`parse_sketch_map` adds the rest."""
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    try:
        jsonschema.validate(obj, schema)
    except jsonschema.ValidationError as exc:
        loc = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise _err(f"{loc}: {exc.message}") from None
