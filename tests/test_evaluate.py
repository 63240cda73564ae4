"""Metrics against independent oracles: scikit-learn and hand-computed cases."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, ndcg_score

from geoseek import evaluate as ev


@pytest.fixture
def random_case():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(20, 50))
    rel = rng.random((20, 50)) < 0.2
    rel[:, 0] = True  # every query has at least one relevant item
    return scores, rel


def test_map_matches_sklearn(random_case):
    scores, rel = random_case
    ranked = ev.rank_by_scores(scores, rel)
    expected = np.mean([average_precision_score(r, s) for r, s in zip(rel, scores)])
    assert ev.map_at_all(ranked) == pytest.approx(expected, abs=1e-12)


def test_ndcg_matches_sklearn(random_case):
    scores, _ = random_case
    rng = np.random.default_rng(1)
    graded = rng.integers(0, 4, size=scores.shape).astype(float)
    ranked = ev.rank_by_scores(scores, graded)
    for k in (1, 5, 10, 50):
        assert ev.ndcg_at_k(ranked, k) == pytest.approx(ndcg_score(graded, scores, k=k), abs=1e-12)


def test_hand_computed_ranking():
    rel = np.array([[0, 1, 0, 1, 1]])
    # relevant at ranks 2, 4, 5: AP = (1/2 + 2/4 + 3/5) / 3
    assert ev.map_at_all(rel) == pytest.approx((0.5 + 0.5 + 0.6) / 3)
    assert ev.precision_at_k(rel, 2) == 0.5
    assert ev.recall_at_k(rel, 4) == pytest.approx(2 / 3)
    assert ev.acc_at_k(rel, 1) == 0.0 and ev.acc_at_k(rel, 2) == 1.0
    assert ev.mrr(rel) == 0.5
    # AP@2 = P@2 * 1 / min(2, 3)
    assert ev.map_at_k(rel, 2) == pytest.approx(0.25)
    # truncated ranking with more relevant items in the database than shown
    assert ev.map_at_all(rel, n_relevant=[6]) == pytest.approx((0.5 + 0.5 + 0.6) / 6)


def test_no_relevant_counts_as_zero():
    rel = np.array([[0, 0, 0], [1, 0, 0]])
    assert ev.map_at_all(rel) == 0.5
    assert ev.mrr(rel) == 0.5


def test_top_k_percent():
    rel = np.zeros((1, 200))
    rel[0, [0, 3, 15]] = 1
    # top 5% of 200 = 10 items, 2 relevant among them
    assert ev.top_k_percent(rel, 5) == pytest.approx(0.2)
    assert ev.cutoff_for_percent(199, 5) == 10
    with pytest.raises(ValueError):
        ev.cutoff_for_percent(10, 0)


def test_exclude_self_matches():
    scores = np.array([[9.0, 1.0, 2.0]])
    rel = np.array([[1, 0, 1]])
    ranked = ev.rank_by_scores(scores, rel, exclude=np.array([[True, False, False]]))
    assert ranked.tolist() == [[1, 0, 0]]


def test_classification_report():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.2, 0.3, 0.5]])
    rep = ev.classification_report(logits, np.array([1, 2, 0]), ks=(1, 2))
    assert rep["top1"] == pytest.approx(1 / 3)
    assert rep["top2"] == pytest.approx(2 / 3)
    assert rep["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
