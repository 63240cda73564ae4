"""Sketch-map evaluation: ranks and metrics, and the raw-pixel rerank of the model's top scenes."""

from __future__ import annotations

import numpy as np
import pytest

from geoseek.capabilities.sketchmap.evaluate import fused_ranks, rank_metrics, true_ranks


def test_rank_metrics():
    q = np.eye(4, dtype=np.float32)
    db = np.eye(4, dtype=np.float32)
    r = true_ranks(q, db, np.array([0, 1, 3, 2]))
    assert r[0] == 1 and r[1] == 1 and r[2] > 1
    m = rank_metrics(np.array([1, 2, 4, 20]))
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0.05) / 4)
    assert m["acc_at_1"] == 0.25 and m["acc_at_3"] == 0.5 and m["acc_at_5"] == 0.75 and m["acc_at_10"] == 0.75


def test_fused_ranks_rerank_only_the_top():
    rng = np.random.default_rng(0)
    dbm = rng.normal(size=(50, 8)).astype(np.float32)
    dbm /= np.linalg.norm(dbm, axis=1, keepdims=True)
    dbr = np.eye(50, dtype=np.float32)
    truth = np.array([7, 9])
    qm = dbm[[3, 9]]  # query 0's model vector points at scene 3, query 1's at 9
    qr = dbr[[7, 9]]  # raw pixels point at the true scenes
    assert (fused_ranks(qm, dbm, qr, dbr, truth, 0.0) >= 1).all()
    r_full = fused_ranks(qm, dbm, qr, dbr, truth, 5.0, rerank=50)
    assert list(r_full) == [1, 1]
    r_top1 = fused_ranks(qm, dbm, qr, dbr, truth, 5.0, rerank=1)
    assert r_top1[1] == 1 and r_top1[0] > 1  # scene 7 is outside query 0's top-1: not promoted
