"""Threading policy: cores from affinity and cgroup quota; per-kind defaults; chunked parallelism."""

from __future__ import annotations

import threading

import pytest

from geoseek.runtime import hardware, threads


def test_available_cores_honours_affinity_and_cgroup_v2(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5})
    monkeypatch.setattr(hardware, "CGROUP_ROOT", tmp_path)
    assert hardware.available_cores() == 6
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs → 2 threads
    assert hardware.available_cores() == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert hardware.available_cores() == 6


def test_available_cores_cgroup_v1(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(hardware, "CGROUP_ROOT", tmp_path)
    d = tmp_path / "cpu"
    d.mkdir()
    (d / "cpu.cfs_quota_us").write_text("300000")
    (d / "cpu.cfs_period_us").write_text("100000")
    assert hardware.available_cores() == 3
    (d / "cpu.cfs_quota_us").write_text("-1")
    assert hardware.available_cores() == 16


def test_affinity_bounds_the_quota(monkeypatch, tmp_path):
    monkeypatch.setattr(hardware.os, "sched_getaffinity", lambda pid: {3})
    monkeypatch.setattr(hardware, "CGROUP_ROOT", tmp_path)
    (tmp_path / "cpu.max").write_text("800000 100000")
    assert hardware.available_cores() == 1


def test_default_threads_per_kind(monkeypatch):
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(hardware, "available_cores", lambda: 3)
    monkeypatch.setattr(threads, "_torch_default_threads", lambda: 64)
    assert threads.default_threads("batch") == 3
    assert threads.default_threads("service") == 1
    assert threads.default_threads("api") == 3
    monkeypatch.setenv(threads.ENV_THREADS, "5")
    assert threads.default_threads("service") == 5
    monkeypatch.setenv(threads.ENV_THREADS, "0")
    with pytest.raises(ValueError, match="GEOSEEK_THREADS"):
        threads.default_threads("api")
    with pytest.raises(ValueError):
        threads.default_threads("gpu")


def test_openmp_env_respects_the_user():
    env: dict[str, str] = {}
    assert threads.configure_openmp_env(env) == {"GOMP_SPINCOUNT": threads.SHORT_SPIN}
    env = {"OMP_WAIT_POLICY": "PASSIVE"}
    assert threads.configure_openmp_env(env) == {} and "GOMP_SPINCOUNT" not in env


def test_parallel_chunks_covers_range_in_order_with_one_thread_each():
    import torch

    main_threads = torch.get_num_threads()
    seen: list[tuple[int, int, int, str]] = []
    lock = threading.Lock()

    def fn(a: int, b: int) -> list[int]:
        with lock:
            seen.append((a, b, torch.get_num_threads(), threading.current_thread().name))
        return list(range(a, b))

    parts = threads.parallel_chunks(fn, 1000, workers=2, chunks_per_worker=4)
    assert [x for p in parts for x in p] == list(range(1000))
    assert len(seen) == 8 and all(t == 1 for _, _, t, _ in seen)
    assert all(name.startswith("geoseek-chunk") for *_, name in seen)
    assert torch.get_num_threads() == main_threads  # the caller's threads are untouched
    assert threads.parallel_chunks(fn, 10, workers=1) == [list(range(10))]
    assert threads.parallel_chunks(fn, 0, workers=2) == []
    assert threads.parallel_map(lambda x: x * 2, [1, 2, 3, 4], workers=2) == [2, 4, 6, 8]


def test_chunk_bounds():
    assert threads.chunk_bounds(10, 3) == [(0, 4), (4, 7), (7, 10)]
    assert threads.chunk_bounds(2, 5) == [(0, 1), (1, 2)]


def test_threads_env_comes_from_the_cores_available_unless_the_user_set_it(monkeypatch):
    monkeypatch.delenv(threads.ENV_THREADS, raising=False)
    monkeypatch.setattr(hardware, "available_cores", lambda: 3)  # e.g. a 3-CPU quota on a big host
    env: dict[str, str] = {}
    assert threads.configure_threads_env("batch", env) == {"OMP_NUM_THREADS": "3"} and env["OMP_NUM_THREADS"] == "3"
    env = {"OMP_NUM_THREADS": "7"}
    assert threads.configure_threads_env("batch", env) == {} and env["OMP_NUM_THREADS"] == "7"
    monkeypatch.setenv(threads.ENV_THREADS, "2")
    env = {}
    threads.configure_threads_env("batch", env)
    assert env["OMP_NUM_THREADS"] == "2"


def test_the_cli_sets_threads_from_the_cores_before_torch_loads():
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", threads.ENV_THREADS)}
    code = ("import os\nfrom geoseek.cli import main\ntry:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
            "import torch\nfrom geoseek.runtime.hardware import available_cores\n"
            "print(os.environ['OMP_NUM_THREADS'], torch.get_num_threads(), available_cores())")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.split()[-3:]
    assert out[0] == out[1] == out[2], out
