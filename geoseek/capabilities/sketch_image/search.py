"""Sketch → image search over a built collection: ink map → ANN over the images' [RT] vectors →
cross-attention rerank of the top candidates against their stored token sets.

The generic entry :func:`geoseek.search.sketch.search_sketch` (behind ``geoseek search --sketch``
and ``POST /collections/{name}/search/sketch``) calls :func:`search_drawing`, which reads the
sketch with :mod:`geoseek.sources.sketch`, encodes it with the collection's model and searches,
never calling back up.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from geoseek.capabilities.common import collection_model
from geoseek.capabilities.sketch_image.data import TASK
from geoseek.capabilities.sketch_image.encode import encode_sketches
from geoseek.errors import InvalidInputError

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit
    from geoseek.index.base import Filter


def _require_sketch_collection(collection: Collection) -> None:
    """Refuse a collection not built by ``geoseek build images`` (clear 4xx, before its model loads)."""
    if collection.manifest.get("extra", {}).get("task") != TASK:
        raise InvalidInputError(f"collection {collection.name} was not built for sketch search (geoseek build images)")


@torch.no_grad()
def search_ink_maps(collection: Collection, inks: np.ndarray, k: int = 10, filter: Filter | None = None,
                    rerank: int = 100) -> list[list[Hit]]:
    """Two-stage search for a batch of ink maps (Q, S, S): ANN over [RT] vectors, then rerank.

    The top ``max(k, rerank)`` ANN candidates of each query are re-scored by the cross-attention
    layer against their stored token sets (``rerank=0`` skips the second stage). Hit scores are
    cross-attention cosines for reranked hits, [RT] cosines otherwise.
    """
    from geoseek.collection import Hit

    _require_sketch_collection(collection)
    if k <= 0:
        raise InvalidInputError(f"k must be > 0, got {k}")
    net = collection_model(collection)
    es, st = encode_sketches(net, np.asarray(inks))
    n = max(k, rerank)
    scores, keys = collection.index.search(es.astype(np.float32), n, filter)
    scores, keys = np.asarray(scores, np.float32), np.asarray(keys)
    if rerank > 0:
        valid = keys >= 0
        uniq = np.unique(keys[valid])
        if len(uniq):
            tokens = collection.array("tokens")
            it = torch.from_numpy(np.asarray(tokens[uniq], np.float32))
            pos = np.searchsorted(uniq, np.where(valid, keys, uniq[0]))
            cs = net.cross_score_candidates(st, it, torch.from_numpy(pos)).numpy()
            scores = np.where(valid, cs, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")
            scores = np.take_along_axis(scores, order, 1)
            keys = np.take_along_axis(keys, order, 1)
    flat = np.unique(keys[keys >= 0])
    found = collection.store.items_by_keys(flat.tolist()) if len(flat) else {}
    out = []
    for qi in range(len(keys)):
        hits = []
        for s, key in zip(scores[qi].tolist(), keys[qi].tolist()):
            item = found.get(key)
            if item is None:
                continue
            hits.append(Hit(rank=len(hits) + 1, score=float(s), item=item))
            if len(hits) == k:
                break
        out.append(hits)
    return out


def search_drawing(collection: Collection, sketch: np.ndarray | bytes | str | Path, k: int = 10,
                   filter: Filter | None = None, rerank: int = 100, filename: str | None = None) -> list[Hit]:
    """Search by one sketch: an ink map (S, S), or PNG/JPG/strokes-JSON bytes or a file path.

    ``filename`` names the format of bytes (``.json`` / ``.ndjson`` strokes; JSON-looking bytes
    are strokes too, anything else an image).
    """
    from geoseek.sources.sketch import load_sketch

    if not isinstance(sketch, np.ndarray):
        _require_sketch_collection(collection)
        net = collection_model(collection)
        sketch = load_sketch(sketch, size=net.sketch_size, filename=filename)
    return search_ink_maps(collection, sketch[None], k, filter, rerank)[0]
