"""Geo-prior commands: ``train geoprior`` then ``eval geoprior`` reproduce the test figures; ``eval locenc --json``."""

from __future__ import annotations

import json

import pytest


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
