"""The zero-shot protocol: seen / unseen metrics, ablations, baselines and the fold summary."""

from __future__ import annotations

from geoseek.sources.datasets import Fold


def test_evaluation_metrics_and_baselines(trained):
    from geoseek.capabilities.sketch_image.evaluate import evaluate_fold, summarize

    _, _, data, model, _ = trained
    fold = Fold(1, ["discs", "grid"], ["stripes"])
    r = evaluate_fold(model, data, fold, rerank=5)
    for key in ("seen", "unseen", "unseen_no_rerank", "unseen_no_filter", "baseline_imagenet_unseen", "baseline_hog_unseen"):
        assert 0 <= r[key]["map"] <= 100, key
    s = summarize([r])
    assert s["unseen_map"] == round(r["unseen"]["map"], 2) and "seen_map" in s
