"""The sketch-map query pipeline over a scene collection: validate and rasterize the sketch, embed it
with the collection's encoder, search, and (with ``extra.fusion_weight > 0``) rerank the model's top
:data:`~geoseek.capabilities.sketchmap.vectors.RERANK` scenes by model + weight × raw-pixel cosine.

The generic query entry (``geoseek search --sketch-map``, the HTTP route) is
:func:`geoseek.search.sketchmap.search_sketch_map`, which calls :func:`search_scenes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geoseek.capabilities import common
from geoseek.capabilities.sketchmap.build import MODALITY
from geoseek.capabilities.sketchmap.data import DEFAULT_SIZE, DEFAULT_WINDOW_M
from geoseek.capabilities.sketchmap.vectors import RAW_POOL, RERANK, embed, fused_scores, raw_vectors
from geoseek.errors import InvalidInputError

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit
    from geoseek.index.base import Filter


def collection_model(col: Collection) -> torch.nn.Module:
    """The sketch-map encoder stored in a scene collection (loaded once per file and process,
    see :func:`geoseek.capabilities.common.collection_model`)."""
    if col.manifest.get("modality") != MODALITY:
        # the shared loader refuses too, but without the hint of how such a collection is made
        raise InvalidInputError(f"sketch-map search needs an {MODALITY!r} collection (geoseek build sketchmap); "
                                f"{col.path} holds {col.manifest.get('modality')!r}")
    return common.collection_model(col, modality=MODALITY)


def sketch_raster(col: Collection, sketch: Any) -> np.ndarray:
    """Validate a sketch map (JSON object / text / :class:`SketchMap`) and rasterize it for ``col``."""
    from geoseek.sources.sketchmap import SketchMap, parse_sketch_map

    extra = col.manifest.get("extra", {})
    window_m, size = float(extra.get("window_m", DEFAULT_WINDOW_M)), int(extra.get("size", DEFAULT_SIZE))
    sm = sketch if isinstance(sketch, SketchMap) else parse_sketch_map(sketch, window_m=window_m)
    return sm.rasterize(size)


def search_scenes(col: Collection, sketch: Any, k: int = 10, filter: Filter | None = None) -> list[Hit]:
    """Top-k scenes of ``col`` for a sketch map (JSON object, JSON text or parsed SketchMap)."""
    model = collection_model(col)
    r = sketch_raster(col, sketch)
    if not r.any():
        raise InvalidInputError("invalid sketch map: nothing of it falls on the canvas / window")
    v = embed(model, r[None])
    weight = float(col.manifest.get("extra", {}).get("fusion_weight", 0.0))
    if weight <= 0:
        return col.search(v, k=k, filter=filter)[0]
    # second step: rerank the model's top RERANK scenes by model cosine + weight × raw-pixel cosine
    hits = col.search(v, k=max(k, RERANK), filter=filter)[0]
    if not hits:
        return hits
    rasters = col.array("rasters")
    keys = col.keys_of([h.item.id for h in hits])
    raw_db = raw_vectors(np.asarray(rasters[np.asarray(keys)]), RAW_POOL)
    raw_q = raw_vectors(r[None], RAW_POOL)[0]
    fused = fused_scores(np.array([h.score for h in hits]), raw_db @ raw_q, weight)
    order = np.argsort(-fused, kind="stable")[:k]
    return [type(hits[0])(rank=i + 1, score=float(fused[j]), item=hits[j].item) for i, j in enumerate(order)]
