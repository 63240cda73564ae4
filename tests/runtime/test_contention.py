"""``geoseek bench contention`` at a tiny scale: one JSON object with every key the issue names."""

from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_contention_bench_json_keys(capsys):
    from geoseek.cli import main

    rc = main(["bench", "contention", "--workloads", "location", "--scale", "0.002", "--repeat", "1", "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(res["runtime"]) >= {"cpu_model", "isa", "native_bf16", "precision", "threads", "cores_available"}
    row = res["location"]
    assert row["quiet"] > 0
    for sc in ("twin", "one_per_core", "two_per_core"):
        assert row[sc]["throughput"] > 0 and row[sc]["ratio"] > 0
    assert len(row["twin"]["copies"]) == 2
    assert row["one_per_core"]["competitors"] == res["runtime"]["cores_available"]


def test_contention_bench_rejects_bad_input(capsys):
    from geoseek.cli import main

    assert main(["bench", "contention", "--workloads", "nope"]) == 2
    assert "unknown workload" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["location", "tiles", "sketchmap", "vector"])
def test_workloads_run_at_tiny_scale(name):
    from geoseek.contention.workloads import WORKLOADS

    assert WORKLOADS[name](0.001)() > 0
