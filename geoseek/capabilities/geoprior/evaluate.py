"""Geo-prior evaluation: top-1, top-3 accuracy and MRR of the true class, ROC AUC for two classes, and the no-prior baseline.

Metrics come from :func:`geoseek.evaluate.classification_report`.
"""

from __future__ import annotations

import numpy as np

from geoseek.encoders.geoprior import GeoPriorNet, predict
from geoseek.evaluate import classification_report
from geoseek.sources.occurrences import Occurrences


def classification_metrics(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """top1, top3, mrr of the true class; ``auc`` too for two classes (score = logit₁ − logit₀)."""
    logits = np.asarray(logits, dtype=np.float64)
    out = classification_report(logits, targets, ks=(1, 3))
    if logits.shape[1] == 2:
        from sklearn.metrics import roc_auc_score

        score = logits[:, 1] - logits[:, 0]
        out["auc"] = float(roc_auc_score(targets, score)) if len(np.unique(targets)) == 2 else float("nan")
    return out


def frequency_baseline(train_labels: np.ndarray, test_labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """The no-prior baseline: every location gets the training class frequencies as scores.

    Ties between equally frequent classes are broken by class index (no credit for ties).
    """
    counts = np.bincount(train_labels, minlength=num_classes).astype(np.float64)
    scores = counts - 1e-6 * np.arange(num_classes) / num_classes
    logits = np.broadcast_to(scores, (len(test_labels), num_classes))
    return classification_metrics(logits, test_labels)


def evaluate_geoprior(model: GeoPriorNet, data: Occurrences, idx: np.ndarray) -> dict[str, float]:
    """Metrics of ``model`` on the points ``idx`` of ``data``."""
    return classification_metrics(predict(model, data.lonlat[idx]), data.labels[idx])
