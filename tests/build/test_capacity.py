"""``bench/capacity.py`` on the smallest real input (central Moscow, ~100 tiles, ~10 scenes): it
builds, measures the collections on disk and reports consistent bytes per item and an extrapolation."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_capacity", REPO / "bench" / "capacity.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_capacity_json_on_moscow(shared_data, tmp_path, capsys):
    bench = _bench()
    work = tmp_path / "work"
    rc = bench.main(["--data", str(shared_data), "--only", "osm,sketchmap",
                     "--osm", str(shared_data / "osm" / "moscow.osm.pbf"),
                     "--work", str(work), "--cores", "2,16", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["cpu"]["cpu_model"] and res["cpu"]["cores_available"] >= 1
    assert set(res["modalities"]) == {"osm", "sketchmap"}
    for name, r in res["modalities"].items():
        b, p = r["bytes"], r["bytes_per_item"]
        assert r["items"] > 0 and r["workers"] == 1, name
        assert r["build_seconds"] > 0 and r["seconds_per_item_core"] == pytest.approx(r["build_seconds"] / r["items"])
        assert p["vectors"] == 4 * r["dim"]  # float32
        for key in ("vectors", "index_other", "sqlite", "thumbnails", "total"):
            assert p[key] > 0, (name, key)
        assert r["parts_bytes"] == b["total"]  # every file is counted in exactly one part
        assert b["thumbnails"] <= b["sqlite"] and b["vectors"] <= b["index_files"]
        assert b["sqlite_unused"] is None or 0 <= b["sqlite_unused"] < b["sqlite"]
        assert p["vectors"] + p["index_other"] + p["arrays"] + p["sqlite"] <= p["total"] + 1e-6
        assert b["files_total"] > 0 and "model.pt" in b["files"]  # the fixed cost: the copied model
        assert (work / name / "manifest.json").is_file()
    assert res["modalities"]["osm"]["bytes"]["thumbnail_format"] == "png"
    assert res["modalities"]["sketchmap"]["bytes_per_item"]["arrays"] > 0  # the scene rasters
    ex = res["extrapolation"]
    country, continent = ex["regions"]["country"], ex["regions"]["continent"]
    assert (country["items"], continent["items"]) == (1_200_000, 300_000_000)
    assert continent["disk_bytes"] > country["disk_bytes"] > country["items"] * 512
    id_text = res["modalities"]["osm"]["bytes_per_item"]["id_text"]  # "17/x/y"
    assert country["serving_ram_bytes"] == pytest.approx(country["items"] * (32 + 8 + 29 + 100 + id_text))
    assert set(country["wall_hours"]) == {"2", "16"}
    assert country["wall_hours"]["16"] < country["wall_hours"]["2"] < country["core_hours"] + country["index_build_hours"]


def test_capacity_rejects_unknown_modality(capsys):
    with pytest.raises(SystemExit):
        _bench().main(["--only", "osm,nope"])
    assert "nope" in capsys.readouterr().err
