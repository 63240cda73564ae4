"""Sketch-map search: HTTP and Python rank alike, invalid sketches are 422 JSON, the CLI's answers and errors."""

from __future__ import annotations

import json

import pytest


def test_search_endpoint_ranks_scenes_with_footprints(scene_collection, sketch, client):
    from geoseek.collection import Collection
    from geoseek.search.sketchmap import search_sketch_map

    with client(scene_collection) as c:
        r = c.post("/collections/scenes/search/sketch-map?k=3", json=sketch)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["mode"] == "sketch-map" and body["count"] == 3
        scores = [h["score"] for h in body["hits"]]
        assert scores == sorted(scores, reverse=True)
        geom = json.dumps(body["hits"][0])
        assert "Polygon" in geom
        # same ranking as the Python API
        col = Collection.open(scene_collection)
        assert [h.item.id for h in search_sketch_map(col, sketch, 3)] == [h["id"] if "id" in h else h["item"]["id"] for h in body["hits"]]


@pytest.mark.parametrize("body, needle", [
    ({"type": "FeatureCollection", "canvas": {"width": 10, "height": 10}, "features": []}, "empty"),
    ({"canvas": {"width": 10, "height": 10}, "features": [{"properties": {"layer": "dragon"},
      "geometry": {"type": "Point", "coordinates": [1, 1]}}]}, "dragon"),
    ([1, 2, 3], "top level"),
])
def test_invalid_sketch_is_422_json(scene_collection, client, body, needle):
    with client(scene_collection) as c:
        r = c.post("/collections/scenes/search/sketch-map", json=body)
        assert r.status_code == 422
        assert needle in json.dumps(r.json())
        r = c.post("/collections/scenes/search/sketch-map", content=b"{not json", headers={"content-type": "application/json"})
        assert r.status_code == 422


def test_cli_search_and_errors(scene_collection, sketch, tmp_path, capsys):
    from geoseek.cli import main

    f = tmp_path / "s.json"
    f.write_text(json.dumps(sketch))
    assert main(["search", str(scene_collection), "--sketch-map", str(f), "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(out["hits"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"canvas": {"width": 5, "height": 5}, "features": [{"properties": {}, "geometry": None}]}))
    assert main(["search", str(scene_collection), "--sketch-map", str(bad)]) == 2
    assert "properties.layer is missing" in capsys.readouterr().err


def test_collection_of_another_modality_is_refused_with_the_build_hint():
    from types import SimpleNamespace

    from geoseek.capabilities.sketchmap.search import collection_model, search_scenes
    from geoseek.errors import InvalidInputError

    col = SimpleNamespace(manifest={"modality": "osm-tiles", "extra": {}}, path="runs/tiles")
    for call in (lambda: collection_model(col), lambda: search_scenes(col, {"features": []})):
        with pytest.raises(InvalidInputError, match="'osm-scenes'.*geoseek build sketchmap.*'osm-tiles'"):
            call()
