"""Geo-aware classification: data readers, synthetic sets, split, presence–absence loss, training, CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from geoseek.geoprior import (
    GeoPriorConfig,
    classification_metrics,
    evaluate_geoprior,
    frequency_baseline,
    train_geoprior,
)
from geoseek.losses.presence_absence import presence_absence_loss, random_sphere_lonlat
from geoseek.sources.occurrences import (
    ARIOLIMAX_FILE,
    INAT_FILE,
    VMFSpec,
    gpkg_geometry_to_wkb,
    load_ariolimax,
    load_inat_yfcc,
    sample_vmf,
    split_per_class,
    vmf_mixture,
)

SMALL_POLAR = VMFSpec(num_classes=8, kappa=(100.0, 400.0), min_abs_lat=75.0, per_class=120)


def test_inat_yfcc_file(shared_data):
    d = load_inat_yfcc(shared_data / INAT_FILE)
    assert len(d) == 36_143 and d.num_classes == 4_472
    assert d.lonlat.shape == (36_143, 2) and np.abs(d.lonlat[:, 1]).max() <= 90
    assert d.classes == sorted(d.classes) and d.labels.max() == 4_471


def test_ariolimax_geopackage(shared_data):
    d = load_ariolimax(shared_data / ARIOLIMAX_FILE)
    assert np.bincount(d.labels).tolist() == [4_990, 1_595]
    # California, reprojected from EPSG:32610
    assert (d.lonlat[:, 0] > -125).all() and (d.lonlat[:, 0] < -114).all()
    assert (d.lonlat[:, 1] > 32).all() and (d.lonlat[:, 1] < 42.1).all()


def test_gpkg_header_is_stripped():
    import shapely

    wkb = shapely.Point(500000.0, 4000000.0).wkb
    no_env = b"GP\x00\x01" + (32610).to_bytes(4, "little") + wkb
    with_env = b"GP\x00\x03" + (32610).to_bytes(4, "little") + bytes(32) + wkb  # flags: envelope 1 (xy)
    assert gpkg_geometry_to_wkb(no_env) == wkb and gpkg_geometry_to_wkb(with_env) == wkb
    with pytest.raises(ValueError, match="GP"):
        gpkg_geometry_to_wkb(wkb)


def test_split_is_seeded_disjoint_and_per_class():
    labels = np.repeat(np.arange(30), np.arange(1, 31))
    a, b = split_per_class(labels, seed=3), split_per_class(labels, seed=3)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["test"], split_per_class(labels, seed=4)["test"])
    allidx = np.concatenate([a["train"], a["val"], a["test"]])
    assert np.array_equal(np.sort(allidx), np.arange(len(labels)))
    assert set(labels[a["test"]]) <= set(labels[a["train"]])  # every test class is seen in training
    for c in (0, 9, 29):  # 1, 10 and 30 points
        n_test = int((labels[a["test"]] == c).sum())
        assert n_test == {0: 0, 9: 2, 29: 6}[c]


def test_vmf_sampler_matches_the_mean_cosine():
    rng = np.random.default_rng(0)
    for kappa in (2.0, 50.0, 800.0):
        mu = np.tile([[0.0, 0.6, 0.8]], (20_000, 1))
        x = sample_vmf(mu, np.full(20_000, kappa), rng)
        assert np.allclose(np.linalg.norm(x, axis=1), 1.0)
        expected = 1 / math.tanh(kappa) - 1 / kappa  # E[μ·x] for vMF on S²
        assert abs((x @ mu[0]).mean() - expected) < 0.01


def test_vmf_sets_are_seeded_and_polar_ones_stay_near_the_poles():
    a, b = vmf_mixture(SMALL_POLAR, seed=1), vmf_mixture(SMALL_POLAR, seed=1)
    assert np.array_equal(a.lonlat, b.lonlat) and np.array_equal(a.labels, b.labels)
    assert len(a) == 8 * 120 and a.num_classes == 8
    assert np.mean(np.abs(a.lonlat[:, 1]) > 65) > 0.95
    g = vmf_mixture("vmf-global", seed=0)
    assert np.mean(np.abs(g.lonlat[:, 1]) > 65) < 0.3


def test_random_negatives_are_uniform_on_the_sphere():
    torch.manual_seed(0)
    p = random_sphere_lonlat(100_000)
    assert p.shape == (100_000, 2) and p[:, 0].abs().max() <= 180 and p[:, 1].abs().max() <= 90
    # area above |lat| = 30° is 1 − sin 30° = half of the sphere
    assert abs(float((p[:, 1].abs() > 30).float().mean()) - 0.5) < 0.01


def test_presence_absence_loss_by_hand():
    z = torch.zeros(1, 2)
    y = torch.tensor([0])
    log2 = math.log(2.0)
    # positive term λ·log 2 (λ = C = 2) and one negative term log 2, averaged over C = 2 entries
    assert math.isclose(float(presence_absence_loss(z, y)), 1.5 * log2, rel_tol=1e-6)
    assert math.isclose(float(presence_absence_loss(z, y, torch.zeros(3, 2))), 2.5 * log2, rel_tol=1e-6)
    logits = torch.tensor([[3.0, -1.0]])
    want = (1.0 * math.log1p(math.exp(-3.0)) + math.log1p(math.exp(-1.0))) / 2
    assert math.isclose(float(presence_absence_loss(logits, y, pos_weight=1.0)), want, rel_tol=1e-6)


def test_metrics_and_frequency_baseline():
    logits = np.array([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1], [0.1, 0.2, 0.7]])
    m = classification_metrics(logits, np.array([1, 1, 0]))
    assert m["top1"] == pytest.approx(1 / 3) and m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    base = frequency_baseline(np.array([2, 2, 2, 0, 1]), np.array([2, 0, 1]), 3)
    assert base["top1"] == pytest.approx(1 / 3) and base["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)
    two = classification_metrics(np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 0.5]]), np.array([1, 0, 0]))
    assert two["auc"] == pytest.approx(1.0)


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


def test_cli_train_then_eval_reproduces_the_test_metrics(tmp_path, capsys):
    from geoseek.cli import main

    ckpt = tmp_path / "gp.pt"
    args = ["train", "geoprior", "--data", "vmf-polar-tight", "--encoder", "xyz", "--steps", "30",
            "--batch-size", "128", "--param", "hidden_dim=32", "--out", str(ckpt), "--json"]  # fmt: skip
    assert main(args) == 0
    trained = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert main(["eval", "geoprior", str(ckpt), "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert evaluated["data"] == "vmf-polar-tight" and evaluated["encoder"] == "xyz"
    assert evaluated["test"] == pytest.approx(trained["test"])
    assert main(["train", "geoprior", "--data", "nowhere", "--steps", "1", "--out", str(ckpt)]) == 2
    assert "unknown dataset" in capsys.readouterr().err


def test_cli_eval_locenc_json(capsys):
    from geoseek.cli import main

    args = ["eval", "locenc", "--encoders", "xyz,sphereM", "--datasets", "vmf-polar-tight", "--steps", "5",
            "--batch-size", "64", "--throughput-points", "5000", "--json"]  # fmt: skip
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    names = [r["encoder"] for r in report["encoders"]]
    assert names == ["baseline", "xyz", "sphereM"]
    for row in report["encoders"][1:]:
        assert set(row["datasets"]["vmf-polar-tight"]) >= {"top1", "top3", "mrr"}
        assert row["throughput"]["pts_per_s"] > 0
