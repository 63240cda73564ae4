"""geoseek.capabilities.tiles.ensemble: ``--ensemble N`` members combined into one tile-ensemble."""

from __future__ import annotations

import pytest

from geoseek.cli import main


def test_train_tiles_ensemble_trains_members_and_combines_them(helsinki, tmp_path, capsys, last_json):
    """--ensemble 2: two seeds trained beside OUT (resumable), saved as one tile-ensemble that
    loads, validates on the first member's tiles, and evaluates; mismatched members are refused."""
    from geoseek.checkpoint import load_model, read_checkpoint
    from geoseek.errors import InvalidInputError
    from geoseek.capabilities.tiles.ensemble import ensemble_checkpoints, member_path

    out = tmp_path / "ens.pt"
    args = ["train", "tiles", str(helsinki), "--batch", "4", "--validate-every", "1", "--val-triplets", "4",
            "--d-neg", "600", "--split-holdout", "0", "--size", "64", "--steps", "1", "--val-retrieval", "20"]
    assert main([*args, "--out", str(out), "--ensemble", "2", "--json"]) == 0
    assert last_json(capsys)["out"] == str(out)
    assert member_path(out, 0).name == "ens.m0.pt" and member_path(out, 1).is_file()
    payload = read_checkpoint(out)
    assert payload["model"] == "tile-ensemble" and len(payload["config"]["members"]) == 2
    assert 0.0 <= payload["metrics"]["val_p10"] <= 1.0 and len(payload["metrics"]["members"]) == 2
    assert payload["data"]["source"] == "helsinki-center.osm.pbf"
    seeds = [read_checkpoint(member_path(out, i))["train"]["seed"] for i in range(2)]
    assert seeds == [0, 1]
    net, _ = load_model(out)
    assert net.dim == 256
    assert main(["eval", "tiles", str(helsinki), "--model", str(out), "--baselines", "random",
                 "--protocol", "hidden", "--json"]) == 0
    assert 0.0 <= last_json(capsys)["p_at_10"] <= 1.0

    other = tmp_path / "other.pt"
    assert main([*args, "--out", str(other), "--d-neg", "700", "--split-holdout", "0.25", "--json"]) == 0
    with pytest.raises(InvalidInputError, match="different regions or spatial splits"):
        ensemble_checkpoints([member_path(out, 0), other], tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
    assert main([*args, "--out", str(out), "--ensemble", "0", "--json"]) == 2
    assert main([*args, "--out", str(tmp_path / "init.pt"), "--ensemble", "2", "--init", str(out), "--json"]) == 2
    assert not member_path(tmp_path / "init.pt", 0).exists()
