"""The sketch-map capability on the user's regions: multi-region training, leave-one-region-out,
``build sketchmap --adapt`` within its budget, and builds that require the user's region."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from geoseek.cli import main

TINY = ["--window-m", "240", "--size", "32", "--copies", "2", "--batch-scenes", "8",
        "--model-config", '{"widths": [8, 16, 16], "hidden": 32}']


@pytest.fixture(scope="module")
def two_regions(shared_data) -> list[str]:
    return [str(shared_data / "osm" / "helsinki-center.osm.pbf"), str(shared_data / "osm" / "moscow.osm.pbf")]


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_on_two_regions_records_the_mix(two_regions, tmp_path):
    from geoseek.checkpoint import read_checkpoint

    out = tmp_path / "multi.pt"
    rc = main(["train", "sketchmap", *two_regions, "--out", str(out), "--steps", "3", "--validate-every", "3",
               "--model", "sketchmap-sppcnn", "--cache", str(tmp_path / "cache"), "--quiet", *TINY])
    assert rc == 0
    data = read_checkpoint(out)["data"]
    assert data["sources"] == ["helsinki-center.osm.pbf", "moscow.osm.pbf"]
    assert data["mix"]["rule"] == "sqrt" and len(data["mix"]["p"]) == 2 and min(data["mix"]["p"]) > 0.3
    extra = read_checkpoint(out)["extra"]  # the rerank weight, chosen on the regions' validation sketches
    assert extra["fusion_weight"] in (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0)
    assert max(extra["fusion_val_mrr"], key=extra["fusion_val_mrr"].get) == f"{extra['fusion_weight']:g}"


def test_leave_one_out_end_to_end_and_reuses_its_checkpoints(two_regions, tmp_path, capsys):
    argv = ["eval", "sketchmap", *two_regions, "--leave-one-out", "--checkpoints", str(tmp_path / "ck"),
            "--cache", str(tmp_path / "cache"), "--steps", "3", "--validate-every", "3", "--train-model", "sketchmap-sppcnn",
            "--queries", "8", "--strengths", "1", "--quiet", "--json", *TINY]
    assert main(argv) == 0
    out = _last_json(capsys)
    assert out["mode"] == "leave-one-out" and out["skipped"] == []
    rows = {r["region"]: r for r in out["regions"]}
    assert set(rows) == {"helsinki-center.osm.pbf", "moscow.osm.pbf"}
    assert rows["moscow.osm.pbf"]["trained_on"] == ["helsinki-center.osm.pbf"]
    for r in rows.values():
        assert 0 < r["mrr"] <= 1 and 0 < r["raw_mrr"] <= 1 and r["n_queries"] == 8
        assert r["queries_from"] == "all scenes" and not r["checkpoint_reused"]
        assert 0 < r["search_mrr"] <= 1  # what a collection built with the fold would answer
        if r["fusion_weight"] == 0:
            assert r["search_mrr"] == r["mrr"]
    assert out["mean"]["mrr"] == pytest.approx(sum(r["mrr"] for r in rows.values()) / 2)
    assert len(list((tmp_path / "ck").glob("*.pt.done"))) == 2
    assert main(argv) == 0  # a rerun reuses both folds and scores the same
    again = _last_json(capsys)
    assert all(r["checkpoint_reused"] for r in again["regions"])
    assert again["mean"]["mrr"] == pytest.approx(out["mean"]["mrr"])


def test_leave_one_out_needs_a_checkpoint_folder(two_regions, capsys):
    assert main(["eval", "sketchmap", *two_regions, "--leave-one-out", "--json"]) == 2
    assert "--checkpoints" in capsys.readouterr().err


def test_build_needs_the_users_region(tmp_path, capsys):
    assert main(["build", "sketchmap", "--out", str(tmp_path / "c")]) == 2
    assert "needs the OSM file of your region" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_build_geo_images_needs_the_users_data(tmp_path, capsys):
    assert main(["build", "geo-images", "--out", str(tmp_path / "g")]) == 2
    assert "--data" in capsys.readouterr().err


@pytest.mark.slow
def test_adapted_build_respects_its_budget_and_searches_with_its_own_model(shared_data, tmp_path, sketch):
    """``--adapt 5s`` on Helsinki: the adaptation stops within one step of its budget, the build costs at most
    the budget plus what a plain build of the same region costs (reading, cutting, embedding) plus that step."""
    from geoseek.capabilities.sketchmap.search import search_scenes
    from geoseek.checkpoint import file_checksum, resolve_checkpoint
    from geoseek.collection import Collection

    region = str(shared_data / "osm" / "helsinki-center.osm.pbf")
    t = time.monotonic()
    assert main(["build", "sketchmap", region, "--out", str(tmp_path / "plain"), "--quiet", "--workers", "1"]) == 0
    plain_s = time.monotonic() - t
    budget = 5.0
    t = time.monotonic()
    assert main(["build", "sketchmap", region, "--out", str(tmp_path / "adapted"), "--adapt", "5s", "--quiet",
                 "--workers", "1"]) == 0
    adapted_s = time.monotonic() - t
    col = Collection.open(tmp_path / "adapted")
    rec = col.manifest["extra"]["adaptation"]
    step_s = rec["loop_seconds"] / max(rec["steps"], 1)
    assert rec["budget_s"] == budget and rec["steps"] >= 1
    assert rec["seconds"] <= budget + step_s + 1.0
    assert adapted_s <= plain_s + budget + step_s + 5.0  # 5 s: saving the adapted model, a second OSM read, noise
    base = file_checksum(resolve_checkpoint("default", "sketchmap"))
    assert rec["base_checksum"] == base and rec["sketch_seed_base"] == 7_000_000_000
    own = file_checksum(col.file("model.pt"))
    assert own == col.manifest["model_checksum"] != base  # the collection carries the adapted model
    col.close()
    col = Collection.open(tmp_path / "adapted")  # reopens and answers with its own model
    hits = search_scenes(col, sketch, k=3)
    assert len(hits) == 3 and hits[0].score >= hits[-1].score


def test_a_fold_never_starts_from_a_model_that_saw_its_held_out_region(two_regions, tmp_path, capsys):
    """--init counts as training data: the fold holding out a region the init model trained on
    trains from scratch (and says so); the init's regions are part of the fold model's lineage."""
    from geoseek.capabilities.sketchmap.regions import trained_on
    from geoseek.checkpoint import read_checkpoint

    common = ["--cache", str(tmp_path / "cache"), "--steps", "2", "--validate-every", "2", "--quiet", *TINY]
    moscow_only = tmp_path / "moscow-only.pt"
    assert main(["train", "sketchmap", two_regions[1], "--out", str(moscow_only), "--model", "sketchmap-sppcnn", *common]) == 0
    argv = ["eval", "sketchmap", *two_regions, "--leave-one-out", "--checkpoints", str(tmp_path / "ck"),
            "--init", str(moscow_only), "--queries", "4", "--strengths", "1", "--json", *common]
    assert main(argv) == 0
    rows = {r["region"]: r for r in _last_json(capsys)["regions"]}
    held_helsinki, held_moscow = rows["helsinki-center.osm.pbf"], rows["moscow.osm.pbf"]
    assert held_helsinki["init"] == str(moscow_only) and "init_dropped" not in held_helsinki
    assert held_moscow["init"] is None and "moscow.osm.pbf" in held_moscow["init_dropped"]
    lineage = read_checkpoint(held_helsinki["checkpoint"])
    assert trained_on(lineage) == {"moscow.osm.pbf"}  # its own data (moscow) and its init's (moscow)
    assert lineage["data"]["init"]["sources"] == ["moscow.osm.pbf"]


def test_hold_out_runs_only_the_named_folds(two_regions, tmp_path, capsys):
    argv = ["eval", "sketchmap", *two_regions, "--leave-one-out", "--checkpoints", str(tmp_path / "ck"),
            "--cache", str(tmp_path / "cache"), "--steps", "2", "--validate-every", "2", "--train-model", "sketchmap-sppcnn",
            "--queries", "4", "--strengths", "1", "--quiet", "--json", *TINY]
    assert main([*argv, "--hold-out", "moscow"]) == 0
    out = _last_json(capsys)
    assert out["held_out"] == ["moscow.osm.pbf"]
    assert [r["region"] for r in out["regions"]] == ["moscow.osm.pbf"]
    assert out["regions"][0]["trained_on"] == ["helsinki-center.osm.pbf"]
    assert len(list((tmp_path / "ck").glob("*.pt.done"))) == 1
    assert main([*argv, "--hold-out", "atlantis"]) == 2  # an unknown name fails before any training
    assert "atlantis" in capsys.readouterr().err


def test_shifted_training_windows_add_scenes_but_never_touch_held_out_ones(shared_data, tmp_path):
    from geoseek.capabilities.sketchmap.data import prepare_data, scene_grid, shifted_scenes
    from geoseek.capabilities.sketchmap.multi import SketchRecipe
    from geoseek.sources.osm import read_osm

    pbf = shared_data / "osm" / "helsinki-center.osm.pbf"
    kw = {"window_m": 240.0, "size": 32, "copies": 2, "progress": False}
    base = prepare_data(pbf, cache_dir=tmp_path, **kw)
    shifted = prepare_data(pbf, cache_dir=tmp_path, shifts=2, **kw)
    # same scenes, split and validation sketches; more training rows, each with its sketches
    assert (shifted.scenes.rasters == base.scenes.rasters).all() and (shifted.test_idx == base.test_idx).all()
    assert (shifted.val_queries == base.val_queries).all() and (shifted.pool[: len(base.pool)] == base.pool).all()
    assert len(shifted.extra_rasters) > 0
    assert len(shifted.train_rasters) == len(shifted.pool) == len(base.train_idx) + len(shifted.extra_rasters)
    assert shifted.settings["shifts"] == 2 and "shifts" not in base.settings
    # a shifted window never overlaps a held-out (or validation) scene
    held = base.scenes.bounds_m[list(base.val_idx) + list(base.test_idx)]
    _, bounds = shifted_scenes(read_osm(pbf), 240.0, 32, 2, held, progress=False)
    step = scene_grid(read_osm(pbf), 240.0)["step"]
    for b in bounds:
        ox = (held[:, 2].clip(max=b[2]) - held[:, 0].clip(min=b[0])).clip(min=0)
        oy = (held[:, 3].clip(max=b[3]) - held[:, 1].clip(min=b[1])).clip(min=0)
        assert (ox * oy < 1e-6 * step * step).all()
    # the reloaded cache is the same data
    again = prepare_data(pbf, cache_dir=tmp_path, shifts=2, **kw)
    assert (again.extra_rasters == shifted.extra_rasters).all() and (again.pool == shifted.pool).all()
    # recipes without shifts keep their old keys (leave-one-out checkpoints are found by them)
    assert "shifts" not in SketchRecipe().to_dict() and SketchRecipe(shifts=2).to_dict()["shifts"] == 2
