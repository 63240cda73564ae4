"""geoseek.capabilities.tiles.evaluate: ``geoseek eval tiles`` (land-use kNN retrieval vs baselines)."""

from __future__ import annotations

from geoseek.cli import main


def test_eval_cli_json(helsinki, built, capsys, last_json):
    capsys.readouterr()
    assert main(["eval", "tiles", str(helsinki), "--model", str(built[0]), "--baselines", "raw,random",
                 "--exclude-m", "0", "--json"]) == 0
    res = last_json(capsys)
    for key in ("p_at_10", "raw_p_at_10", "random_p_at_10", "map", "raw_map", "labelled_tiles", "visible_p_at_10"):
        assert key in res
    assert 0 <= res["p_at_10"] <= 1 and res["labelled_tiles"] >= 20
    assert res["split"] == "all"  # trained with no held-out blocks → every tile
    assert res["tile_ground_m"] == 250.0  # --tile-m's default: 250 m windows around each z17 tile
    by = res["p_at_10_by_label"]
    assert set(by) == set(res["label_counts"]) and set(res["raw_p_at_10_by_label"]) == set(by)
    mean = sum(by[c] * n for c, n in res["label_counts"].items()) / res["query_tiles"]
    assert abs(mean - res["p_at_10"]) < 1e-9  # the per-label figures average to the headline
