"""GIMI: the evaluation protocol (hand-computed), search weighting, training tasks, search end to end."""

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from geoseek.errors import InvalidInputError
from geoseek.gimi import (
    GeoImageFeatures,
    GimiTrainConfig,
    base_embeddings,
    combined_scores,
    embed_split,
    retrieval_metrics,
    train_gimi,
)
from geoseek.sources.geo_image_dataset import GeoImageDataset, GeoImageSample

TINY_MODEL = {"backbone": None, "feature_dim": 16, "embed_dim": 8, "hidden_dim": 32, "location_dropout": 0.0,
              "location_params": {"frequency_num": 8, "min_radius": 1e-4, "max_radius": 1.0, "head": "mlp",
                                  "hidden_dim": 16, "num_layers": 1, "out_dim": 8}}


def _unit(deg):
    return np.array([[math.cos(math.radians(d)), math.sin(math.radians(d))] for d in deg])


def test_protocol_hand_computed():
    emb = _unit([0, 10, 25, 90])
    labels = ["a", "b", "a", "b"]
    m = retrieval_metrics(emb, labels, percents=(50,))
    # rankings (query excluded): q0 → b,a,b; q1 → a,a,b; q2 → b,a,b; q3 → a,b,a
    # top 50% of N−1 = 3 is ⌈1.5⌉ = 2 results: P = .5, 0, .5, .5
    assert m["top50"]["mean"] == pytest.approx(0.375)
    assert m["top50"]["std"] == pytest.approx(math.sqrt(0.046875))
    g = 1 / math.log2(3)  # one relevant item at rank 2, ideal DCG 1
    assert m["ndcg50"]["mean"] == pytest.approx(3 * g / 4)
    # 5% keeps the first result only: nobody's first neighbour is relevant
    assert retrieval_metrics(emb, labels)["top5"]["mean"] == 0.0


def test_protocol_geo_weight_ranks_by_distance():
    emb = _unit([0, 10, 25, 90])
    labels = ["a", "b", "a", "b"]
    lonlat = np.array([[0.0, 0.0], [5.0, 0.0], [0.01, 0.0], [5.01, 0.0]])  # a's together, b's together
    m = retrieval_metrics(emb, labels, lonlat, geo_weight=1.0, geo_scale_m=10_000, percents=(5,))
    assert m["top5"]["mean"] == 1.0
    with pytest.raises(InvalidInputError):
        retrieval_metrics(emb, labels, None, geo_weight=0.5)


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


def test_base_embedding_mixes_image_and_location_cosines():
    feats = np.random.default_rng(0).normal(size=(3, 16))
    ll = np.array([[14.4, 35.9], [14.4, 35.9], [9.5, 47.1]])
    e = base_embeddings(feats, ll, beta=0.5)
    assert np.allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    img = base_embeddings(feats, ll, beta=0.0)[:, :16]
    fi = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    assert np.allclose(img, fi, atol=1e-6)
    # same place: location part identical, so cos = 0.5·cos_img + 0.5
    assert e[0] @ e[1] == pytest.approx(0.5 * (fi[0] @ fi[1]) + 0.5, abs=1e-5)


def _toy_data(n_per=24, seed=0):
    """Two regions × two labels; label = a direction in feature space plus noise."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(4, 16)) * 2
    samples, feats = [], []
    i = 0
    for c, (label, region) in enumerate([("farm", (14.4, 35.9)), ("city", (14.5, 35.9)), ("farm", (9.5, 47.1)), ("lake", (9.55, 47.1))]):
        for j in range(n_per):
            ll = (region[0] + rng.normal() * 0.01, region[1] + rng.normal() * 0.01)
            split = ("train", "train", "train", "val", "test")[j % 5]
            samples.append(GeoImageSample(f"s{i}", "toy", "x", ll, (ll[0] - 1e-3, ll[1] - 1e-3, ll[0] + 1e-3, ll[1] + 1e-3),
                                          label, (i, 0), split))
            feats.append(centers[c] + rng.normal(size=16))
            i += 1
    ds = GeoImageDataset(samples, None, {"image_size": 32})
    return GeoImageFeatures(ds, np.asarray(feats, np.float32))


@pytest.mark.parametrize("method", ["softmax", "triplet", "dpt"])
def test_training_improves_retrieval(tmp_path, method):
    from geoseek.checkpoint import load_model

    data = _toy_data()
    cfg = GimiTrainConfig(method=method, classes_per_batch=3, per_class=6, model=TINY_MODEL)
    summary = train_gimi(data, cfg, tmp_path / "m.pt", steps=60, seed=0, progress=False)
    assert summary["best"]["top5"] > 0.8
    model, payload = load_model(tmp_path / "m.pt")
    assert payload["model"] == "gimi-fusion"
    emb = embed_split(model, data, "test")
    m = retrieval_metrics(emb, data.labels[data.dataset.indices("test")])
    assert m["top10"]["mean"] > 0.8


def test_train_config_is_validated():
    with pytest.raises(InvalidInputError):
        GimiTrainConfig(method="arcface")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- search end to end
@pytest.fixture(scope="module")
def geo_collection(tmp_path_factory):
    from geoseek.checkpoint import save_checkpoint
    from geoseek.encoders import create_model
    from geoseek.gimi import build_collection

    tmp = tmp_path_factory.mktemp("gimi")
    torch.manual_seed(0)
    cfg = {"image_size": 32, "embed_dim": 16, "hidden_dim": 32, "location_params": TINY_MODEL["location_params"]}
    model = create_model("gimi-fusion", **cfg)
    ckpt = save_checkpoint(tmp / "model.pt", model_name="gimi-fusion", config=cfg, model=model)
    rng = np.random.default_rng(0)
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (200, 30, 200), (30, 200, 200)]
    samples, images = [], []
    for i, col in enumerate(colours):
        ll = (14.40 + 0.05 * i, 35.9)
        img = np.clip(np.array(col)[None, None, :] + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        samples.append(GeoImageSample(f"img{i}", "toy", "x", ll, (ll[0] - 0.01, 35.89, ll[0] + 0.01, 35.91),
                                      "red" if i == 0 else f"c{i}", (0, i), "test"))
        images.append(img)
    ds = GeoImageDataset(samples, np.stack(images), {"image_size": 32})
    col = build_collection(ds, ckpt, tmp / "col", geo_scale_m=2000, progress=False)
    return col, images


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
