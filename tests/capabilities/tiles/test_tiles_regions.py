"""The tiles capability on the user's regions: the mixed multi-region sampler, leave-one-region-out
with too-small regions reported, macro P@10, and ``eval tiles --adapt``."""

from __future__ import annotations

import numpy as np
import pytest

from geoseek.cli import main

RECIPE = '{"batch": 4, "val_triplets": 4, "val_retrieval": 0, "hard_after": 1, "sampler": {"d_neg": 600, "size": 64}}'


@pytest.fixture(scope="module")
def moscow(shared_data):
    return shared_data / "osm" / "moscow.osm.pbf"


def test_mixed_sampler_draws_both_regions(helsinki, moscow):
    from geoseek.capabilities.tiles.data import load_features, make_sampler
    from geoseek.capabilities.tiles.multi import MixedSampler

    samplers = []
    for r in (helsinki, moscow):
        samplers.append(make_sampler(load_features(r), {"split": False, "size": 32, "d_neg": 600.0}))
    mix = MixedSampler(samplers)
    tiles, centers = mix.sample_pairs(12, np.random.default_rng(0))
    assert tiles.shape[:2] == (2, 12) and centers.shape == (2, 12, 2)
    lon = centers[0, :, 0]
    assert (lon < 30).any() and (lon > 30).any()  # Helsinki is at 24.9 E, Moscow at 37.6 E
    t3, c3 = mix.sample(6, np.random.default_rng(1))
    assert t3.shape[:2] == (3, 6)


def test_leave_one_out_reports_small_regions_and_macro_p10(helsinki, moscow, tmp_path, last_json, capsys):
    rc = main(["eval", "tiles", str(helsinki), str(moscow), "--leave-one-out", "--checkpoints", str(tmp_path),
               "--steps", "2", "--validate-every", "1", "--recipe", RECIPE, "--baselines", "raw",
               "--protocol", "hidden", "--json"])
    assert rc == 0
    out = last_json(capsys)
    assert out["mode"] == "leave-one-out"
    # Helsinki's extract (1.0 × 1.7 km) is under twice the 1 km exclusion: reported, not dropped
    assert [s["region"] for s in out["skipped"]] == ["helsinki-center.osm.pbf"]
    assert "exclusion" in out["skipped"][0]["reason"]
    (row,) = out["regions"]
    assert row["region"] == "moscow.osm.pbf" and row["trained_on"] == ["helsinki-center.osm.pbf"] and row["split"] == "all"
    for key in ("p_at_10", "raw_p_at_10", "macro_p_at_10", "raw_macro_p_at_10"):
        assert 0 <= row[key] <= 1
    big = [k for k, c in row["label_counts"].items() if c >= 20]
    assert row["macro_labels"] == big
    assert row["macro_p_at_10"] == pytest.approx(np.mean([row["p_at_10_by_label"][k] for k in big]))
    assert out["mean"]["macro_p_at_10"] == pytest.approx(row["macro_p_at_10"])
    assert out["tile_ground_m"] == row["tile_ground_m"] == 250.0  # --tile-m reaches the folds' scoring
    assert out["held_out"] == ["helsinki-center.osm.pbf", "moscow.osm.pbf"]


def test_leave_one_out_hold_out_names_are_checked_before_training(helsinki, moscow, tmp_path, capsys):
    rc = main(["eval", "tiles", str(helsinki), str(moscow), "--leave-one-out", "--checkpoints", str(tmp_path),
               "--hold-out", "moscow,atlantis", "--json"])
    assert rc == 2 and "atlantis" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # no fold was trained


@pytest.mark.slow
def test_eval_tiles_adapts_then_scores(helsinki, last_json, capsys):
    from geoseek.checkpoint import file_checksum, resolve_checkpoint

    # --split all: the default trained on Helsinki's training blocks, and its held-out blocks hold no labelled tile
    rc = main(["eval", "tiles", str(helsinki), "--model", "default", "--adapt", "5s", "--exclude-m", "300",
               "--split", "all", "--baselines", "raw", "--protocol", "hidden", "--json"])
    assert rc == 0
    out = last_json(capsys)
    rec = out["adaptation"]
    assert out["adapt_seconds"] == rec["seconds"] and rec["budget_s"] == 5.0
    assert rec["seconds"] <= 5.0 + rec["loop_seconds"] / max(rec["steps"], 1) + 1.0
    assert rec["base_checksum"] == file_checksum(resolve_checkpoint("default", "tiles"))
    assert out["model"] == "default" and "macro_p_at_10" in out and "raw_macro_p_at_10" in out
