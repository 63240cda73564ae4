"""Two-stage sketch search: Python, CLI, HTTP and the sketch-search benchmark."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw


def test_search_cli_and_python(built, tmp_path, capsys):
    from geoseek.capabilities.sketch_image.search import search_drawing
    from geoseek.cli import main
    from geoseek.collection import Collection

    out = built
    col = Collection.open(out)
    strokes = tmp_path / "s.json"
    strokes.write_text(json.dumps({"strokes": [[[0, 100], [50, 50]], [[0, 100], [20, 20]]]}))
    assert main(["search", str(out), "--sketch", str(strokes), "-k", "5", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    hits = res.get("hits", res.get("results"))
    assert len(hits) == 5

    # rerank reorders the ANN candidates by cross-attention score, descending
    ink = np.zeros((112, 112), np.float32)
    ink[20:90:10, :] = 1
    reranked = search_drawing(col, ink, k=30, rerank=30)
    plain = search_drawing(col, ink, k=30, rerank=0)
    assert sorted(h.item.id for h in reranked) == sorted(h.item.id for h in plain)
    scores = [h.score for h in reranked]
    assert scores == sorted(scores, reverse=True)
    # labels filter
    only = search_drawing(col, ink, k=5, filter=__import__("geoseek.search", fromlist=["make_filter"]).make_filter(labels="grid"))
    assert only and all(h.item.label == "grid" for h in only)
    # a bad sketch file is a clear CLI error (exit 2), not a traceback
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["search", str(out), "--sketch", str(bad)]) == 2
    col.close()


def test_batch_search_matches_one_at_a_time_and_refuses_bad_input(built):
    from geoseek.capabilities.sketch_image.search import search_drawing, search_ink_maps
    from geoseek.collection import Collection
    from geoseek.errors import InvalidInputError

    col = Collection.open(built)
    inks = np.zeros((2, 112, 112), np.float32)
    inks[0, 20:90:10, :] = 1
    inks[1, :, 30:80:12] = 1
    batched = search_ink_maps(col, inks, k=4, rerank=10)
    assert [[h.item.id for h in hits] for hits in batched] == [[h.item.id for h in search_drawing(col, ink, k=4, rerank=10)]
                                                             for ink in inks]
    with pytest.raises(InvalidInputError):
        search_ink_maps(col, inks, k=0)
    col.close()


def test_http_sketch_search(built):
    from fastapi.testclient import TestClient

    from geoseek.service.app import create_app
    client = TestClient(create_app({"scenes": built}))
    img = Image.new("RGB", (120, 120), "white")
    ImageDraw.Draw(img).ellipse([30, 30, 90, 90], outline="black", width=4)

    buf = io.BytesIO()
    img.save(buf, "PNG")
    r = client.post("/collections/scenes/search/sketch", files={"file": ("s.png", buf.getvalue(), "image/png")}, data={"k": "4"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "sketch" and body["count"] == 4
    r = client.post("/collections/scenes/search/sketch", data={"strokes": json.dumps([[[0, 10, 20], [0, 10, 0]]]), "k": "3"})
    assert r.status_code == 200 and r.json()["count"] == 3
    r = client.post("/collections/scenes/search/sketch", files={"file": ("s.png", b"not an image", "image/png")})
    assert r.status_code == 422
    r = client.post("/collections/scenes/search/sketch", data={"k": "3"})
    assert r.status_code == 422
    r = client.post("/collections/nope/search/sketch", data={"strokes": "[[[0,1],[0,1]]]"})
    assert r.status_code == 404


def test_bench_sketch_search_reports_the_median_of_repeated_runs(built, shared_data, capsys):
    from geoseek.cli import main

    args = ["bench", "sketch-search", "--collection", str(built), "--data", str(shared_data), "--queries", "4",
            "--rerank", "5", "--threads", "1", "--json"]
    assert main([*args, "--repeat", "3"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["queries"] == 4 and out["repeat"] == 3 and len(out["seconds_runs"]) == 3
    assert abs(out["seconds"] - np.median(out["seconds_runs"])) < 2e-3  # the median (runs rounded to ms)
    assert out["same_as_batched"] is True
    assert main([*args, "--repeat", "0"]) == 2


def test_search_refuses_a_collection_not_built_for_sketches_before_loading_its_model(tmp_path):
    from geoseek.capabilities.sketch_image.search import search_drawing
    from geoseek.collection import Collection, Item
    from geoseek.errors import InvalidInputError

    with Collection.create(tmp_path / "other", modality="osm-tile", dim=4) as b:
        b.add([Item(id="a")], np.ones((1, 4), np.float32))
    col = Collection.open(tmp_path / "other")  # no model.pt: a model load would fail differently
    with pytest.raises(InvalidInputError, match="not built for sketch search"):
        search_drawing(col, json.dumps([[[0, 10], [0, 10]]]).encode(), k=3)
    col.close()
