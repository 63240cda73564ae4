"""Qdrant-specific behaviour: configuration from the environment, creation settings, the exact plan
for selective filters. Runs in qdrant-client's local mode; nothing here needs a server."""

from __future__ import annotations

import json

import numpy as np

from geoseek.geo import BBox
from geoseek.index.base import Filter
from geoseek.index.qdrant_index import API_KEY_ENV, URL_ENV, QdrantIndex


def _points(n=300, dim=8, seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(size=(n, dim)).astype(np.float32)
    ll = np.stack([rng.uniform(0, 10, n), rng.uniform(40, 50, n)], axis=1)
    return np.arange(n), v, ll, [("a", "b")[i % 2] for i in range(n)]


def test_url_and_api_key_come_from_the_environment(monkeypatch):
    seen = {}

    class FakeClient:
        def __init__(self, url=None, api_key=None, timeout=None, **kw):
            seen.update(url=url, api_key=api_key)

        def count(self, *a, **kw):
            return type("Count", (), {"count": 0})()

    import qdrant_client

    real = qdrant_client.QdrantClient
    monkeypatch.setattr(qdrant_client, "QdrantClient", FakeClient)
    monkeypatch.setenv(URL_ENV, "http://qdrant.example:6333")
    monkeypatch.setenv(API_KEY_ENV, "s3cret")
    idx = QdrantIndex(4, _create=False)
    assert idx.is_remote and seen == {"url": "http://qdrant.example:6333", "api_key": "s3cret"}
    assert "s3cret" not in json.dumps(idx.config())  # the key is never written to config.json
    monkeypatch.setattr(qdrant_client, "QdrantClient", real)
    local = QdrantIndex(4, local=True)  # local mode on request, whatever the environment says
    assert not local.is_remote
    local.close()


def test_selective_filters_are_searched_exactly_and_batches_are_upserted():
    keys, v, ll, labels = _points()
    idx = QdrantIndex(8, local=True, upsert_batch=64)
    idx.add(keys, v, ll, labels)
    assert len(idx) == 300
    idx.url = "pretend-server"  # exercise the server plan (count first) on the local client
    small = Filter(bbox=BBox(0, 40, 3, 43))
    _, got = idx.search(v[:2], 5, small)
    assert idx.last_plan == "exact" and small.mask(ll[got[0]], np.array(labels)[got[0]]).all()
    idx.exact_max_points = 10
    idx.search(v[:2], 5, Filter(labels=frozenset({"a"})))
    assert idx.last_plan == "hnsw"
    idx.search(v[:2], 5, Filter(labels=frozenset({"zzz"})))
    assert idx.last_plan == "empty"
    idx.url = None
    idx.close()
