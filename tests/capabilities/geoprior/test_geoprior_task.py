"""Geo-prior training: both losses beat the no-prior baseline on a small polar vMF set."""

from __future__ import annotations

import pytest

from geoseek.capabilities.geoprior.evaluate import evaluate_geoprior, frequency_baseline
from geoseek.capabilities.geoprior.task import GeoPriorConfig, train_geoprior
from geoseek.sources.occurrences import VMFSpec, split_per_class, vmf_mixture

SMALL_POLAR = VMFSpec(num_classes=8, kappa=(100.0, 400.0), min_abs_lat=75.0, per_class=120)


@pytest.mark.parametrize("loss", ["ce", "pa"])
def test_training_beats_the_no_prior_baseline(loss):
    data = vmf_mixture(SMALL_POLAR, seed=0)
    split = split_per_class(data.labels, seed=0)
    cfg = GeoPriorConfig(encoder="sphereC", loss=loss, steps=120, batch_size=128, lr=3e-3,
                         encoder_params={"frequency_num": 8, "hidden_dim": 64})  # fmt: skip
    model, result = train_geoprior(data, split, cfg, progress=False, threads=1)
    test = evaluate_geoprior(model, data, split["test"])
    base = frequency_baseline(data.labels[split["train"]], data.labels[split["test"]], data.num_classes)
    assert test["top1"] > base["top1"] + 0.3, (test, base)
    assert result["best"]["mrr"] > 0.5
