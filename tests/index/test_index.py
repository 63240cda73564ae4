"""One suite for every vector index backend: FAISS embedded, Qdrant local mode, and a real Qdrant server when ``$GEOSEEK_QDRANT_URL`` is set (API key from
``$GEOSEEK_QDRANT_API_KEY``; each test's collection is deleted afterwards)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from geoseek.errors import InvalidInputError
from geoseek.geo import BBox
from geoseek.index.base import BACKENDS, Filter, Radius, VectorIndex, load_index

DIM = 16
N = 400


def _data(n: int = N, dim: int = DIM, seed: int = 0):
    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, dim)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    lonlat = np.stack([rng.uniform(9.0, 11.0, n), rng.uniform(46.0, 48.0, n)], axis=1)
    labels = [("park", "water", "road", None)[i % 4] for i in range(n)]
    keys = np.arange(1000, 1000 + n, dtype=np.int64)  # not positions: keys are arbitrary
    return keys, vecs, lonlat, labels


def _brute(vecs, keys, queries, k, mask, metric="ip"):
    """Reference top-k keys per query among ``mask``."""
    if metric == "ip":
        s = queries @ vecs.T
    else:
        s = -((queries[:, None, :] - vecs[None, :, :]) ** 2).sum(-1)
    s = np.where(mask[None, :], s, -np.inf)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.where(np.take_along_axis(s, order, 1) > -np.inf, keys[order], -1), np.take_along_axis(s, order, 1)


_SERVER_INDEXES: list = []


def _create(backend: str, **kwargs) -> VectorIndex:
    """A fresh index of ``backend`` (a test parameter name)."""
    if backend == "qdrant":
        return BACKENDS.create("qdrant", local=True, **kwargs)
    if backend == "qdrant-server":
        idx = BACKENDS.create("qdrant", url=os.environ["GEOSEEK_QDRANT_URL"], **kwargs)
        _SERVER_INDEXES.append(idx)
        return idx
    return BACKENDS.create(backend, **kwargs)


@pytest.fixture(params=["faiss", "qdrant", "qdrant-server"])
def backend(request) -> str:
    if request.param == "qdrant-server" and not os.environ.get("GEOSEEK_QDRANT_URL"):
        pytest.skip("no Qdrant server: set GEOSEEK_QDRANT_URL (and GEOSEEK_QDRANT_API_KEY) to run these")
    yield request.param
    while _SERVER_INDEXES:  # delete the server collections this test made
        idx = _SERVER_INDEXES.pop()
        try:
            idx.client.delete_collection(idx.collection_name)
        except Exception:  # noqa: BLE001 - already closed or deleted
            pass


@pytest.fixture
def index(backend) -> VectorIndex:
    idx = _create(backend, dim=DIM, metric="ip")
    keys, vecs, lonlat, labels = _data()
    idx.add(keys, vecs, lonlat, labels)
    yield idx
    idx.close()


def test_protocol_and_len(index):
    assert isinstance(index, VectorIndex)
    assert len(index) == N
    assert sorted(index.keys().tolist()) == list(range(1000, 1000 + N))


def test_unfiltered_search_is_exact_and_sorted(index):
    keys, vecs, lonlat, labels = _data()
    q = _data(5, seed=1)[1]
    scores, got = index.search(q, 10)
    ref, ref_scores = _brute(vecs, keys, q, 10, np.ones(N, bool))
    assert got.shape == scores.shape == (5, 10)
    assert got.dtype == np.int64 and scores.dtype == np.float32
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4)
    assert (np.diff(scores, axis=1) <= 1e-6).all()


@pytest.mark.parametrize(
    "flt",
    [
        Filter(bbox=BBox(9.5, 46.5, 10.0, 47.0)),
        Filter(radius=Radius(10.0, 47.0, 40_000)),
        Filter(labels=frozenset({"water", "road"})),
        Filter(bbox=BBox(9.0, 46.0, 10.5, 48.0), labels=frozenset({"park"})),
        Filter(radius=Radius(10.0, 47.0, 60_000), labels=frozenset({"park"}), bbox=BBox(9.0, 46.9, 11.0, 48.0)),
    ],
    ids=["bbox", "radius", "labels", "bbox+label", "all"],
)
def test_filtered_search_returns_true_topk_inside(index, flt):
    keys, vecs, lonlat, labels = _data()
    mask = flt.mask(lonlat, np.array(labels, dtype=object))
    assert 10 <= mask.sum() < N  # the filter matters and k exist
    q = _data(4, seed=2)[1]
    scores, got = index.search(q, 10, flt)
    ref, _ = _brute(vecs, keys, q, 10, mask)
    np.testing.assert_array_equal(got, ref)


def test_filter_with_fewer_than_k_pads_with_minus_one(index):
    keys, vecs, lonlat, labels = _data()
    flt = Filter(bbox=BBox(9.0, 46.0, 9.15, 46.15))
    mask = flt.mask(lonlat, np.array(labels, dtype=object))
    assert 0 < mask.sum() < 10
    scores, got = index.search(_data(2, seed=3)[1], 10, flt)
    assert ((got >= 0).sum(axis=1) == mask.sum()).all()
    assert set(got[got >= 0].tolist()) == set(keys[mask].tolist())
    assert (got[:, mask.sum():] == -1).all()


def test_filter_matching_nothing(index):
    scores, got = index.search(_data(2, seed=3)[1], 5, Filter(labels=frozenset({"nope"})))
    assert (got == -1).all()
    scores, got = index.search(_data(2, seed=3)[1], 5, Filter(bbox=BBox(-10, -10, -9, -9)))
    assert (got == -1).all()


def test_items_without_location_never_match_geo_filters(backend):
    idx = _create(backend, dim=4, metric="ip")
    v = np.eye(4, dtype=np.float32)
    idx.add(np.arange(4), v, np.array([[0, 0], [np.nan, np.nan], [1, 1], [np.nan, np.nan]]), ["a", None, "a", "b"])
    _, got = idx.search(v[1], 4, Filter(bbox=BBox(-180, -90, 180, 90)))
    assert set(got[0][got[0] >= 0].tolist()) == {0, 2}
    _, got = idx.search(v[1], 4, Filter(labels=frozenset({"a", "b"})))
    assert set(got[0][got[0] >= 0].tolist()) == {0, 2, 3}
    idx.close()


def test_remove(index):
    keys, vecs, lonlat, labels = _data()
    assert index.remove(np.array([1000, 1001, 99999])) == 2
    assert index.remove(np.array([1000])) == 0
    assert len(index) == N - 2
    _, got = index.search(vecs[:2], 5)
    assert 1000 not in got and 1001 not in got
    with pytest.raises(KeyError):
        index.vectors(np.array([1000]))


def test_vectors_roundtrip(index):
    keys, vecs, _, _ = _data()
    np.testing.assert_allclose(index.vectors(keys[[5, 3]]), vecs[[5, 3]], atol=1e-6)


def test_bad_input(index):
    with pytest.raises(InvalidInputError):
        index.search(np.zeros((2, DIM + 1), np.float32), 3)
    with pytest.raises(InvalidInputError):
        index.search(np.zeros((2, DIM), np.float32), 0)
    with pytest.raises(InvalidInputError):  # key already present
        index.add(np.array([1000]), np.zeros((1, DIM), np.float32), np.zeros((1, 2)), ["x"])
    with pytest.raises(InvalidInputError):
        index.add(np.array([1, 2]), np.zeros((1, DIM), np.float32), np.zeros((2, 2)), ["x", "y"])
    with pytest.raises(InvalidInputError):
        index.add(np.array([5]), np.full((1, DIM), np.nan, np.float32), np.zeros((1, 2)), ["x"])


def test_save_load(index, tmp_path):
    keys, vecs, lonlat, labels = _data()
    q = _data(3, seed=4)[1]
    flt = Filter(radius=Radius(10.0, 47.0, 50_000), labels=frozenset({"park", "water"}))
    before = index.search(q, 7, flt)
    index.save(tmp_path / "idx")
    index.close()
    loaded = load_index(tmp_path / "idx")
    assert len(loaded) == N and loaded.dim == DIM and loaded.metric == "ip"
    after = loaded.search(q, 7, flt)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0], atol=1e-5)
    loaded.close()


def test_l2_metric_scores_are_negated_squared_distances(backend):
    keys, vecs, lonlat, labels = _data(100)
    idx = _create(backend, dim=DIM, metric="l2")
    idx.add(keys, vecs, lonlat, labels)
    q = _data(3, seed=5)[1] * 2
    scores, got = idx.search(q, 5)
    ref, ref_scores = _brute(vecs, keys, q, 5, np.ones(100, bool), metric="l2")
    np.testing.assert_array_equal(got, ref)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-4, atol=1e-4)
    idx.close()


def test_radius_across_the_antimeridian(backend):
    idx = _create(backend, dim=2, metric="ip")
    pts = np.array([[179.99, 0.0], [-179.99, 0.0], [-170.0, 0.0]])
    idx.add(np.arange(3), np.eye(3, 2, dtype=np.float32) + 0.1, pts, None)
    _, got = idx.search(np.ones(2, np.float32), 3, Filter(radius=Radius(179.995, 0.0, 5_000)))
    assert set(got[0][got[0] >= 0].tolist()) == {0, 1}  # 0.02° apart across ±180 is ~2.2 km
    idx.close()
