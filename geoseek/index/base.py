"""The vector index protocol and the search filters every backend understands.

Vectors are float32 arrays of shape (N, D). Each vector has an integer key (int64), a point
``(lon, lat)`` in degrees used by geographic filters, and a label used by label filters.
Scores are "higher is better": inner product for ``metric="ip"`` (cosine on L2-normalized
vectors) and the negated squared Euclidean distance for ``metric="l2"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from geoseek.geo import BBox, CoordinateError, as_lonlat, haversine_m
from geoseek.registry import Registry

METRICS = ("ip", "l2")


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

    def contains(self, lonlat: object) -> np.ndarray:
        """Boolean mask of (N, 2) (lon, lat) points within the circle."""
        p = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
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
            object.__setattr__(self, "labels", frozenset(self.labels))

    @property
    def empty(self) -> bool:
        return self.bbox is None and self.radius is None and self.labels is None

    def mask(self, lonlat: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Reference semantics: boolean mask over items given their points (N, 2) and labels (N,)."""
        keep = np.ones(len(lonlat), dtype=bool)
        if self.bbox is not None:
            keep &= self.bbox.contains(lonlat)
        if self.radius is not None:
            keep &= self.radius.contains(lonlat)
        if self.labels is not None:
            keep &= np.isin(np.asarray(labels, dtype=object), list(self.labels))
        return keep


@runtime_checkable
class VectorIndex(Protocol):
    """What every index backend offers. Keys are int64; queries (Q, D) float32."""

    dim: int
    metric: str

    def add(self, keys: np.ndarray, vectors: np.ndarray, lonlat: np.ndarray, labels: list[str]) -> None:
        """Add vectors (N, D) with keys (N,), points (N, 2) (lon, lat) degrees and labels (N,)."""

    def search(
        self, queries: np.ndarray, k: int, filter: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (scores (Q, k) float32, keys (Q, k) int64); missing slots have key -1."""

    def remove(self, keys: np.ndarray) -> int:
        """Remove keys; returns how many were present."""

    def save(self, path: Path) -> None:
        """Write the index into directory ``path`` (created)."""

    def __len__(self) -> int: ...


BACKENDS: Registry[VectorIndex] = Registry(
    "index backend", modules=["geoseek.index.faiss_index", "geoseek.index.qdrant_index"]
)
"""Backends by name: ``BACKENDS.create(name, dim=..., metric=...)``; each also has ``load(path)``."""
