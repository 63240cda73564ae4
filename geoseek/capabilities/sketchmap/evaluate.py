"""DeepSSN's evaluation protocol: rank of the true scene among all scenes of the region.

* :func:`eval_queries` — held-out simulated sketch queries per distortion strength (cached);
* :func:`true_ranks`, :func:`rank_metrics` — 1-based ranks, MRR and Acc@K;
* :func:`fused_ranks`, :func:`choose_fusion_weight` — the raw-pixel rerank as the search answers
  it, and its weight chosen on the validation sketches;
* :func:`evaluate_retrieval` — every model, the raw-pixel baseline and the fused rankings.
"""

from __future__ import annotations

from collections.abc import Sequence

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoseek.capabilities.common import atomic_save_npy, cache_key
from geoseek.capabilities.sketchmap.data import EVAL_SEED, SketchMapData, simulate_pool
from geoseek.capabilities.sketchmap.vectors import RAW_POOL, RERANK, embed, fused_scores, raw_vectors

FUSION_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)


def true_ranks(query_vecs: np.ndarray, db_vecs: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1-based rank of ``truth[i]`` among all database rows by inner product (ties count against)."""
    scores = query_vecs @ db_vecs.T
    t = scores[np.arange(len(truth)), truth]
    return (scores > t[:, None]).sum(1) + (scores == t[:, None]).sum(1)


def rank_metrics(ranks: np.ndarray, ks: tuple[int, ...] = (1, 3, 5, 10)) -> dict[str, float]:
    """MRR and Acc@K from 1-based ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {"mrr": float((1.0 / ranks).mean())}
    for k in ks:
        out[f"acc_at_{k}"] = float((ranks <= k).mean())
    out["median_rank"] = float(np.median(ranks))
    return out


def eval_queries(
    osm: Any, data: SketchMapData, strengths: tuple[float, ...], n_queries: int | None, progress: bool = True,
    cache_dir: str | Path | None = None,
) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    """Held-out queries per strength: {strength: (sketch rasters (Q, C, S, S), true scene indices (Q,))}.

    Seeds start at EVAL_SEED (never used in training; each strength has its own seed range);
    queries are the first ``n_queries`` held-out scenes in a fixed random order. With
    ``cache_dir`` the rasters are cached per (data settings, strength, count).
    """
    test = np.random.default_rng(EVAL_SEED).permutation(data.test_idx)
    if n_queries:
        test = test[:n_queries]
    out = {}
    for s in strengths:
        seed = EVAL_SEED + int(round(float(s) * 1000)) * 1_000_000
        cache = None
        if cache_dir:
            # keyed by the JSON text of the list (one part), so existing caches keep their names
            key = cache_key([json.dumps([data.settings, float(s), len(test), seed], sort_keys=True)], length=12)
            cache = Path(cache_dir) / f"sketchmap-queries-{key}.npy"
        if cache is not None and cache.is_file():
            r = np.load(cache)
        else:
            r = simulate_pool(osm, data.scenes, test, 1, strength=float(s), base_seed=seed, progress=progress)[:, 0]
            if cache is not None:
                atomic_save_npy(cache, r)
        out[float(s)] = (r, test)
    return out


def fused_ranks(q_model: np.ndarray, db_model: np.ndarray, q_raw: np.ndarray, db_raw: np.ndarray, truth: np.ndarray,
                weight: float, rerank: int = RERANK) -> np.ndarray:
    """Ranks as the search answers them with a raw-pixel rerank: the model's top ``rerank`` scenes
    re-sorted by :func:`fused_scores`, the rest after them in model order."""
    sm = q_model @ db_model.T
    if weight == 0:
        return true_ranks(q_model, db_model, truth)
    top = np.argsort(-sm, axis=1, kind="stable")[:, :rerank]
    scores = sm - 10.0
    for i in range(len(sm)):
        scores[i, top[i]] = fused_scores(sm[i, top[i]], db_raw[top[i]] @ q_raw[i], weight)
    t = scores[np.arange(len(truth)), truth]
    return (scores > t[:, None]).sum(1) + (scores == t[:, None]).sum(1)


def choose_fusion_weight(
    model: torch.nn.Module, data: SketchMapData | Sequence[SketchMapData],
) -> tuple[float, dict[str, float]]:
    """The raw-pixel fusion weight with the best MRR on the *validation* queries (never the test).

    Several regions' data: the mean of their validation MRRs (regions without validation scenes
    are left out). Returns (weight, {weight: validation MRR}).
    """
    datas = [d for d in ([data] if isinstance(data, SketchMapData) else list(data)) if len(d.val_idx)]
    if not datas:
        return 0.0, {}
    per: dict[str, list[float]] = {f"{w:g}": [] for w in FUSION_WEIGHTS}
    for d in datas:
        db_m, db_r = embed(model, d.scenes.rasters), raw_vectors(d.scenes.rasters, RAW_POOL)
        q_m, q_r = embed(model, d.val_queries), raw_vectors(d.val_queries, RAW_POOL)
        for w in FUSION_WEIGHTS:
            per[f"{w:g}"].append(rank_metrics(fused_ranks(q_m, db_m, q_r, db_r, d.val_idx, w))["mrr"])
    scores = {k: float(np.mean(v)) for k, v in per.items()}
    best = max(FUSION_WEIGHTS, key=lambda w: scores[f"{w:g}"])
    return float(best), scores


def evaluate_retrieval(
    models: dict[str, torch.nn.Module], data: SketchMapData, queries: dict[float, tuple[np.ndarray, np.ndarray]],
    fusion: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Rank of the true scene among all scenes of the region, for every model and the raw baseline.

    Returns ``{"by_strength": {s: {name: metrics}}, ...}``; ``name`` is each model's key,
    ``"raw"`` (cosine kNN on raw rasters, average-pooled 2×2) and, for each ``fusion``
    ``{model key: weight}``, ``"<key>+raw"`` (model cosine + weight × raw cosine).
    """
    db = {name: embed(m, data.scenes.rasters) for name, m in models.items()}
    db["raw"] = raw_vectors(data.scenes.rasters, pool=RAW_POOL)
    res: dict[str, Any] = {}
    for s, (q, truth) in queries.items():
        row = {}
        qv = {name: embed(m, q) for name, m in models.items()}
        qr = raw_vectors(q, pool=RAW_POOL)
        for name in models:
            row[name] = rank_metrics(true_ranks(qv[name], db[name], truth))
        row["raw"] = rank_metrics(true_ranks(qr, db["raw"], truth))
        for name, w in (fusion or {}).items():
            row[f"{name}+raw"] = rank_metrics(fused_ranks(qv[name], db[name], qr, db["raw"], truth, w))
        res[f"{s:g}"] = row
    return {"by_strength": res, "n_scenes": len(data.scenes), "n_queries": int(len(next(iter(queries.values()))[1]))}
