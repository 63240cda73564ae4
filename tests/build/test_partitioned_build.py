"""Partitioned builds (geoseek.build): same collection whatever the workers or engine; kill -9 + --resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from geoseek.build import work_dir
from geoseek.collection import Collection
from geoseek.errors import ConflictError, InvalidInputError

PART = 16  # tiles per partition: helsinki-center's 96 candidate tiles make 6 partitions


def _region(shared_data: Path) -> Path:
    return shared_data / "osm" / "helsinki-center.osm.pbf"


def _build(shared_data: Path, out: Path, **kw):
    from geoseek.capabilities.tiles.build import build_osm_collection

    return build_osm_collection(_region(shared_data), out, progress=False, partition_size=PART, **kw)


def _cli(args: list[str], env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoseek", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def _same(a: Path, b: Path) -> None:
    with Collection.open(a) as ca, Collection.open(b) as cb:
        ia, ib = list(ca.items()), list(cb.items())
        assert [i.id for i in ia] == [i.id for i in ib] and len(ia) > 50
        assert [(i.label, i.footprint, i.metadata, i.thumbnail) for i in ia] == \
               [(i.label, i.footprint, i.metadata, i.thumbnail) for i in ib]
        np.testing.assert_allclose(ca.vectors([i.id for i in ia]), cb.vectors([i.id for i in ib]), atol=1e-6, rtol=0)
        assert sorted(ca.info()["files"]) == sorted(cb.info()["files"])


@pytest.fixture(scope="module")
def reference(shared_data, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ref") / "w1"
    return out, _build(shared_data, out, workers=1)


def test_report_keys_and_work_folder_removed(reference):
    out, r = reference
    for key in ("partitions", "workers", "engine", "tiles_per_s", "items_per_s", "partitions_computed"):
        assert key in r
    assert r["engine"] == "inprocess" and r["workers"] == 1 and r["partitions"] == 6
    assert r["partitions_computed"] == list(range(6)) and r["partitions_reused"] == 0
    assert not work_dir(out).exists()


def test_two_workers_equal_one(shared_data, reference, tmp_path):
    r = _build(shared_data, tmp_path / "w2", workers=2)
    assert r["engine"] == "processes" and r["workers"] == 2
    _same(reference[0], tmp_path / "w2")


@pytest.mark.slow
def test_ray_equals_one_worker(shared_data, reference, tmp_path):
    pytest.importorskip("ray")
    r = _build(shared_data, tmp_path / "r", workers=2, ray=True)
    assert r["engine"] == "ray"
    _same(reference[0], tmp_path / "r")


def test_kill9_then_resume_redoes_only_unfinished(shared_data, reference, tmp_path):
    out = tmp_path / "k"
    args = ["build", "osm", str(_region(shared_data)), "--out", str(out), "--workers", "1",
            "--partition-size", str(PART), "--json"]
    killed = _cli(args, {"GEOSEEK_TEST_KILL_AFTER_PARTITIONS": "2"})
    assert killed.returncode == -9, killed.stderr[-2000:]
    assert not out.exists()
    assert sorted(p.name for p in work_dir(out).glob("part-*.npz")) == ["part-000000.npz", "part-000001.npz"]
    done = _cli([*args, "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    r = json.loads(done.stdout.strip().splitlines()[-1])
    assert r["partitions_computed"] == [2, 3, 4, 5] and r["partitions_reused"] == 2
    assert not work_dir(out).exists()
    _same(reference[0], out)


def test_resume_refuses_another_builds_shards_and_plain_run_clears(shared_data, tmp_path, monkeypatch):
    out = tmp_path / "x"
    monkeypatch.setenv("GEOSEEK_TEST_KILL_AFTER_PARTITIONS", "0")
    work = work_dir(out)
    work.mkdir()
    (work / "build.json").write_text(json.dumps({"fingerprint": "another build"}))
    with pytest.raises(ConflictError, match="different build"):
        _build(shared_data, out, workers=1, resume=True)
    (work / "part-000000.npz").write_bytes(b"junk")
    r = _build(shared_data, out, workers=1)  # without --resume: the leftover folder is cleared
    assert r["partitions_computed"] == list(range(6)) and not work.exists()


def test_ray_missing_is_a_clear_error(shared_data, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InvalidInputError, match="needs the 'ray' package"):
        _build(shared_data, tmp_path / "nr", ray=True)
    assert not work_dir(tmp_path / "nr").exists()


@pytest.mark.parametrize("address, message", [
    ("nonsense", "HOST:PORT"),
    ("127.0.0.1:1", "nothing answers"),
    ("ray://127.0.0.1:1", "nothing answers"),
])
def test_a_ray_address_that_cannot_answer_fails_fast_before_any_work(address, message, monkeypatch):
    """ray.init retries an unreachable address for minutes; geoseek checks it first (≤ the timeout)."""
    import time

    pytest.importorskip("ray")
    from geoseek.build import executors

    monkeypatch.setenv(executors.RAY_CONNECT_TIMEOUT_ENV, "2")
    t = time.perf_counter()
    with pytest.raises(InvalidInputError, match=message):
        with executors.ray_session(address, 2):
            pytest.fail("the session must not start")
    assert time.perf_counter() - t < 10
    assert executors._session is None
