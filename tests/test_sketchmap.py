"""Sketch-map capability: mining schedule, retrieval metrics, scene collection, HTTP search and
feedback that survives a restart, CLI errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from geoseek.losses.mining_schedule import ExemplarSampler, MiningSchedule, RandomNegativeMiner
from geoseek.sketchmap import rank_metrics, true_ranks

# --- mining schedule ------------------------------------------------------------------------


def test_schedule_phases_and_miners():
    s = MiningSchedule(random_until=10, neighbours_until=20)
    assert [s.phase(i) for i in (0, 9, 10, 19, 20, 1000)] == ["random", "random", "neighbours", "neighbours", "semihard", "semihard"]
    assert type(s.miner(0)).__name__ == "RandomNegativeMiner"
    assert type(s.miner(15)).__name__ == "AllTripletsMiner"
    assert type(s.miner(25)).__name__ == "SemiHardMiner"
    with pytest.raises(ValueError):
        MiningSchedule(rank_window=(5, 5))
    with pytest.raises(ValueError):
        MiningSchedule(random_until=30, neighbours_until=20)


def test_random_negative_miner_is_valid():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    t = RandomNegativeMiner()(torch.randn(8, 4), labels)
    assert len(t.anchor) == 3 * 2 + 2 + 3 * 2  # every ordered positive pair
    assert (labels[t.anchor] == labels[t.positive]).all() and (t.anchor != t.positive).all()
    assert (labels[t.anchor] != labels[t.negative]).all()


def test_sampler_uses_neighbours_outside_the_rank_window():
    # scenes on a line: embedding neighbours are the index neighbours
    n = 40
    ang = np.linspace(0, 0.5, n)
    emb = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    sched = MiningSchedule(random_until=5, neighbours_until=10, rank_window=(2, 4), refresh_every=3, neighbours_per_seed=2)
    sp = ExemplarSampler(n, sched, seed=0)
    assert not sp.needs_update(0)
    b = sp.batch(0, 12)
    assert len(set(b.tolist())) == 12
    assert sp.needs_update(5)
    sp.update(emb, step=5)
    assert not sp.needs_update(6) and sp.needs_update(8)
    # neighbours at ranks 2..3: distance 2 in index space (rank 0, 1 are the adjacent ones)
    for i in range(3, n - 3):
        assert set(np.abs(sp.neighbours[i] - i).tolist()) <= {2, 3}
    b = sp.batch(6, 12)
    assert len(set(b.tolist())) == 12
    close = sum(int(np.min(np.abs(np.delete(b, j) - b[j])) <= 3) for j in range(len(b)))
    assert close >= 8  # batches are built from near neighbours, not random scenes


def test_rank_metrics():
    q = np.eye(4, dtype=np.float32)
    db = np.eye(4, dtype=np.float32)
    r = true_ranks(q, db, np.array([0, 1, 3, 2]))
    assert r[0] == 1 and r[1] == 1 and r[2] > 1
    m = rank_metrics(np.array([1, 2, 4, 20]))
    assert m["mrr"] == pytest.approx((1 + 0.5 + 0.25 + 0.05) / 4)
    assert m["acc_at_1"] == 0.25 and m["acc_at_3"] == 0.5 and m["acc_at_5"] == 0.75 and m["acc_at_10"] == 0.75


def test_training_task_runs_with_fit(tmp_path):
    from geoseek.checkpoint import load_model
    from geoseek.sketchmap import SceneSet, SketchMapData, SketchMapTask
    from geoseek.train import FitConfig, fit

    rng = np.random.default_rng(0)
    n = 16
    r = (rng.random((n, 14, 16, 16)) > 0.9).astype(np.uint8) * 255
    pool = np.stack([np.stack([np.roll(r[i], k, axis=-1) for k in (1, -1)]) for i in range(10)])
    data = SketchMapData(SceneSet(r, np.zeros((n, 4)), np.zeros((n, 4))), np.arange(10), np.arange(10, 13),
                         np.arange(13, 16), pool, r[10:13])
    task = SketchMapTask(data, "sketchmap-sppcnn", {"widths": [8, 16, 16], "hidden": 32},
                         schedule=MiningSchedule(random_until=1, neighbours_until=2, refresh_every=1, rank_window=(1, 4)), batch_scenes=4,
                         feedback={3: [r[3]]})
    res = fit(task, FitConfig(steps=3, validate_every=3, monitor="val_mrr", warmup=1), tmp_path / "m.pt", progress=False)
    assert 0 < res["best"]["val_mrr"] <= 1
    model, payload = load_model(tmp_path / "m.pt")
    assert payload["model"] == "sketchmap-sppcnn"
    assert model(torch.from_numpy(r[:2])).shape == (2, 128)


# --- scene collection, HTTP, feedback -------------------------------------------------------


@pytest.fixture(scope="module")
def scene_collection(shared_data: Path, tmp_path_factory) -> Path:
    from geoseek.checkpoint import save_checkpoint
    from geoseek.encoders.registry import create_model
    from geoseek.sketchmap import build_scene_collection

    tmp = tmp_path_factory.mktemp("sketchmap")
    torch.manual_seed(0)
    cfg = {"widths": [8, 16, 16], "hidden": 32}
    ckpt = save_checkpoint(tmp / "tiny.pt", model_name="sketchmap-sppcnn", config=cfg,
                           model=create_model("sketchmap-sppcnn", **cfg), data={"window_m": 240.0, "size": 32})
    out = tmp / "scenes"
    # with the raw-pixel rerank on, so the search tests exercise both steps
    build_scene_collection(shared_data / "osm" / "helsinki-center.osm.pbf", out, model=ckpt, progress=False, fusion_weight=1.0)
    return out


SKETCH = {
    "type": "FeatureCollection", "canvas": {"width": 200, "height": 200},
    "features": [
        {"type": "Feature", "properties": {"layer": "building"},
         "geometry": {"type": "Polygon", "coordinates": [[[10, 10], [90, 10], [90, 90], [10, 90], [10, 10]]]}},
        {"type": "Feature", "properties": {"layer": "minor_road"},
         "geometry": {"type": "LineString", "coordinates": [[0, 120], [200, 110]]}},
    ],
}


def _client(path: Path):
    from fastapi.testclient import TestClient

    from geoseek.service.app import create_app

    return TestClient(create_app({"scenes": path}))


def test_collection_holds_scenes(scene_collection):
    from geoseek.collection import Collection

    col = Collection.open(scene_collection)
    assert col.manifest["modality"] == "osm-scenes" and len(col) >= 4
    assert col.array("rasters").shape == (len(col), 14, 32, 32)
    item = next(iter(col.items()))
    assert item.id.startswith("scene/") and item.footprint is not None


def test_search_endpoint_ranks_scenes_with_footprints(scene_collection):
    from geoseek.collection import Collection
    from geoseek.search.sketchmap import search_sketch_map

    with _client(scene_collection) as c:
        r = c.post("/collections/scenes/search/sketch-map?k=3", json=SKETCH)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mode"] == "sketch-map" and body["count"] == 3
        scores = [h["score"] for h in body["hits"]]
        assert scores == sorted(scores, reverse=True)
        geom = json.dumps(body["hits"][0])
        assert "Polygon" in geom
        # same ranking as the Python API
        col = Collection.open(scene_collection)
        assert [h.item.id for h in search_sketch_map(col, SKETCH, 3)] == [h["id"] if "id" in h else h["item"]["id"] for h in body["hits"]]


@pytest.mark.parametrize("body, needle", [
    ({"type": "FeatureCollection", "canvas": {"width": 10, "height": 10}, "features": []}, "empty"),
    ({"canvas": {"width": 10, "height": 10}, "features": [{"properties": {"layer": "dragon"},
      "geometry": {"type": "Point", "coordinates": [1, 1]}}]}, "dragon"),
    ([1, 2, 3], "top level"),
])
def test_invalid_sketch_is_422_json(scene_collection, body, needle):
    with _client(scene_collection) as c:
        r = c.post("/collections/scenes/search/sketch-map", json=body)
        assert r.status_code == 422
        assert needle in json.dumps(r.json())
        r = c.post("/collections/scenes/search/sketch-map", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422


def test_feedback_is_durable_across_restarts(scene_collection):
    from geoseek.collection import Collection
    from geoseek.sketchmap import read_feedback

    col = Collection.open(scene_collection)
    target = next(iter(col.items())).id
    with _client(scene_collection) as c:
        n0 = c.get("/collections/scenes/feedback").json()["count"]
        r = c.post("/collections/scenes/feedback", json={"sketch": SKETCH, "item_id": target})
        assert r.status_code == 200, r.text
        assert r.json()["count"] == n0 + 1
        assert c.post("/collections/scenes/feedback", json={"sketch": SKETCH, "item_id": "scene/nope"}).status_code == 404
        assert c.post("/collections/scenes/feedback", json={"item_id": target}).status_code == 422
    # a new app (server restart) sees the stored pair
    with _client(scene_collection) as c:
        assert c.get("/collections/scenes/feedback").json()["count"] == n0 + 1
    recs = read_feedback(scene_collection)
    assert recs[-1]["item_id"] == target and recs[-1]["sketch"] == SKETCH


def test_feedback_becomes_training_sketches(scene_collection, shared_data):
    from geoseek.collection import Collection
    from geoseek.sketchmap import append_feedback, feedback_sketches, region_scenes, SketchMapData
    from geoseek.sources.osm import read_osm

    col = Collection.open(scene_collection)
    target = next(iter(col.items())).id
    append_feedback(col, SKETCH, target)
    scenes = region_scenes(read_osm(shared_data / "osm" / "helsinki-center.osm.pbf"), window_m=240.0, size=32, progress=False)
    data = SketchMapData(scenes, np.arange(len(scenes)), np.zeros(0, int), np.zeros(0, int), np.zeros((0,)), np.zeros((0,)))
    fb = feedback_sketches(scene_collection, data)
    assert sum(len(v) for v in fb.values()) >= 1
    (j, rasters), = [(j, v) for j, v in fb.items()][:1]
    assert rasters[0].shape == (14, 32, 32) and rasters[0].any()


def test_cli_search_and_errors(scene_collection, tmp_path, capsys):
    from geoseek.cli import main

    f = tmp_path / "s.json"
    f.write_text(json.dumps(SKETCH))
    assert main(["search", str(scene_collection), "--sketch-map", str(f), "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["hits"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"canvas": {"width": 5, "height": 5}, "features": [{"properties": {}, "geometry": None}]}))
    assert main(["search", str(scene_collection), "--sketch-map", str(bad)]) == 2
    assert "properties.layer is missing" in capsys.readouterr().err


def test_fused_ranks_rerank_only_the_top():
    from geoseek.sketchmap import fused_ranks

    rng = np.random.default_rng(0)
    dbm = rng.normal(size=(50, 8)).astype(np.float32)
    dbm /= np.linalg.norm(dbm, axis=1, keepdims=True)
    dbr = np.eye(50, dtype=np.float32)
    truth = np.array([7, 9])
    qm = dbm[[3, 9]]  # query 0's model vector points at scene 3, query 1's at 9
    qr = dbr[[7, 9]]  # raw pixels point at the true scenes
    assert (fused_ranks(qm, dbm, qr, dbr, truth, 0.0) >= 1).all()
    r_full = fused_ranks(qm, dbm, qr, dbr, truth, 5.0, rerank=50)
    assert list(r_full) == [1, 1]
    r_top1 = fused_ranks(qm, dbm, qr, dbr, truth, 5.0, rerank=1)
    assert r_top1[1] == 1 and r_top1[0] > 1  # scene 7 is outside query 0's top-1: not promoted
