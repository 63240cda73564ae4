"""Read OpenStreetMap files (.osm.pbf, .osm, .osm.gz, .osm.bz2) into features by layer.

pyosmium streams the file once with node locations and its area assembler (closed ways and
multipolygon relations become areas). Each object is classified into zero or more layers of
:mod:`geoseek.sources.layers`; geometries are kept as flat NumPy arrays in web-mercator metres
(EPSG:3857) so the renderer can project and select them without Python loops per vertex.

Example::

    feats = read_osm("malta.osm.pbf")
    feats.layers["building"].n            # number of building polygons
    feats.bbox                            # (west, south, east, north) degrees of all features
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.geo import BBox, lonlat_to_mercator_m
from geoseek.sources.layers import LAYERS, Layer

R_MERC = 6_378_137.0

_MAJOR = {"motorway", "trunk", "primary", "secondary"}
_MINOR = {"tertiary", "residential", "unclassified", "service", "living_street", "road"}
_PATH = {"footway", "path", "cycleway", "pedestrian", "steps", "track", "bridleway"}
_RAIL = {"rail", "light_rail", "tram", "subway", "narrow_gauge"}
_WATERWAY = {"river", "stream", "canal", "drain", "ditch"}
_PARK_LEISURE = {"park", "garden", "pitch", "golf_course"}
_PARK_LANDUSE = {"grass", "recreation_ground", "meadow", "village_green"}
_FARM = {"farmland", "farmyard", "orchard", "vineyard", "allotments"}
_INDUSTRIAL = {"industrial", "quarry", "port", "railway"}
_KEYS = ("building", "highway", "railway", "waterway", "natural", "water", "landuse", "leisure", "amenity", "shop")


def line_layers(tags: dict[str, str]) -> list[str]:
    """Line layers of a way with ``tags`` (highway / railway / waterway)."""
    out = []
    hw = tags.get("highway", "")
    if hw.endswith("_link"):
        hw = hw[:-5]
    if tags.get("area") == "yes":
        return out
    if hw in _MAJOR:
        out.append("major_road")
    elif hw in _MINOR:
        out.append("minor_road")
    elif hw in _PATH:
        out.append("path")
    if tags.get("railway") in _RAIL:
        out.append("railway")
    if tags.get("waterway") in _WATERWAY:
        out.append("waterway")
    return out


def area_layers(tags: dict[str, str]) -> list[str]:
    """Area layers of a closed way or multipolygon with ``tags``."""
    out = []
    b = tags.get("building")
    if b and b != "no":
        out.append("building")
    lu, nat, lei = tags.get("landuse", ""), tags.get("natural", ""), tags.get("leisure", "")
    if nat in ("water", "bay") or "water" in tags or tags.get("waterway") == "riverbank" or lu in ("reservoir", "basin"):
        out.append("water")
    if lei in _PARK_LEISURE or lu in _PARK_LANDUSE:
        out.append("park")
    if lu == "forest" or nat in ("wood", "scrub"):
        out.append("forest")
    if lu in _FARM:
        out.append("farmland")
    if lu == "residential":
        out.append("residential")
    if lu in ("commercial", "retail"):
        out.append("commercial")
    if lu in _INDUSTRIAL:
        out.append("industrial")
    return out


def is_poi(tags: dict[str, str]) -> bool:
    return "amenity" in tags or "shop" in tags


@dataclass
class LayerGeometry:
    """The features of one layer as flat arrays in web-mercator metres.

    ``coords`` (P, 2) float64 holds every vertex; ``offsets`` (R + 1,) cuts it into parts
    (polygon rings, line strings; a point layer has one vertex per part). ``part_feature`` (R,)
    maps a part to its feature, ``part_hole`` (R,) marks interior rings. ``bounds`` (F, 4) is
    each feature's (minx, miny, maxx, maxy).
    """

    layer: Layer
    coords: np.ndarray
    offsets: np.ndarray
    part_feature: np.ndarray
    part_hole: np.ndarray
    bounds: np.ndarray
    _tree: object = field(default=None, repr=False, compare=False)

    @property
    def n(self) -> int:
        return int(self.bounds.shape[0])

    @property
    def n_parts(self) -> int:
        return int(self.part_feature.shape[0])

    def part_bounds(self) -> np.ndarray:
        """(R, 4) (minx, miny, maxx, maxy) of each part."""
        if self.n_parts == 0:
            return np.zeros((0, 4))
        starts = self.offsets[:-1]
        mn = np.minimum.reduceat(self.coords, starts, axis=0)
        mx = np.maximum.reduceat(self.coords, starts, axis=0)
        return np.concatenate([mn, mx], axis=1)

    def query(self, box: tuple[float, float, float, float]) -> np.ndarray:
        """Indices of parts whose bounds intersect ``box`` (minx, miny, maxx, maxy) mercator metres."""
        if self.n_parts == 0:
            return np.zeros(0, dtype=np.int64)
        if self._tree is None:
            self._tree = _GridIndex(self.part_bounds())
        return self._tree.query(box)

    @classmethod
    def empty(cls, layer: Layer) -> LayerGeometry:
        return cls(layer, np.zeros((0, 2)), np.zeros(1, np.int64), np.zeros(0, np.int64), np.zeros(0, bool), np.zeros((0, 4)))


class _GridIndex:
    """A uniform grid over part bounds: query cost ∝ parts in the touched cells (NumPy only)."""

    def __init__(self, bounds: np.ndarray, cell: float | None = None) -> None:
        self.bounds = bounds
        lo = bounds[:, :2].min(0)
        hi = bounds[:, 2:].max(0)
        if cell is None:
            # about 4 parts per cell on average, and not finer than 200 m
            area = max(float(np.prod(hi - lo)), 1.0)
            cell = max(200.0, float(np.sqrt(area * 4 / max(len(bounds), 1))))
        self.cell, self.lo = cell, lo
        self.shape = np.maximum(np.ceil((hi - lo) / cell).astype(int), 1)
        c0 = np.clip(((bounds[:, :2] - lo) // cell).astype(int), 0, self.shape - 1)
        c1 = np.clip(((bounds[:, 2:] - lo) // cell).astype(int), 0, self.shape - 1)
        spans = (c1 - c0 + 1)
        big = spans.prod(1) > 64  # very large parts are kept apart and always tested
        self.big = np.nonzero(big)[0]
        small = np.nonzero(~big)[0]
        cells, owners = [], []
        for dx in range(int(spans[small, 0].max(initial=1))):
            for dy in range(int(spans[small, 1].max(initial=1))):
                ok = (dx < spans[small, 0]) & (dy < spans[small, 1])
                idx = small[ok]
                cells.append((c0[idx, 0] + dx) * self.shape[1] + (c0[idx, 1] + dy))
                owners.append(idx)
        cells_a = np.concatenate(cells) if cells else np.zeros(0, np.int64)
        owners_a = np.concatenate(owners) if owners else np.zeros(0, np.int64)
        order = np.argsort(cells_a, kind="stable")
        self.owners = owners_a[order]
        self.starts = np.searchsorted(cells_a[order], np.arange(self.shape[0] * self.shape[1] + 1))

    def query(self, box: tuple[float, float, float, float]) -> np.ndarray:
        b = self.bounds
        cell, lo, (nx, ny) = self.cell, self.lo, self.shape
        x0 = min(max(int((box[0] - lo[0]) // cell), 0), nx - 1)
        y0 = min(max(int((box[1] - lo[1]) // cell), 0), ny - 1)
        x1 = min(max(int((box[2] - lo[0]) // cell), 0), nx - 1)
        y1 = min(max(int((box[3] - lo[1]) // cell), 0), ny - 1)
        parts = [self.owners[self.starts[cx * ny + y0] : self.starts[cx * ny + y1 + 1]] for cx in range(x0, x1 + 1)]
        if len(self.big):
            parts.append(self.big)
        cand = np.concatenate(parts)
        if len(cand) == 0:
            return cand
        if len(parts) > 1 or y1 > y0:
            cand = np.unique(cand)
        bc = b[cand]
        ok = (bc[:, 0] <= box[2]) & (bc[:, 2] >= box[0]) & (bc[:, 1] <= box[3]) & (bc[:, 3] >= box[1])
        return cand[ok]


@dataclass
class OsmFeatures:
    """Features of one OSM file by layer (see :data:`geoseek.sources.layers.LAYERS`)."""

    layers: dict[str, LayerGeometry]
    source: str = ""

    @property
    def bounds_m(self) -> tuple[float, float, float, float]:
        """(minx, miny, maxx, maxy) web-mercator metres of all features."""
        bs = [g.bounds for g in self.layers.values() if g.n]
        if not bs:
            raise InvalidInputError(f"{self.source or 'the OSM data'} has no features in any layer")
        b = np.concatenate(bs)
        return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())

    @property
    def bbox(self) -> BBox:
        """(west, south, east, north) degrees of all features."""
        x0, y0, x1, y1 = self.bounds_m
        (w, s), (e, n) = mercator_to_lonlat(np.array([[x0, y0], [x1, y1]]))
        return BBox(float(w), float(s), float(e), float(n))

    def counts(self) -> dict[str, int]:
        return {name: g.n for name, g in self.layers.items()}


def mercator_to_lonlat(xy: np.ndarray) -> np.ndarray:
    """(N, 2) EPSG:3857 metres → (N, 2) (lon, lat) degrees."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    lon = np.degrees(xy[:, 0] / R_MERC)
    lat = np.degrees(2 * np.arctan(np.exp(xy[:, 1] / R_MERC)) - np.pi / 2)
    return np.stack([lon, lat], axis=1)


class _Collector:
    """Accumulates WKB geometries per layer while the file streams."""

    def __init__(self) -> None:
        self.wkb: dict[str, list[bytes]] = {layer.name: [] for layer in LAYERS}
        self.poi_lonlat: list[tuple[float, float]] = []
        self.poi_area_wkb: list[bytes] = []


def _check_path(path: Path) -> None:
    if not path.exists():
        raise NotFoundError(f"OSM file not found: {path}")
    if not path.is_file():
        raise InvalidInputError(f"not a file: {path}")
    name = path.name.lower()
    if not name.endswith((".osm.pbf", ".pbf", ".osm", ".osm.gz", ".osm.bz2", ".osm.xml")):
        raise InvalidInputError(f"{path}: expected an OpenStreetMap file (.osm.pbf, .osm, .osm.gz or .osm.bz2)")


def read_osm(path: str | Path, *, progress: bool = False) -> OsmFeatures:
    """Read an OSM file into :class:`OsmFeatures` (web-mercator metres, one entry per layer).

    Raises:
        NotFoundError: the file does not exist.
        InvalidInputError: the file is not readable OSM data (bad, truncated, wrong format).
    """
    import osmium
    import shapely

    path = Path(path)
    _check_path(path)
    col = _Collector()
    wkbf = osmium.geom.WKBFactory()
    try:
        fp = (
            osmium.FileProcessor(str(path))
            .with_locations()
            .with_areas()
        )
        for obj in fp:
            if obj.is_node():
                if not len(obj.tags):
                    continue
                tags = dict(obj.tags)
                if is_poi(tags) and obj.location.valid():
                    col.poi_lonlat.append((obj.location.lon, obj.location.lat))
            elif obj.is_way():
                if not len(obj.tags):
                    continue
                tags = dict(obj.tags)
                names = line_layers(tags)
                if names:
                    try:
                        g = wkbf.create_linestring(obj)
                    except Exception:  # invalid locations / degenerate ways in extracts
                        continue
                    for n in names:
                        col.wkb[n].append(bytes.fromhex(g) if isinstance(g, str) else g)
            elif obj.is_area():
                tags = dict(obj.tags)
                names = area_layers(tags)
                poi = is_poi(tags)
                if not names and not poi:
                    continue
                try:
                    g = wkbf.create_multipolygon(obj)
                except Exception:
                    continue
                g = bytes.fromhex(g) if isinstance(g, str) else g
                for n in names:
                    col.wkb[n].append(g)
                if poi:
                    col.poi_area_wkb.append(g)
    except (RuntimeError, ValueError, OSError) as exc:
        raise InvalidInputError(f"{path} is not a readable OSM file ({exc})") from None
    layers: dict[str, LayerGeometry] = {}
    for layer in LAYERS:
        if layer.kind == "point":
            pts = [np.asarray(col.poi_lonlat, dtype=np.float64).reshape(-1, 2)]
            if col.poi_area_wkb:
                cents = shapely.centroid(shapely.from_wkb(col.poi_area_wkb))
                pts.append(shapely.get_coordinates(cents))
            layers[layer.name] = _points(layer, np.concatenate(pts))
        elif layer.kind == "line":
            layers[layer.name] = _lines(layer, shapely.from_wkb(col.wkb[layer.name]) if col.wkb[layer.name] else [])
        else:
            layers[layer.name] = _areas(layer, shapely.from_wkb(col.wkb[layer.name]) if col.wkb[layer.name] else [])
    feats = OsmFeatures(layers, source=str(path))
    if sum(g.n for g in layers.values()) == 0:
        raise InvalidInputError(f"{path} holds no mappable features (buildings, roads, land use...)")
    return feats


def _points(layer: Layer, lonlat: np.ndarray) -> LayerGeometry:
    if len(lonlat) == 0:
        return LayerGeometry.empty(layer)
    xy = lonlat_to_mercator_m(lonlat)
    n = len(xy)
    return LayerGeometry(layer, xy, np.arange(n + 1), np.arange(n), np.zeros(n, bool), np.concatenate([xy, xy], 1))


def _lines(layer: Layer, geoms: Sequence) -> LayerGeometry:
    import shapely

    if len(geoms) == 0:
        return LayerGeometry.empty(layer)
    geoms = np.asarray(geoms)
    coords, idx = shapely.get_coordinates(geoms, return_index=True)
    return _from_parts(layer, lonlat_to_mercator_m(coords), idx, np.arange(len(geoms)), np.zeros(len(geoms), bool), len(geoms))


def _areas(layer: Layer, geoms: Sequence) -> LayerGeometry:
    import shapely

    if len(geoms) == 0:
        return LayerGeometry.empty(layer)
    geoms = np.asarray(geoms)
    polys, feat_of_poly = shapely.get_parts(geoms, return_index=True)
    # rings of each polygon: exterior first, then interiors
    n_int = shapely.get_num_interior_rings(polys)
    rings, poly_of_ring = shapely.get_rings(polys, return_index=True)
    first = np.r_[0, np.cumsum(n_int + 1)[:-1]]
    hole = np.ones(len(rings), bool)
    hole[first] = False
    coords, ring_of_vertex = shapely.get_coordinates(rings, return_index=True)
    return _from_parts(layer, lonlat_to_mercator_m(coords), ring_of_vertex, feat_of_poly[poly_of_ring], hole, len(geoms))


def _from_parts(
    layer: Layer, xy: np.ndarray, part_of_vertex: np.ndarray, part_feature: np.ndarray, hole: np.ndarray, n_features: int
) -> LayerGeometry:
    n_parts = len(part_feature)
    counts = np.bincount(part_of_vertex, minlength=n_parts)
    offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
    keep_parts = counts >= 2
    bounds = np.full((n_features, 4), np.nan)
    if len(xy):
        f_of_v = part_feature[part_of_vertex]
        bounds[:, 0] = np.inf
        bounds[:, 1] = np.inf
        bounds[:, 2] = -np.inf
        bounds[:, 3] = -np.inf
        np.minimum.at(bounds[:, 0], f_of_v, xy[:, 0])
        np.minimum.at(bounds[:, 1], f_of_v, xy[:, 1])
        np.maximum.at(bounds[:, 2], f_of_v, xy[:, 0])
        np.maximum.at(bounds[:, 3], f_of_v, xy[:, 1])
    g = LayerGeometry(layer, xy, offsets, np.asarray(part_feature, np.int64), np.asarray(hole, bool), bounds)
    if not keep_parts.all():
        g = _select_parts(g, np.nonzero(keep_parts)[0])
    ok = np.isfinite(g.bounds).all(1)
    if not ok.all():
        g.bounds = g.bounds[ok]  # features with no vertex: drop (part_feature never points at them)
        remap = np.cumsum(ok) - 1
        g.part_feature = remap[g.part_feature]
    return g


def _select_parts(g: LayerGeometry, parts: np.ndarray) -> LayerGeometry:
    starts, ends = g.offsets[parts], g.offsets[parts + 1]
    lens = ends - starts
    idx = np.repeat(starts - np.r_[0, np.cumsum(lens)[:-1]], lens) + np.arange(lens.sum())
    return LayerGeometry(
        g.layer, g.coords[idx], np.r_[0, np.cumsum(lens)].astype(np.int64), g.part_feature[parts], g.part_hole[parts], g.bounds
    )


def features_from_geometries(geometries: dict[str, Sequence], source: str = "") -> OsmFeatures:
    """:class:`OsmFeatures` from shapely geometries in (lon, lat) degrees, by layer name.

    Area layers take (Multi)Polygons, line layers (Multi)LineStrings, the point layer Points;
    missing layers are empty. Useful for sketch maps and tests.
    """
    import shapely

    unknown = set(geometries) - {layer.name for layer in LAYERS}
    if unknown:
        raise InvalidInputError(f"unknown layers {sorted(unknown)}; layers are: {', '.join(l.name for l in LAYERS)}")
    layers: dict[str, LayerGeometry] = {}
    for layer in LAYERS:
        geoms = list(geometries.get(layer.name, []))
        if not geoms:
            layers[layer.name] = LayerGeometry.empty(layer)
        elif layer.kind == "point":
            layers[layer.name] = _points(layer, shapely.get_coordinates(np.asarray(geoms)))
        elif layer.kind == "line":
            layers[layer.name] = _lines(layer, shapely.get_parts(np.asarray(geoms)))
        else:
            layers[layer.name] = _areas(layer, geoms)
    return OsmFeatures(layers, source=source)
