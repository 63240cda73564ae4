"""GIMI search: the visual ⊕ geographic score blend, and search end to end (Python, CLI, HTTP)."""

import io

import numpy as np
import pytest
from PIL import Image

from geoseek.capabilities.gimi.search import combined_scores
from geoseek.errors import InvalidInputError


def test_combined_scores_weighs_visual_against_geography():
    visual = np.array([0.9, 0.5])
    items = np.array([[10.0, 0.0], [0.0, 0.0]])  # the visually better item is ~1100 km away
    q = (0.0, 0.0)
    assert np.argmax(combined_scores(visual, items, q, 0.0)) == 0
    s = combined_scores(visual, items, q, 0.5, geo_scale_m=5000)
    assert s[1] == pytest.approx(0.5 * 0.5 + 0.5 * 1.0) and np.argmax(s) == 1
    assert combined_scores(visual, np.array([[np.nan, np.nan], [0, 0]]), q, 1.0)[0] == 0.0
    with pytest.raises(InvalidInputError):
        combined_scores(visual, items, None, 0.3)
    with pytest.raises(InvalidInputError):
        combined_scores(visual, items, q, 1.5)


def test_search_image_finds_itself_and_geo_weight_prefers_nearby(geo_collection):
    from geoseek.index.base import Filter
    from geoseek.search.image import search_by_image

    col, images = geo_collection
    hits = search_by_image(col, images[3], (14.55, 35.9), k=3)
    assert hits[0].item.id == "img3" and hits[0].score == pytest.approx(1.0, abs=1e-4)
    no_loc = search_by_image(col, images[3], None, k=6)
    assert len(no_loc) == 6
    # geo weight 1: the item nearest to the given location wins whatever the image
    near = search_by_image(col, images[3], (14.40, 35.9), k=2, geo_weight=1.0)
    assert near[0].item.id == "img0"
    assert near[0].score >= near[1].score
    only = search_by_image(col, images[3], (14.55, 35.9), k=5, geo_weight=0.5, filter=Filter(labels={"red"}))
    assert [h.item.id for h in only] == ["img0"]
    with pytest.raises(InvalidInputError, match="location"):
        search_by_image(col, images[3], None, k=3, geo_weight=0.5)


def test_cli_search_image(geo_collection, tmp_path, capsys):
    import json

    from geoseek.cli import main

    col, images = geo_collection
    f = tmp_path / "q.png"
    Image.fromarray(images[2]).save(f)
    assert main(["search", str(col.path), "--image", str(f), "--lonlat", "14.5,35.9", "-k", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["mode"] == "image" and out["hits"][0]["item"]["id"] == "img2"
    assert main(["search", str(col.path), "--image", str(f), "--geo-weight", "0.5"]) == 2
    assert "needs --lonlat" in capsys.readouterr().err


def test_http_search_image(geo_collection):
    from fastapi.testclient import TestClient

    from geoseek.service.app import create_app

    col, images = geo_collection
    client = TestClient(create_app({"geo": col}))
    buf = io.BytesIO()
    Image.fromarray(images[1]).save(buf, "PNG")
    png = buf.getvalue()
    r = client.post("/collections/geo/search/image", files={"file": ("q.png", png, "image/png")},
                    data={"lon": "14.45", "lat": "35.9", "k": "3"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "image" and body["hits"][0]["id"] == "img1"
    assert body["hits"][0]["footprint"]["geometry"]["type"] == "Polygon"
    r = client.post("/collections/geo/search/image", files={"file": ("q.png", png, "image/png")},
                    data={"geo_weight": "1", "lon": "14.40", "lat": "35.9", "k": "1"})
    assert r.status_code == 200 and r.json()["hits"][0]["id"] == "img0"
    r = client.post("/collections/geo/search/image", files={"file": ("q.png", png, "image/png")}, data={"lon": "14.4"})
    assert r.status_code == 422 and "lon and lat" in r.json()["detail"]
    r = client.post("/collections/geo/search/image", files={"file": ("q.png", png, "image/png")}, data={"geo_weight": "0.3"})
    assert r.status_code == 422
    r = client.post("/collections/geo/search/image", files={"file": ("q.txt", b"not an image", "text/plain")})
    assert r.status_code == 422
    r = client.post("/collections/nope/search/image", files={"file": ("q.png", png, "image/png")})
    assert r.status_code == 404
