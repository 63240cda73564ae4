"""The feedback log: pairs stored over HTTP survive a restart and become training sketches."""

from __future__ import annotations

import numpy as np


def test_feedback_is_durable_across_restarts(scene_collection, sketch, client):
    from geoseek.capabilities.sketchmap.feedback import read_feedback
    from geoseek.collection import Collection

    col = Collection.open(scene_collection)
    target = next(iter(col.items())).id
    with client(scene_collection) as c:
        n0 = c.get("/collections/scenes/feedback").json()["count"]
        r = c.post("/collections/scenes/feedback", json={"sketch": sketch, "item_id": target})
        assert r.status_code == 200, r.text
        assert r.json()["count"] == n0 + 1
        assert c.post("/collections/scenes/feedback", json={"sketch": sketch, "item_id": "scene/nope"}).status_code == 404
        assert c.post("/collections/scenes/feedback", json={"item_id": target}).status_code == 422
    # a new app (server restart) sees the stored pair
    with client(scene_collection) as c:
        assert c.get("/collections/scenes/feedback").json()["count"] == n0 + 1
    recs = read_feedback(scene_collection)
    assert recs[-1]["item_id"] == target and recs[-1]["sketch"] == sketch


def test_feedback_becomes_training_sketches(scene_collection, sketch, shared_data):
    from geoseek.capabilities.sketchmap.data import SketchMapData, region_scenes
    from geoseek.capabilities.sketchmap.feedback import append_feedback, feedback_sketches
    from geoseek.collection import Collection
    from geoseek.sources.osm import read_osm

    col = Collection.open(scene_collection)
    target = next(iter(col.items())).id
    append_feedback(col, sketch, target)
    scenes = region_scenes(read_osm(shared_data / "osm" / "helsinki-center.osm.pbf"), window_m=240.0, size=32, progress=False)
    data = SketchMapData(scenes, np.arange(len(scenes)), np.zeros(0, int), np.zeros(0, int), np.zeros((0,)), np.zeros((0,)))
    fb = feedback_sketches(scene_collection, data)
    assert sum(len(v) for v in fb.values()) >= 1
    (j, rasters), = [(j, v) for j, v in fb.items()][:1]
    assert rasters[0].shape == (14, 32, 32) and rasters[0].any()


def test_feedback_log_is_bounded_rotated_and_counted_incrementally(scene_collection, sketch, monkeypatch):
    import json

    import pytest

    from geoseek.capabilities.sketchmap import feedback as fbm
    from geoseek.collection import Collection
    from geoseek.errors import InvalidInputError

    col = Collection.open(scene_collection)
    target = next(iter(col.items())).id
    path = fbm.feedback_path(col)
    for f in [path, *(fbm._rotated(path, i) for i in range(1, 5))]:
        f.unlink(missing_ok=True)
    line = len(json.dumps({"time": "2000-01-01T00:00:00+00:00", "item_id": target, "sketch": sketch},
                          separators=(",", ":"))) + 1
    monkeypatch.setattr(fbm, "MAX_LOG_BYTES", 3 * line + 10)  # rotate every 3 records
    for i in range(10):
        assert fbm.append_feedback(col, sketch, target)["count"] == i + 1  # 3 rotated logs + the current one
    assert path.stat().st_size <= fbm.MAX_LOG_BYTES and fbm._rotated(path, 1).is_file()
    assert fbm.count_feedback(col) == 10 == len(fbm.read_feedback(col))
    # counting reads only what was appended since the last count
    reads = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda f, *a, **k: reads.append(str(f)) or real_open(f, *a, **k))
    assert fbm.count_feedback(col) == 10 and reads == []
    monkeypatch.setattr("builtins.open", real_open)
    monkeypatch.setattr(fbm, "MAX_RECORD_BYTES", line - 5)
    with pytest.raises(InvalidInputError, match="feedback record is at most"):
        fbm.append_feedback(col, sketch, target)
