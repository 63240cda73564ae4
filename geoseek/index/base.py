"""The vector index protocol and the search filters every backend understands.

Vectors are float32 arrays of shape (N, D). Each vector has an integer key (int64, >= 0), a point
``(lon, lat)`` in degrees used by geographic filters (NaN for "no location": such items never
match a geographic filter), and a label used by label filters (``None``: matches no label filter).
Scores are "higher is better": inner product for ``metric="ip"`` (cosine on L2-normalized
vectors) and the negated squared Euclidean distance for ``metric="l2"``.

Every backend directory written by ``save`` holds a ``config.json`` naming its backend, so
:func:`load_index` can reopen any of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from geoseek.errors import InvalidInputError
from geoseek.geo import BBox, CoordinateError, as_lonlat, haversine_m, radius_bbox
from geoseek.registry import Registry

METRICS = ("ip", "l2")
CONFIG_FILE = "config.json"


@dataclass(frozen=True)
class Radius:
    """A circle of ``metres`` around ``(lon, lat)`` in degrees (great-circle distance)."""

    lon: float
    lat: float
    metres: float

    def __post_init__(self) -> None:
        as_lonlat((self.lon, self.lat), name="radius centre")
        if not (self.metres > 0):
            raise CoordinateError(f"radius must be > 0 metres, got {self.metres}")

    @classmethod
    def parse(cls, text: str) -> Radius:
        """Parse ``"LON,LAT,METRES"``."""
        try:
            lon, lat, metres = (float(v) for v in text.replace(" ", "").split(","))
        except ValueError:
            raise CoordinateError(f"expected LON,LAT,METRES (degrees, degrees, metres), got {text!r}") from None
        return cls(lon, lat, metres)

    def bounds(self) -> BBox:
        """A bbox that contains the circle (for pre-filtering); all longitudes when the circle
        crosses the antimeridian."""
        b = radius_bbox(self.lon, self.lat, self.metres)
        if b.west <= -180.0 or b.east >= 180.0:
            return BBox(-180.0, b.south, 180.0, b.north)
        return b

    def contains(self, lonlat: object) -> np.ndarray:
        """Boolean mask of (N, 2) (lon, lat) points within the circle."""
        p = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
        with np.errstate(invalid="ignore"):
            return haversine_m(p, np.array([self.lon, self.lat])) <= self.metres


@dataclass(frozen=True)
class Filter:
    """Restrict a search to items inside ``bbox``, within ``radius`` and with a label in ``labels``.

    Every given condition must hold (logical AND); ``None`` means "no condition".
    """

    bbox: BBox | None = None
    radius: Radius | None = None
    labels: frozenset[str] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.labels is not None and not isinstance(self.labels, frozenset):
            if isinstance(self.labels, str):
                object.__setattr__(self, "labels", frozenset([self.labels]))
            else:
                object.__setattr__(self, "labels", frozenset(self.labels))

    @property
    def empty(self) -> bool:
        return self.bbox is None and self.radius is None and self.labels is None

    def mask(self, lonlat: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Reference semantics: boolean mask over items given their points (N, 2) and labels (N,)."""
        lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
        keep = np.ones(len(lonlat), dtype=bool)
        if self.bbox is not None:
            keep &= self.bbox.contains(lonlat)
        if self.radius is not None:
            keep &= self.radius.bounds().contains(lonlat)
            idx = np.flatnonzero(keep)
            keep[idx] = self.radius.contains(lonlat[idx])
        if self.labels is not None:
            keep &= np.isin(np.asarray(labels, dtype=object), list(self.labels))
        return keep

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.bbox is not None:
            out["bbox"] = list(self.bbox.as_tuple())
        if self.radius is not None:
            out["radius"] = [self.radius.lon, self.radius.lat, self.radius.metres]
        if self.labels is not None:
            out["labels"] = sorted(self.labels)
        return out


@runtime_checkable
class VectorIndex(Protocol):
    """What every index backend offers. Keys are int64 >= 0; queries (Q, D) float32.

    Backends also offer ``load(path) -> VectorIndex`` as a classmethod (see :func:`load_index`).
    """

    dim: int
    metric: str

    def add(self, keys: np.ndarray, vectors: np.ndarray, lonlat: np.ndarray, labels: list[str | None]) -> None:
        """Add vectors (N, D) with keys (N,), points (N, 2) (lon, lat) degrees and labels (N,)."""

    def search(
        self, queries: np.ndarray, k: int, filter: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (scores (Q, k) float32, keys (Q, k) int64); missing slots have key -1."""

    def remove(self, keys: np.ndarray) -> int:
        """Remove keys; returns how many were present."""

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        """Stored vectors (N, D) float32 of ``keys`` (KeyError naming a missing key)."""

    def keys(self) -> np.ndarray:
        """Every stored key, int64 (N,)."""

    def save(self, path: Path) -> None:
        """Write the index into directory ``path`` (created), including ``config.json``."""

    def close(self) -> None:
        """Release files / connections (the index is unusable afterwards)."""

    def __len__(self) -> int: ...


BACKENDS: Registry[VectorIndex] = Registry(
    "index backend", modules=["geoseek.index.faiss_index", "geoseek.index.qdrant_index"]
)
"""Backends by name: ``BACKENDS.create(name, dim=..., metric=...)``; each also has ``load(path)``."""


def load_index(path: Path) -> VectorIndex:
    """Reopen an index saved in directory ``path`` by any backend."""
    path = Path(path)
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
        backend = config["backend"]
    except (OSError, ValueError, KeyError) as exc:
        raise InvalidInputError(f"{path} is not a saved vector index ({exc})") from None
    return BACKENDS.get(backend).load(path)  # type: ignore[attr-defined]


def clamp_k(k: int, n: int) -> int:
    """The number of result slots a top-``k`` search over ``n`` stored vectors allocates: ``min(k, n)``,
    at least 1. Every search path (collections and index backends) clamps here, so ``k = 10**9``
    costs no more than ``k = n``; results are then at most ``n`` long."""
    return max(1, min(int(k), int(n)))


def check_vectors(vectors: np.ndarray, dim: int, *, name: str = "vectors") -> np.ndarray:
    """Validate and return ``vectors`` as C-contiguous float32 (N, dim); (dim,) becomes (1, dim)."""
    arr = np.asarray(vectors)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != dim:
        raise InvalidInputError(f"{name} must have shape (N, {dim}), got {tuple(np.shape(vectors))}")
    if not np.issubdtype(arr.dtype, np.number):
        raise InvalidInputError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)  # no copy for float32 input (memory maps too)
    step = max(1, (1 << 22) // max(dim, 1))  # checked in 16 MB slices: no (N, D) temporary
    if not all(np.isfinite(arr[s:s + step]).all() for s in range(0, len(arr), step)):
        raise InvalidInputError(f"{name} contain NaN or infinite values")
    return arr


def check_add_args(
    keys: np.ndarray, vectors: np.ndarray, lonlat: np.ndarray | None, labels: list | None, dim: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str | None]]:
    """Validate the arguments of :meth:`VectorIndex.add`; returns (keys, vectors, lonlat, labels)."""
    vectors = check_vectors(vectors, dim)
    n = len(vectors)
    keys = np.asarray(keys, dtype=np.int64).reshape(-1)
    if len(keys) != n:
        raise InvalidInputError(f"{len(keys)} keys for {n} vectors")
    if n and keys.min() < 0:
        raise InvalidInputError("keys must be >= 0")
    if len(np.unique(keys)) != n:
        raise InvalidInputError("keys must be unique")
    if lonlat is None:
        lonlat = np.full((n, 2), np.nan)
    lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
    if len(lonlat) != n:
        raise InvalidInputError(f"{len(lonlat)} points for {n} vectors")
    labels = [None] * n if labels is None else list(labels)
    if len(labels) != n:
        raise InvalidInputError(f"{len(labels)} labels for {n} vectors")
    return keys, vectors, lonlat, labels
