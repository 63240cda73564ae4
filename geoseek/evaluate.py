"""Retrieval and classification metrics, and the ranking helpers the papers' protocols share.

Conventions: a *ranking* is a boolean or graded relevance matrix ``rel`` of shape (Q, N) whose
columns are already sorted best-first for each query (column 0 = top hit). Helpers build it
from scores (higher = better) and labels. ``n_relevant`` (Q,) is the number of relevant items
in the whole database, when the ranking is truncated; it defaults to the row sums.

Definitions (all averaged over queries; a query with no relevant item counts as 0):

* AP@all — mean of P@i over the ranks i of relevant items (scikit-learn's
  ``average_precision_score`` on untied scores).
* AP@K — Σ_{i≤K} P@i·rel_i / min(K, R), R relevant in the database.
* P@K — relevant in the top K / K. R@K — relevant in the top K / R.
* Acc@K (hit rate) — 1 if any relevant item is in the top K.
* MRR — 1 / rank of the first relevant item (0 if none).
* NDCG@K — DCG with linear gains rel_i / log2(i + 1), over the ideal DCG (scikit-learn's
  ``ndcg_score`` convention).
* Top-k% (GIMI) — P@⌈k%·N⌉: the share of relevant items among the top k percent of the
  ranking; NDCG@k% likewise is NDCG@⌈k%·N⌉.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np


def rank_by_scores(scores: np.ndarray, relevance: np.ndarray, exclude: np.ndarray | None = None) -> np.ndarray:
    """Sort each row of ``relevance`` (Q, N) by ``scores`` (Q, N) descending (stable).

    ``exclude`` (Q, N) boolean marks entries to drop (e.g. the query itself); they are moved
    to the end with relevance 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    relevance = np.asarray(relevance)
    if scores.shape != relevance.shape:
        raise ValueError(f"scores {scores.shape} and relevance {relevance.shape} differ in shape")
    if exclude is not None:
        scores = np.where(exclude, -np.inf, scores)
        relevance = np.where(exclude, 0, relevance)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(relevance, order, axis=1)


def relevance_from_labels(query_labels: Sequence, db_labels: Sequence) -> np.ndarray:
    """Boolean (Q, N): database item j is relevant to query i when their labels are equal."""
    q = np.asarray(query_labels, dtype=object)[:, None]
    d = np.asarray(db_labels, dtype=object)[None, :]
    return q == d


def _check(rel: np.ndarray) -> np.ndarray:
    rel = np.asarray(rel, dtype=np.float64)
    if rel.ndim == 1:
        rel = rel[None, :]
    if rel.ndim != 2:
        raise ValueError(f"a ranking must be (Q, N), got shape {rel.shape}")
    return rel


def _n_rel(rel: np.ndarray, n_relevant: Iterable[float] | None) -> np.ndarray:
    if n_relevant is None:
        return (rel > 0).sum(1).astype(np.float64)
    return np.asarray(n_relevant, dtype=np.float64).reshape(-1)


def average_precision(rel: np.ndarray, n_relevant: Iterable[float] | None = None) -> np.ndarray:
    """AP@all per query, shape (Q,)."""
    rel = _check(rel) > 0
    hits = np.cumsum(rel, axis=1)
    ranks = np.arange(1, rel.shape[1] + 1)
    prec_sum = (hits / ranks * rel).sum(1)
    r = _n_rel(rel, n_relevant)
    return np.divide(prec_sum, r, out=np.zeros_like(prec_sum), where=r > 0)


def map_at_all(rel: np.ndarray, n_relevant: Iterable[float] | None = None) -> float:
    """Mean AP over queries (mAP@all)."""
    return float(average_precision(rel, n_relevant).mean())


def map_at_k(rel: np.ndarray, k: int, n_relevant: Iterable[float] | None = None) -> float:
    """mAP@K with AP@K = Σ_{i≤K} P@i·rel_i / min(K, R)."""
    rel = _check(rel) > 0
    r = _n_rel(rel, n_relevant)
    top = rel[:, :k]
    hits = np.cumsum(top, axis=1)
    prec_sum = (hits / np.arange(1, top.shape[1] + 1) * top).sum(1)
    denom = np.minimum(k, r)
    return float(np.divide(prec_sum, denom, out=np.zeros_like(prec_sum), where=denom > 0).mean())


def precision_at_k(rel: np.ndarray, k: int) -> float:
    """Mean P@K (the denominator is K even where the ranking is shorter)."""
    rel = _check(rel) > 0
    return float(rel[:, :k].sum(1).mean() / k)


def recall_at_k(rel: np.ndarray, k: int, n_relevant: Iterable[float] | None = None) -> float:
    """Mean R@K = relevant in top K / R."""
    rel = _check(rel) > 0
    r = _n_rel(rel, n_relevant)
    got = rel[:, :k].sum(1).astype(np.float64)
    return float(np.divide(got, r, out=np.zeros_like(got), where=r > 0).mean())


def acc_at_k(rel: np.ndarray, k: int) -> float:
    """Hit rate: share of queries with a relevant item in the top K."""
    rel = _check(rel) > 0
    return float(rel[:, :k].any(1).mean())


def mrr(rel: np.ndarray) -> float:
    """Mean reciprocal rank of the first relevant item (0 for queries with none)."""
    rel = _check(rel) > 0
    first = rel.argmax(1)
    rr = np.where(rel.any(1), 1.0 / (first + 1), 0.0)
    return float(rr.mean())


def ndcg_at_k(rel: np.ndarray, k: int, ideal: np.ndarray | None = None) -> float:
    """Mean NDCG@K with linear gains and log2 discounts.

    ``ideal`` (Q, M) gives each query's full set of gains for the ideal ordering when ``rel``
    is a truncated ranking; by default the ideal is ``rel`` sorted descending.
    """
    rel = _check(rel)
    ideal = rel if ideal is None else _check(ideal)
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    top = rel[:, :k]
    dcg = (top * disc[: top.shape[1]]).sum(1)
    ideal_top = -np.sort(-ideal, axis=1)[:, :k]
    idcg = (ideal_top * disc[: ideal_top.shape[1]]).sum(1)
    return float(np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0).mean())


def cutoff_for_percent(n_items: int, percent: float) -> int:
    """⌈percent/100 · N⌉, at least 1: the rank cut-off of a Top-k% metric."""
    if not 0 < percent <= 100:
        raise ValueError(f"percent must be in (0, 100], got {percent}")
    return max(1, math.ceil(percent / 100.0 * n_items))


def top_k_percent(rel: np.ndarray, percent: float, n_items: int | None = None) -> float:
    """GIMI's Top-k%: mean share of relevant items among the top ⌈k%·N⌉ of each ranking."""
    rel = _check(rel)
    return precision_at_k(rel, cutoff_for_percent(n_items or rel.shape[1], percent))


def ndcg_at_percent(rel: np.ndarray, percent: float, n_items: int | None = None) -> float:
    """GIMI's NDCG at k%: NDCG@⌈k%·N⌉."""
    rel = _check(rel)
    return ndcg_at_k(rel, cutoff_for_percent(n_items or rel.shape[1], percent))


def per_query(metric_values: np.ndarray) -> dict[str, float]:
    """Mean and standard deviation of per-query values (as GIMI's "mean ± std")."""
    v = np.asarray(metric_values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std())}


def retrieval_report(rel: np.ndarray, ks: Sequence[int] = (1, 5, 10), n_relevant=None) -> dict[str, float]:
    """The usual figures of one ranking in one dict: map, mrr, p_at_K, acc_at_K, ndcg_at_K."""
    out = {"map": map_at_all(rel, n_relevant), "mrr": mrr(rel)}
    for k in ks:
        out[f"p_at_{k}"] = precision_at_k(rel, k)
        out[f"acc_at_{k}"] = acc_at_k(rel, k)
        out[f"ndcg_at_{k}"] = ndcg_at_k(rel, k)
    return out


def classification_report(logits: np.ndarray, targets: np.ndarray, ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    """Top-K accuracy and MRR of the true class from class scores (N, C) and targets (N,)."""
    logits = np.asarray(logits, dtype=np.float64)
    targets = np.asarray(targets, dtype=np.int64)
    true = logits[np.arange(len(targets)), targets]
    rank = (logits > true[:, None]).sum(1) + 1  # 1 = best; ties count in the true class's favour
    out = {f"top{k}": float((rank <= k).mean()) for k in ks}
    out["mrr"] = float((1.0 / rank).mean())
    return out
