"""The OSM-tiles capability end to end on central Helsinki: train → build → search → eval → HTTP.

Everything runs in-process (``geoseek.cli.main``) with a 2-step model, so the whole module
stays within a few tens of seconds on two cores.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest

from geoseek.cli import main


def _last_json(capsys) -> dict:
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


@pytest.fixture(scope="module")
def helsinki(shared_data) -> Path:
    return shared_data / "osm" / "helsinki-center.osm.pbf"


@pytest.fixture(scope="module")
def built(helsinki, tmp_path_factory):
    """(model path, collection path): a 2-step model and the collection it builds."""
    tmp = tmp_path_factory.mktemp("tiles")
    model = tmp / "m.pt"
    # Helsinki's extract is ~1 × 1.7 km: negatives at >= 600 m instead of 2 km, no held-out blocks
    rc = main(["train", "tiles", str(helsinki), "--out", str(model), "--steps", "2", "--batch", "4",
               "--validate-every", "1", "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0",
               "--hard-after", "1", "--size", "64", "--json"])
    assert rc == 0 and model.is_file()
    col = tmp / "col"
    assert main(["build", "osm", str(helsinki), "--out", str(col), "--model", str(model), "--json"]) == 0
    return model, col


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


def test_training_block_tiles_stay_out_of_held_out_blocks(helsinki):
    from geoseek.sources.render import xyz_bounds_m
    from geoseek.sources.tile_sampler import SpatialSplit
    from geoseek.tiles import load_features, training_block_tiles

    split = SpatialSplit(block_m=500, holdout=0.5)
    tiles, labels, centers = training_block_tiles(load_features(helsinki), split, 25)
    assert len(tiles) == len(labels) == len(centers) and 0 < len(tiles) <= 25
    assert all(labels) and tiles.dtype == np.uint8
    from geoseek.sources.layers import LAND_USE_LAYERS, LAYER_INDEX

    assert not tiles[:, [LAYER_INDEX[n] for n in LAND_USE_LAYERS]].any()  # land use hidden
    from geoseek.geo import lonlat_to_mercator_m

    assert not split.held_out_xy(lonlat_to_mercator_m(centers)).any()


def test_build_stores_tiles_with_footprints_labels_thumbnails(built):
    from PIL import Image

    from geoseek.collection import Collection

    col = Collection.open(built[1])
    assert col.manifest["modality"] == "osm-tiles" and col.manifest["extra"]["zoom"] == 17
    assert 60 <= len(col) <= 150
    items = list(col.items())
    assert all(it.footprint is not None for it in items)
    assert {it.label for it in items} & {"commercial", "park"}
    it = col.get(items[0].id)
    img = Image.open(io.BytesIO(it.thumbnail))
    assert img.size == (64, 64)
    v = col.vector(items[0].id)
    assert v.shape == (128,) and abs(float(np.linalg.norm(v)) - 1) < 1e-4


def test_search_near_cli(built, capsys):
    capsys.readouterr()
    assert main(["search", str(built[1]), "--near", "24.945,60.17", "-k", "5", "--json"]) == 0
    res = _last_json(capsys)
    hits = res["hits"]
    assert len(hits) == 5 and [h["rank"] for h in hits] == [1, 2, 3, 4, 5]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert "17/74618/37939" not in {h["item"]["id"] for h in hits}  # the query tile itself is left out
    # a point with nothing mapped is a clear error, not a traceback
    assert main(["search", str(built[1]), "--near", "100,10", "--json"]) == 2
    assert "nothing is mapped" in capsys.readouterr().err


def test_eval_cli_json(helsinki, built, capsys):
    capsys.readouterr()
    assert main(["eval", "tiles", str(helsinki), "--model", str(built[0]), "--baselines", "raw,random",
                 "--exclude-m", "0", "--json"]) == 0
    res = _last_json(capsys)
    for key in ("p_at_10", "raw_p_at_10", "random_p_at_10", "map", "raw_map", "labelled_tiles", "visible_p_at_10"):
        assert key in res
    assert 0 <= res["p_at_10"] <= 1 and res["labelled_tiles"] >= 20
    assert res["split"] == "all"  # trained with no held-out blocks → every tile
    by = res["p_at_10_by_label"]
    assert set(by) == set(res["label_counts"]) and set(res["raw_p_at_10_by_label"]) == set(by)
    mean = sum(by[c] * n for c, n in res["label_counts"].items()) / res["query_tiles"]
    assert abs(mean - res["p_at_10"]) < 1e-9  # the per-label figures average to the headline


def test_arithmetic_and_interpolation(built):
    from geoseek.collection import Collection
    from geoseek.tiles import arithmetic, interpolate, similar

    col = Collection.open(built[1])
    ids = [it.id for it in col.items()][:3]
    hits = arithmetic(col, ids[0], ids[1], ids[2], k=4)
    assert len(hits) == 4 and not {h.item.id for h in hits} & set(ids)
    walk = interpolate(col, ids[0], "24.945,60.17", steps=4, k=1)
    assert len(walk) == 4 and walk[0][0].item.id == ids[0]
    assert len(similar(col, 24.945, 60.17, k=3)) == 3


def test_http_routes(built):
    from fastapi.testclient import TestClient

    from geoseek.service.app import create_app

    with TestClient(create_app({"hel": built[1]})) as client:
        r = client.get("/collections/hel/similar", params={"lon": 24.945, "lat": 60.17, "k": 3})
        assert r.status_code == 200 and r.json()["count"] == 3
        ids = [h["id"] for h in r.json()["hits"]]
        r = client.get("/collections/hel/arithmetic", params={"a": ids[0], "b": ids[1], "c": "24.945,60.17", "k": 2})
        assert r.status_code == 200 and r.json()["count"] == 2
        r = client.get("/collections/hel/interpolate", params={"a": ids[0], "b": ids[1], "steps": 3})
        assert r.status_code == 200 and len(r.json()["path"]) == 3
        r = client.get("/tiles/16/37309/18969.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png" and r.content[:4] == b"\x89PNG"
        assert client.get("/tiles/3/99/0.png").status_code == 422
        assert client.get("/collections/hel/arithmetic", params={"a": "1/2/3", "b": ids[0], "c": ids[1]}).status_code == 404


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


def test_land_use_loss_is_minimal_at_the_measured_cover():
    import torch

    from geoseek.tiles import land_use_loss

    cover = torch.tensor([[0.5, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0.25, 0, 0, 0.75]])
    target = torch.cat([cover, (1 - cover.sum(1, keepdim=True)).clamp_min(0)], 1)
    best = land_use_loss(torch.log(target + 1e-9), cover)
    worse = land_use_loss(torch.zeros(2, 8), cover)
    assert best < worse
    logits = torch.zeros(2, 8, requires_grad=True)
    land_use_loss(logits, cover).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


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


def test_land_use_class_weights_favour_rare_classes_and_keep_the_loss_scale():
    import torch

    from geoseek.tiles import _cover_target, land_use_class_weights, land_use_loss

    rng = np.random.default_rng(0)
    cover = np.zeros((200, 7), np.float32)
    cover[:, 3] = rng.uniform(0.3, 1.0, 200)  # farmland everywhere
    cover[:10, 2] = 0.5  # a little forest
    w = land_use_class_weights(cover, 0.5)
    share = _cover_target(torch.from_numpy(cover)).mean(0).clamp_min(1e-3)
    assert w.shape == (8,) and w[2] > w[3] and abs(float((share * w).sum()) - 1) < 1e-5
    assert torch.allclose(land_use_class_weights(cover, 0.0), torch.ones(8) / share.sum())
    logits = torch.zeros(4, 8)
    c = torch.from_numpy(cover[:4])
    assert torch.isclose(land_use_loss(logits, c, torch.ones(8)), land_use_loss(logits, c))
    assert land_use_loss(logits, c, w) != land_use_loss(logits, c)


def test_train_tiles_with_a_balanced_land_use_objective(helsinki, tmp_path):
    from geoseek.checkpoint import read_checkpoint

    model = tmp_path / "bal.pt"
    args = ["train", "tiles", str(helsinki), "--out", str(model), "--batch", "4", "--validate-every", "1",
            "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0", "--size", "64", "--steps", "1",
            "--land-use-aux", "2", "--json"]
    assert main([*args, "--land-use-balance", "0.5"]) == 0
    assert read_checkpoint(model)["data"]["task"]["land_use_balance"] == 0.5
    assert main([*args, "--land-use-balance", "-1", "--no-resume"]) == 2


def test_train_tiles_ensemble_trains_members_and_combines_them(helsinki, tmp_path, capsys):
    """--ensemble 2: two seeds trained beside OUT (resumable), saved as one tile-ensemble that
    loads, validates on the first member's tiles, and evaluates; mismatched members are refused."""
    from geoseek.checkpoint import load_model, read_checkpoint
    from geoseek.errors import InvalidInputError
    from geoseek.tiles import ensemble_checkpoints, member_path

    out = tmp_path / "ens.pt"
    args = ["train", "tiles", str(helsinki), "--batch", "4", "--validate-every", "1", "--val-triplets", "4",
            "--d-neg", "600", "--split-holdout", "0", "--size", "64", "--steps", "1", "--val-retrieval", "20"]
    assert main([*args, "--out", str(out), "--ensemble", "2", "--json"]) == 0
    assert _last_json(capsys)["out"] == str(out)
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
    assert 0.0 <= _last_json(capsys)["p_at_10"] <= 1.0

    other = tmp_path / "other.pt"
    assert main([*args, "--out", str(other), "--d-neg", "700", "--split-holdout", "0.25", "--json"]) == 0
    with pytest.raises(InvalidInputError, match="different regions or spatial splits"):
        ensemble_checkpoints([member_path(out, 0), other], tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()
    assert main([*args, "--out", str(out), "--ensemble", "0", "--json"]) == 2
    assert main([*args, "--out", str(tmp_path / "init.pt"), "--ensemble", "2", "--init", str(out), "--json"]) == 2
    assert not member_path(tmp_path / "init.pt", 0).exists()


def test_dominant_land_use_target_follows_the_evaluation_label_rule():
    import torch

    from geoseek.tiles import dominant_class, land_use_loss

    cover = torch.tensor([[0.0, 0.0, 0.1, 0.6, 0.0, 0.0, 0.0],    # farmland
                          [0.0, 0.15, 0.0, 0.0, 0.1, 0.0, 0.0],   # nothing >= 20 %: none
                          [0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25]])  # water
    assert dominant_class(cover).tolist() == [3, 7, 0]
    logits = torch.full((3, 8), -5.0)
    logits[torch.arange(3), torch.tensor([3, 7, 0])] = 5.0
    good = land_use_loss(logits, cover, target="dominant")
    assert good < 0.01 and land_use_loss(logits.flip(1), cover, target="dominant") > 5
    with pytest.raises(ValueError, match="cover' or 'dominant"):
        land_use_loss(logits, cover, target="argmax")


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
