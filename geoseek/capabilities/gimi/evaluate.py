"""GIMI's evaluation: the protocol, the Base baseline, the retrieval metrics and the table of methods.

Methods (GIMI's table):

* **Base** — no fine-tuning: ImageNet features ⊕ a fixed location code. The embedding is
  ``[√(1−β)·x̂_img ; √β·p̂(lon, lat)]`` with x̂ the L2-normalized backbone features and p̂ the
  L2-normalized parameter-free position encoding of the model's location encoder (sphereM,
  wavelengths 400 m … 40,000 km), so its cosine is ``(1−β)·cos_img + β·cos_loc`` (β = 0.5).
* **Softmax**, **Triplet**, **DPT** — the fusion heads trained by
  :func:`geoseek.capabilities.gimi.task.train_gimi` (cached per method, seed and settings).

Protocol: the test split of :mod:`geoseek.sources.geo_image_dataset` is both the query set and
the database; each test image queries all the others (itself excluded). Relevance is binary:
same label. Top-k% is the share of relevant items among the first ⌈k %·(N−1)⌉ results and
NDCG@k% the NDCG at that cut-off (:func:`geoseek.evaluate.top_k_percent`,
:func:`~geoseek.evaluate.ndcg_at_percent`), each reported as mean ± std over queries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from geoseek.capabilities.gimi.data import DEFAULT_WORK_DIR, GeoImageFeatures, dataset_key
from geoseek.capabilities.gimi.search import DEFAULT_GEO_SCALE_M
from geoseek.errors import InvalidInputError
from geoseek.evaluate import ndcg_at_percent, per_query, rank_by_scores, relevance_from_labels, top_k_percent

if TYPE_CHECKING:
    from geoseek.encoders.fusion import GeoImageEncoder

METHODS = ("base", "softmax", "triplet", "dpt")


def base_embeddings(features: np.ndarray, lonlat: np.ndarray, beta: float = 0.5, location_encoder: str | None = None,
                    location_params: dict[str, Any] | None = None) -> np.ndarray:
    """No-fine-tuning embedding ``[√(1−β)·x̂_img ; √β·p̂]`` (see the module docstring), (N, F + P)."""
    from geoseek.encoders.fusion import DEFAULT_LOCATION, DEFAULT_LOCATION_PARAMS
    from geoseek.encoders.registry import create_location_encoder

    if not 0.0 <= beta <= 1.0:
        raise InvalidInputError(f"beta must be in [0, 1], got {beta}")
    params = dict(DEFAULT_LOCATION_PARAMS if location_params is None else location_params)
    enc = create_location_encoder(location_encoder or DEFAULT_LOCATION, **params)
    with torch.no_grad():
        pos = F.normalize(enc.encode_position(torch.as_tensor(lonlat, dtype=torch.float32)), dim=1).numpy()
    img = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return np.concatenate([math.sqrt(1 - beta) * img, math.sqrt(beta) * pos], axis=1).astype(np.float32)


def retrieval_metrics(
    emb: np.ndarray,
    labels: Sequence,
    lonlat: np.ndarray | None = None,
    geo_weight: float = 0.0,
    geo_scale_m: float = DEFAULT_GEO_SCALE_M,
    percents: Sequence[float] = (5, 10),
) -> dict[str, dict[str, float]]:
    """GIMI's figures, each ``{"mean", "std"}`` over queries: ``top5``, ``top10``, ``ndcg5``, ``ndcg10``.

    Every row of ``emb`` (L2-normalized, (N, D)) queries all the others (itself excluded);
    relevance is label equality. With ``geo_weight`` > 0 the scores are the search-time blend
    (:func:`geoseek.capabilities.gimi.search.combined_scores`) of the cosine and the geographic proximity.
    """
    emb = np.asarray(emb, dtype=np.float64)
    n = len(emb)
    if n < 2:
        raise InvalidInputError("the evaluation needs at least 2 items")
    scores = emb @ emb.T
    if geo_weight:
        if lonlat is None:
            raise InvalidInputError("geo_weight needs the items' locations")
        from geoseek.geo import pairwise_haversine_m

        scores = (1 - geo_weight) * scores + geo_weight * np.exp(-pairwise_haversine_m(lonlat, lonlat) / geo_scale_m)
    rel = relevance_from_labels(labels, labels).astype(np.float64)
    ranked = rank_by_scores(scores, rel, exclude=np.eye(n, dtype=bool))[:, : n - 1]
    out: dict[str, dict[str, float]] = {}
    for p in percents:
        pct = int(p) if float(p).is_integer() else p
        out[f"top{pct}"] = per_query(np.array([top_k_percent(ranked[i : i + 1], p) for i in range(n)]))
        out[f"ndcg{pct}"] = per_query(np.array([ndcg_at_percent(ranked[i : i + 1], p) for i in range(n)]))
    return out


@torch.no_grad()
def embed_split(model: GeoImageEncoder, data: GeoImageFeatures, split: str, with_location: bool = True) -> np.ndarray:
    """(n, D) embeddings of one split's items (with or without their locations)."""
    idx = data.dataset.indices(split)
    model.eval()
    ll = torch.from_numpy(data.lonlat[idx].astype(np.float32)) if with_location else None
    return model.embed_features(torch.from_numpy(np.asarray(data.features[idx], np.float32)), ll).numpy()


def evaluate_gimi(
    data: GeoImageFeatures,
    work_dir: str | Path = DEFAULT_WORK_DIR,
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = (0,),
    steps: int = 600,
    base_beta: float = 0.5,
    cfg: dict[str, Any] | None = None,
    retrain: bool = False,
    progress: bool = True,
    geo_weight: float = 0.0,
    geo_scale_m: float = DEFAULT_GEO_SCALE_M,
) -> dict[str, Any]:
    """Train (or reuse) and evaluate every method on the test split; returns the JSON report.

    Trained heads are cached in ``<work_dir>/models/<method>-s<seed>-<key>.pt``. Each method's
    figures are mean ± std over test queries for the first seed; with several seeds,
    ``seeds`` adds the mean and std over seeds of each figure's query mean. ``geo_weight`` > 0
    ranks by the search-time blend (:func:`~geoseek.capabilities.gimi.search.combined_scores`;
    queries at their true locations).
    """
    from geoseek.capabilities.gimi.task import GimiTrainConfig, train_gimi
    from geoseek.checkpoint import load_model

    test = data.dataset.indices("test")
    labels, lonlat = data.labels[test], data.lonlat[test]
    report: dict[str, Any] = {
        "protocol": "test split queries all other test items; relevance = same label; mean ± std over queries",
        "n_test": int(len(test)),
        "n_labels_test": int(len(set(labels))),
        "dataset": data.dataset.info,
        "geo_weight": geo_weight,
        "geo_scale_m": geo_scale_m,
        "methods": {},
    }
    cfg = dict(cfg or {})
    for method in methods:
        if method not in METHODS:
            raise InvalidInputError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
        runs = []
        for seed in seeds:
            t0 = time.time()
            if method == "base":
                emb = base_embeddings(data.features[test], lonlat, base_beta)
                m = retrieval_metrics(emb, labels, lonlat, geo_weight, geo_scale_m)
                extra = {"beta": base_beta}
            else:
                tc = GimiTrainConfig(method=method, **cfg)  # type: ignore[arg-type]
                key = dataset_key({"cfg": asdict(tc), "steps": steps, "seed": seed, "data": data.dataset.info})
                out = Path(work_dir) / "models" / f"{method}-s{seed}-{key}.pt"
                if retrain or not out.is_file():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    train_gimi(data, tc, out, steps=steps, seed=seed, progress=progress)
                model, payload = load_model(out)
                emb = embed_split(model, data, "test")
                m = retrieval_metrics(emb, labels, lonlat, geo_weight, geo_scale_m)
                extra = {"checkpoint": str(out), "best_step": payload["metrics"].get("step")}
                if seed == seeds[0]:
                    m_img = retrieval_metrics(embed_split(model, data, "test", with_location=False), labels)
                    extra["without_location"] = {k: v["mean"] for k, v in m_img.items()}
            runs.append({"seed": seed, "seconds": round(time.time() - t0, 1), **m, **extra})
            if method == "base":
                break  # deterministic
        entry = dict(runs[0])
        if len(runs) > 1:
            keys = [k for k in runs[0] if isinstance(runs[0][k], dict) and "mean" in runs[0][k]]
            entry["seeds"] = {k: per_query(np.array([r[k]["mean"] for r in runs])) for k in keys}
            entry["runs"] = [{k: (r[k]["mean"] if isinstance(r[k], dict) and "mean" in r[k] else r[k]) for k in r
                              if k != "without_location"} for r in runs]
        report["methods"][method] = entry
    if "base" in methods:
        img = base_embeddings(data.features[test], lonlat, 0.0)
        report["base_image_only"] = retrieval_metrics(img, labels, lonlat, geo_weight, geo_scale_m)
    return report
