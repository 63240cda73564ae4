"""Geo-image search: embed a query image (⊕ its location) and rank a collection's items.

``score = (1 − w)·cos(q, x) + w·exp(−d(q, x) / s)`` (:func:`combined_scores`) with w the geo
weight in [0, 1], d the great-circle distance in metres between the query location and the
item's centroid, and s the collection's ``geo_scale_m``. The generic entry point is
:func:`geoseek.search.image.search_by_image`; it calls :func:`nearest_by_image_and_location`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geoseek.capabilities.common import collection_model
from geoseek.errors import InvalidInputError

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit
    from geoseek.encoders.fusion import GeoImageEncoder
    from geoseek.index.base import Filter

DEFAULT_GEO_SCALE_M = 5_000.0
"""s of :func:`combined_scores` when a collection does not set ``extra.geo_scale_m`` (metres)."""


def combined_scores(visual: np.ndarray, item_lonlat: np.ndarray, query_lonlat: Sequence[float] | None,
                    geo_weight: float, geo_scale_m: float = DEFAULT_GEO_SCALE_M) -> np.ndarray:
    """``(1 − w)·visual + w·exp(−d / s)`` for (N,) cosine scores and (N, 2) item centroids (degrees).

    Items without a location (NaN) get geographic similarity 0. ``w = 0`` returns ``visual``.
    """
    if not 0.0 <= geo_weight <= 1.0:
        raise InvalidInputError(f"geo weight must be in [0, 1], got {geo_weight}")
    if not (geo_scale_m > 0):
        raise InvalidInputError(f"geo scale must be > 0 metres, got {geo_scale_m}")
    visual = np.asarray(visual, dtype=np.float64)
    if geo_weight == 0:
        return visual
    if query_lonlat is None:
        raise InvalidInputError("a geo weight > 0 needs the query's location (lon, lat)")
    from geoseek.geo import haversine_m

    d = haversine_m(np.asarray(item_lonlat, dtype=np.float64).reshape(-1, 2), np.asarray(query_lonlat, dtype=np.float64))
    geo = np.where(np.isfinite(d), np.exp(-np.nan_to_num(d, nan=np.inf) / geo_scale_m), 0.0)
    return (1 - geo_weight) * visual + geo_weight * geo


def image_to_array(image: Any) -> np.ndarray:
    """A PIL image, a path or an (H, W, 3) uint8 array → (H, W, 3) uint8 RGB."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InvalidInputError(f"image arrays must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        return image
    if isinstance(image, (str, Path)):
        p = Path(image)
        if not p.is_file():
            from geoseek.errors import NotFoundError

            raise NotFoundError(f"no image file at {p}")
        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except Exception as exc:  # PIL raises many kinds on bad files
            raise InvalidInputError(f"cannot read image {p}: {exc}") from None
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    raise InvalidInputError(f"unsupported image type {type(image).__name__}")


@torch.no_grad()
def embed_query(model: GeoImageEncoder, image: Any, lonlat: Sequence[float] | None = None) -> np.ndarray:
    """(D,) embedding of one query image (PIL, path or uint8 array), with or without (lon, lat) degrees."""
    from geoseek.geo import as_lonlat

    rgb = image_to_array(image)
    x = torch.from_numpy(np.array(rgb, dtype=np.float32, copy=True)).permute(2, 0, 1)[None] / 255.0
    ll = None
    if lonlat is not None:
        ll = torch.from_numpy(as_lonlat(lonlat, name="query location").astype(np.float32))
    model.eval()
    return model(x, ll)[0].numpy().astype(np.float32)


def nearest_by_image_and_location(
    collection: Collection,
    image: Any,
    lonlat: Sequence[float] | None = None,
    k: int = 10,
    geo_weight: float = 0.0,
    filter: Filter | None = None,
    geo_scale_m: float | None = None,
    candidates: int = 500,
) -> list[Hit]:
    """Items most similar to ``image`` (optionally located at ``lonlat``), best first.

    ``geo_weight`` w ∈ [0, 1] blends the embedding cosine with geographic proximity
    (:func:`combined_scores`, scale ``geo_scale_m`` or the collection's ``extra.geo_scale_m``);
    w > 0 needs ``lonlat``. With w > 0 the candidates are the ``candidates`` best by cosine plus
    the ``candidates`` best within 5 scales of the query, re-scored; ``filter`` (bbox, radius,
    labels) applies to both.
    """
    from geoseek.collection import Hit
    from geoseek.index.base import Filter as _Filter
    from geoseek.index.base import Radius

    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")
    if not 0.0 <= geo_weight <= 1.0:
        raise InvalidInputError(f"geo weight must be in [0, 1], got {geo_weight}")
    if geo_weight > 0 and lonlat is None:
        raise InvalidInputError("a geo weight > 0 needs the query's location: give lon and lat")
    model = collection_model(collection)
    q = embed_query(model, image, lonlat)
    if geo_weight == 0:
        return collection.search(q, k=k, filter=filter)[0]
    scale = float(geo_scale_m or collection.manifest.get("extra", {}).get("geo_scale_m", DEFAULT_GEO_SCALE_M))
    n = max(candidates, k)
    # candidates by key, scored from the in-memory item columns: no Item is built for the
    # ~1,000 candidates, only for the k hits returned (when they are read)
    first = collection.search(q, k=n, filter=filter)[0]
    pool = dict(zip(first.keys, first.scores))
    if filter is None or filter.radius is None:
        near = _Filter(bbox=filter.bbox if filter else None, radius=Radius(lonlat[0], lonlat[1], 5 * scale),
                       labels=filter.labels if filter else None)
        second = collection.search(q, k=n, filter=near)[0]
        for key, score in zip(second.keys, second.scores):
            pool.setdefault(key, score)
    if not pool:
        return []
    keys = np.fromiter(pool, dtype=np.int64, count=len(pool))
    cache = collection.item_cache()
    scores = combined_scores(np.fromiter(pool.values(), dtype=np.float64, count=len(pool)), cache.geo[keys, 4:6],
                             lonlat, geo_weight, scale)
    order = np.argsort(-scores, kind="stable")[:k]
    return [Hit.lazy(r + 1, float(scores[i]), int(keys[i]), cache) for r, i in enumerate(order)]

