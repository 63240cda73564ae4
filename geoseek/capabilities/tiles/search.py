"""The tiles query pipeline over an ``osm-tiles`` collection: "places like this one", arithmetic, interpolation.

* :class:`CollectionContext` — the model, OSM features, zoom and tile scale behind a collection (memoized per path and build);
* :func:`vector_at` — the embedding of the place at (lon, lat): its stored tile, or a fresh render;
* :func:`similar` — tiles most like a place (the engine of ``geoseek search --near``,
  :func:`geoseek.search.near.search_near`);
* :func:`arithmetic`, :func:`interpolate` — embedding arithmetic a + b − c and the walk from a to b.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseek.capabilities.tiles.data import (
    DEFAULT_ZOOM, MODALITY, TILE_PX, as_ground_m, embed_tiles, load_features, render_tile,
)
from geoseek.errors import InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from torch import nn

    from geoseek.collection import Collection, Hit
    from geoseek.sources.osm import OsmFeatures


class CollectionContext:
    """The model, features, zoom and tile scale behind an osm-tiles collection (memoized per collection path and build).

    ``ground_m``: the ground metres of a tile's model input, from the manifest's
    ``extra.tile_ground_m``; None (the XYZ tile itself) when it is 0 or absent, as in collections
    built before the key existed, so they keep rendering their query tiles as they were built.
    """

    _cache: dict[str, CollectionContext] = {}

    def __init__(self, col: Collection) -> None:
        extra = col.manifest.get("extra", {}) or {}
        self.zoom = int(extra.get("zoom", DEFAULT_ZOOM))
        self.tile_px = int(extra.get("tile_px", TILE_PX))
        self.ground_m = as_ground_m(extra.get("tile_ground_m"))
        self.col = col
        self.build = (col.manifest.get("build_id"), col.manifest.get("generation"))
        self._features = None
        self.osm_path = col.file(extra.get("osm_file", "source.osm.pbf"))
        self.model_path = col.file(extra.get("model_file", "model.pt"))

    @classmethod
    def of(cls, col: Collection) -> CollectionContext:
        """The context of ``col``, memoized per path and build: a collection rebuilt at the same path
        (another ``build_id``, zoom or ``--tile-m``) gets a fresh one, never the old build's scale."""
        key = str(col.path)
        build = (col.manifest.get("build_id"), col.manifest.get("generation"))
        got = cls._cache.get(key)
        if got is None or got.build != build:
            got = cls._cache[key] = cls(col)
        return got

    @property
    def features(self) -> OsmFeatures:
        if self._features is None:
            if not Path(self.osm_path).is_file():
                raise NotFoundError(f"collection {self.col.path} has no OSM data file")
            self._features = load_features(self.osm_path)
        return self._features

    @property
    def model(self) -> nn.Module:
        """The collection's tile encoder (``model_path``), from the process-wide model cache."""
        from geoseek.capabilities.common import collection_model

        return collection_model(self.col)


def check_collection(col: Collection) -> None:
    """Refuse (:class:`~geoseek.errors.InvalidInputError`) a collection that is not ``osm-tiles``."""
    if col.manifest.get("modality") != MODALITY:
        raise InvalidInputError(f"{col.path} is a {col.manifest.get('modality')!r} collection, not {MODALITY!r}")


def tile_id_at(col: Collection, lon: float, lat: float) -> str:
    """Id ("z/x/y") of the collection's tile containing (lon, lat)."""
    from geoseek.geo import lonlat_to_tile

    z = CollectionContext.of(col).zoom
    x, y = lonlat_to_tile(lon, lat, z)
    return f"{z}/{x}/{y}"


def vector_at(col: Collection, lon: float, lat: float) -> tuple[np.ndarray, str | None]:
    """The embedding of the place at (lon, lat) degrees: the stored vector of its tile, or a fresh render.

    A fresh render is the tile's model input as the collection was built (:func:`render_tile`
    with the collection's ``ground_m``). Returns (vector (D,), item id or None when the tile is
    not in the collection).
    """
    from geoseek.geo import as_lonlat, lonlat_to_tile

    check_collection(col)
    as_lonlat([[lon, lat]])  # validates ranges
    tid = tile_id_at(col, lon, lat)
    try:
        return np.asarray(col.vector(tid), np.float32), tid
    except (KeyError, NotFoundError):
        pass
    ctx = CollectionContext.of(col)
    x, y = lonlat_to_tile(lon, lat, ctx.zoom)
    tile = render_tile(ctx.features, ctx.zoom, x, y, ctx.tile_px, ctx.ground_m)
    if not tile.any():
        raise NotFoundError(f"nothing is mapped at {lon:.5f},{lat:.5f} in this collection's OSM data")
    return embed_tiles(ctx.model, tile[None])[0], None


def _resolve(col: Collection, ref: str | tuple[float, float] | Sequence[float]) -> tuple[np.ndarray, str | None]:
    """An item id ("z/x/y") or a (lon, lat) pair → (vector, id or None)."""
    if isinstance(ref, str):
        if "," in ref and ref.count("/") == 0:
            from geoseek.geo import parse_lonlat

            lon, lat = parse_lonlat(ref)
            return vector_at(col, lon, lat)
        try:
            return np.asarray(col.vector(ref), np.float32), ref
        except KeyError:
            raise NotFoundError(f"no tile {ref!r} in {col.path}") from None
    lon, lat = (float(v) for v in ref)
    return vector_at(col, lon, lat)


def _normalize(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def _search(col: Collection, v: np.ndarray, k: int, exclude: set[str], filter: Any = None) -> list[Hit]:
    from dataclasses import replace

    # ``Collection.search`` gives one ``Hits`` sequence per query; ``Hit.id`` reads the id without
    # building the item, and ``replace`` re-ranks a copy (the Hit is a plain dataclass)
    hits = col.search(_normalize(v)[None], k=k + len(exclude), filter=filter)[0]
    kept = [h for h in hits if h.id not in exclude][:k]
    return [replace(h, rank=i + 1) for i, h in enumerate(kept)]


def similar(col: Collection, lon: float, lat: float, k: int = 10, filter: Any = None, include_self: bool = False) -> list[Hit]:
    """Tiles most like the place at (lon, lat) ("places like this one"), best first."""
    if k <= 0:
        raise InvalidInputError(f"k must be > 0, got {k}")
    v, tid = vector_at(col, lon, lat)
    return _search(col, v, k, set() if include_self or tid is None else {tid}, filter)


def arithmetic(col: Collection, a: Any, b: Any, c: Any, k: int = 10, filter: Any = None) -> list[Hit]:
    """Tiles nearest to a + b − c (each an item id "z/x/y", "LON,LAT" or a (lon, lat) pair)."""
    va, ia = _resolve(col, a)
    vb, ib = _resolve(col, b)
    vc, ic = _resolve(col, c)
    return _search(col, va + vb - vc, k, {i for i in (ia, ib, ic) if i}, filter)


def interpolate(col: Collection, a: Any, b: Any, steps: int = 5, k: int = 1, filter: Any = None) -> list[list[Hit]]:
    """Walk from a to b in ``steps`` points (spherical interpolation); the k nearest tiles of each."""
    if steps < 2 or steps > 100:
        raise InvalidInputError(f"steps must be in 2..100, got {steps}")
    va, _ = _resolve(col, a)
    vb, _ = _resolve(col, b)
    va, vb = _normalize(va), _normalize(vb)
    omega = math.acos(float(np.clip(va @ vb, -1.0, 1.0)))
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        if omega < 1e-6:
            v = va
        else:
            v = (math.sin((1 - t) * omega) * va + math.sin(t * omega) * vb) / math.sin(omega)
        out.append(_search(col, v, k, set(), filter))
    return out
