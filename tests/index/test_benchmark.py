"""``geoseek bench index`` on a tiny problem: runs end to end and reports the required keys."""

from __future__ import annotations

import json

from geoseek.cli import main


def test_bench_index_json(capsys, tmp_path):
    rc = main(["bench", "index", "--n", "3000", "--dim", "16", "--queries", "40", "--latency-queries", "10",
               "--balltree-queries", "5", "--batch", "20", "--workdir", str(tmp_path), "--json"])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    res = json.loads(out[-1])
    for key in ("recall_at_10", "qps", "faiss_qps", "balltree_qps", "filtered_recall_at_10", "p50_ms", "p99_ms",
                "build_s", "qps_vs_faiss", "qps_vs_balltree", "numpy_qps", "index_mb"):
        assert key in res, key
    assert res["recall_at_10"] == 1.0 and res["filtered_recall_at_10"] == 1.0  # flat index: exact
    assert 0.05 < res["filter_fraction"] < 0.15
    assert "| raw FAISS" in "\n".join(out)
    assert not list(tmp_path.iterdir())  # the temporary collection is removed


def test_bench_index_rejects_bad_sizes(capsys):
    assert main(["bench", "index", "--n", "10"]) == 2
    assert "--n" in capsys.readouterr().err
