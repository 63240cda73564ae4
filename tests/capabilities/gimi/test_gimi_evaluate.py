"""GIMI evaluation: the protocol (hand-computed), the geo-weighted protocol, the Base embedding."""

import math

import numpy as np
import pytest

from geoseek.capabilities.gimi.evaluate import base_embeddings, retrieval_metrics
from geoseek.errors import InvalidInputError


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
