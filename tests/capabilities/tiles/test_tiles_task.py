"""geoseek.capabilities.tiles.task: ``geoseek train tiles`` end to end (TileTripletTask + train_tiles)."""

from __future__ import annotations

from pathlib import Path

from geoseek.cli import main


def test_train_writes_checkpoint_with_metrics(built):
    from geoseek.checkpoint import read_checkpoint

    payload = read_checkpoint(built[0])
    assert payload["model"] == "tile-cnn"
    assert 0.0 <= payload["metrics"]["val"] <= 1.0
    assert payload["data"]["source"] == "helsinki-center.osm.pbf"
    assert Path(str(built[0]) + ".last").is_file()  # resumable state


def test_train_mining_all_with_retrieval_validation(helsinki, tmp_path):
    """--mining all (every valid in-batch negative) and --val-retrieval (land-use P@10, land use
    hidden, on z17 tiles of the training area) select the checkpoint by ``val_p10``."""
    from geoseek.checkpoint import read_checkpoint

    model = tmp_path / "m.pt"
    rc = main(["train", "tiles", str(helsinki), "--out", str(model), "--steps", "2", "--batch", "4",
               "--validate-every", "1", "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0",
               "--hard-after", "1", "--size", "64", "--mining", "all", "--val-retrieval", "30", "--json"])
    assert rc == 0
    payload = read_checkpoint(model)
    m = payload["metrics"]
    assert 0.0 <= m["val_p10"] <= 1.0 and 0.0 <= m["val_raw_p10"] <= 1.0
    assert payload["train"]["monitor"] == "val_p10" and payload["data"]["task"]["mining"] == "all"


def test_train_with_masked_land_use_objective_from_an_init_checkpoint(built, helsinki, tmp_path):
    """--land-use-aux trains a land-use head beside the triplet loss (dropped from the
    checkpoint); --init starts from another checkpoint's weights; resuming restores the head."""
    import torch

    from geoseek.checkpoint import read_checkpoint

    model = tmp_path / "aux.pt"
    args = ["train", "tiles", str(helsinki), "--out", str(model), "--batch", "4", "--validate-every", "1",
            "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0", "--size", "64",
            "--land-use-aux", "2", "--drop-land-use", "1", "--init", str(built[0]), "--json"]
    assert main([*args, "--steps", "1"]) == 0
    payload = read_checkpoint(model)
    assert payload["data"]["task"]["land_use_aux"] == 2 and payload["data"]["init"] == str(built[0])
    assert set(payload["state_dict"]) == set(read_checkpoint(built[0])["state_dict"])  # no head in the model
    state = torch.load(str(model) + ".last", map_location="cpu", weights_only=False)
    assert state["aux"]["weight"].shape == (8, 128)  # 7 land uses + "none"
    assert main([*args, "--steps", "2"]) == 0  # resumes step 2 with the head's state
    no_head = [a for a in args if a not in ("--land-use-aux", "2")]
    assert main([*no_head, "--steps", "3"]) == 2  # the resumable state has a head this run lacks
    assert main([*args[:-3], "--land-use-aux", "-1", "--steps", "3", "--json"]) == 2


def test_train_tiles_widths_make_a_wider_tile_cnn(helsinki, tmp_path):
    from geoseek.checkpoint import load_model, read_checkpoint

    model = tmp_path / "wide.pt"
    args = ["train", "tiles", str(helsinki), "--out", str(model), "--batch", "4", "--validate-every", "1",
            "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0", "--size", "64", "--steps", "1"]
    assert main([*args, "--widths", "8", "16", "24", "32", "--json"]) == 0
    assert read_checkpoint(model)["config"]["widths"] == [8, 16, 24, 32]
    net, _ = load_model(model)
    assert net.head.in_features == 2 * 32
    assert main([*args, "--widths", "8", "0", "--no-resume", "--json"]) == 2
    assert main([*args, "--model", "tile-efficientnet-lite0", "--widths", "8", "--no-resume", "--json"]) == 2


def test_train_tiles_with_a_balanced_land_use_objective(helsinki, tmp_path):
    from geoseek.checkpoint import read_checkpoint

    model = tmp_path / "bal.pt"
    args = ["train", "tiles", str(helsinki), "--out", str(model), "--batch", "4", "--validate-every", "1",
            "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0", "--size", "64", "--steps", "1",
            "--land-use-aux", "2", "--json"]
    assert main([*args, "--land-use-balance", "0.5"]) == 0
    assert read_checkpoint(model)["data"]["task"]["land_use_balance"] == 0.5
    assert main([*args, "--land-use-balance", "-1", "--no-resume"]) == 2


def test_train_tiles_land_use_objective_alone(helsinki, tmp_path):
    """--triplet-weight 0 with --land-use-target dominant: the supervised diagnostic trains;
    --triplet-weight 0 without a land-use objective is refused."""
    from geoseek.checkpoint import read_checkpoint

    model = tmp_path / "sup.pt"
    args = ["train", "tiles", str(helsinki), "--out", str(model), "--batch", "4", "--validate-every", "1",
            "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0", "--size", "64", "--steps", "1",
            "--triplet-weight", "0", "--json"]
    assert main([*args, "--land-use-aux", "1", "--land-use-target", "dominant"]) == 0
    task = read_checkpoint(model)["data"]["task"]
    assert task["triplet_weight"] == 0 and task["land_use_target"] == "dominant"
    assert main([*args, "--no-resume"]) == 2


def test_one_command_trains_the_same_model_twice(helsinki, tmp_path):
    """The model's first weights come from the run's seed, not from the global RNG's state."""
    import torch

    from geoseek.checkpoint import read_checkpoint

    args = ["--batch", "4", "--validate-every", "1", "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0",
            "--size", "64", "--steps", "1", "--json"]
    states = []
    for i in range(2):
        torch.manual_seed(1000 + i)  # whatever ran before in the process must not matter
        out = tmp_path / f"m{i}.pt"
        assert main(["train", "tiles", str(helsinki), "--out", str(out), *args]) == 0
        states.append(read_checkpoint(out)["state_dict"])
    assert states[0].keys() == states[1].keys()
    for name in states[0]:
        torch.testing.assert_close(states[0][name], states[1][name], rtol=0, atol=1e-6, msg=name)
