"""Geo-prior evaluation: the metrics and the no-prior frequency baseline, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from geoseek.capabilities.geoprior.evaluate import classification_metrics, frequency_baseline


def test_metrics_and_frequency_baseline():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.1, 0.2, 0.7]])
    m = classification_metrics(logits, np.array([1, 1, 0]))
    assert m["top1"] == pytest.approx(1 / 3) and m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    base = frequency_baseline(np.array([2, 2, 2, 0, 1]), np.array([2, 0, 1]), 3)
    assert base["top1"] == pytest.approx(1 / 3) and base["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    two = classification_metrics(np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.5]]), np.array([1, 0, 0]))
    assert two["auc"] == pytest.approx(1.0)
