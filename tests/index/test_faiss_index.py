"""FAISS-specific behaviour: flat → IVF by size, IVF/HNSW filtered search, removals."""

from __future__ import annotations

import numpy as np
import pytest

from geoseek.geo import BBox
from geoseek.index.base import Filter, load_index
from geoseek.index.faiss_index import FaissIndex


def _clustered(n, dim=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(20, dim))
    x = centres[rng.integers(0, 20, n)] + 0.3 * rng.normal(size=(n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    lonlat = np.stack([rng.uniform(0, 10, n), rng.uniform(40, 50, n)], axis=1)
    return x, lonlat


def _recall(got, ref):
    return np.mean([len(set(g[g >= 0]) & set(r[r >= 0])) / max((r >= 0).sum(), 1) for g, r in zip(got, ref)])


def test_switches_to_ivf_above_threshold_and_calibrates():
    x, ll = _clustered(3000)
    idx = FaissIndex(32, ivf_threshold=2000)
    idx.add(np.arange(1500), x[:1500], ll[:1500], None)
    assert idx.index_type == "flat"
    idx.add(np.arange(1500, 3000), x[1500:], ll[1500:], None)
    assert idx.index_type == "ivf" and len(idx) == 3000 and idx.nprobe is not None
    np.testing.assert_allclose(idx.vectors(np.array([5, 2500])), x[[5, 2500]], atol=1e-6)
    exact = FaissIndex(32, kind="flat")
    exact.add(np.arange(3000), x, ll, None)
    q, _ = _clustered(100, seed=1)
    assert _recall(idx.search(q, 10)[1], exact.search(q, 10)[1]) >= 0.95


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_ann_filtered_search_recall_and_k_found(kind, tmp_path):
    x, ll = _clustered(2500)
    keys = np.arange(2500) * 7
    ann = FaissIndex(32, kind=kind, exact_threshold=10)  # force the approximate path for filters
    exact = FaissIndex(32, kind="flat")
    for idx in (ann, exact):
        idx.add(keys, x, ll, None)
    q, _ = _clustered(50, seed=1)
    for flt in (None, Filter(bbox=BBox(0, 40, 3, 50)), Filter(bbox=BBox(0, 40, 1, 45)),
                Filter(bbox=BBox(0, 40, 0.3, 41))):
        _, got = ann.search(q, 10, flt)
        _, ref = exact.search(q, 10, flt)
        assert _recall(got, ref) >= 0.95, flt
        assert ((got >= 0).sum(1) == (ref >= 0).sum(1)).all()  # k found whenever k exist
    # removed keys never come back, also after save/load
    assert ann.remove(keys[:100]) == 100 and ann.index_type == kind
    ann.save(tmp_path / "a")
    loaded = load_index(tmp_path / "a")
    _, got = loaded.search(x[:100], 10)
    assert not np.isin(got, keys[:100]).any() and len(loaded) == 2400
    _, got = loaded.search(x[:100], 10, Filter(bbox=BBox(0, 40, 5, 50)))
    assert not np.isin(got, keys[:100]).any()
    loaded.add(keys[:3], x[:3], ll[:3], None)  # re-adding removed keys works
    assert loaded.search(x[:3], 1)[1][:, 0].tolist() == keys[:3].tolist()


def test_mass_removal_returns_to_flat():
    x, ll = _clustered(3000)
    idx = FaissIndex(32, kind="auto", ivf_threshold=2000)
    idx.add(np.arange(3000), x, ll, ["a"] * 3000)
    assert idx.index_type == "ivf"
    idx.remove(np.arange(2000))
    assert idx.index_type == "flat" and len(idx) == 1000
    _, got = idx.search(x[2000:2020], 1, Filter(labels=frozenset({"a"})))
    np.testing.assert_array_equal(got[:, 0], np.arange(2000, 2020))


def test_ivfpq_under_a_small_budget_reranks_from_the_memory_mapped_vectors(tmp_path, monkeypatch):
    from geoseek.index._faiss import faiss
    from geoseek.index.ivfpq import REFINE_FACTORS, estimate_ram_bytes, parse_memory_budget

    n, dim = 20_000, 32
    x, ll = _clustered(n, dim)
    budget = "1.5M"
    assert estimate_ram_bytes("ivf", n, dim) > parse_memory_budget(budget)  # IVF-Flat would not fit
    idx = FaissIndex(dim, memory_budget=budget)
    idx.add(np.arange(n), x, ll, None)
    assert idx.index_type == "ivfpq" and idx.pq_m == dim // 4 and idx.refine_factor in REFINE_FACTORS
    idx.save(tmp_path / "idx")
    idx.close()
    loaded = load_index(tmp_path / "idx")
    assert loaded.index_type == "ivfpq" and isinstance(loaded._vectors.array, np.memmap)
    reads = []
    gather = loaded._vectors.gather
    monkeypatch.setattr(loaded._vectors, "gather", lambda rows: (reads.append(np.array(rows)), gather(rows))[1])
    q, _ = _clustered(100, dim, seed=1)
    _, truth = faiss.knn(q, x, 10, metric=faiss.METRIC_INNER_PRODUCT)
    scores, got = loaded.search(q, 10)
    assert _recall(got, truth) >= 0.95
    assert reads and all(len(r) and (np.diff(r) > 0).all() for r in reads)  # sorted, de-duplicated rows
    np.testing.assert_allclose(scores[:, 0], (q * x[got[:, 0]]).sum(1), atol=1e-5)  # exact re-ranked scores
    flt = Filter(bbox=BBox(0.0, 40.0, 6.0, 50.0))  # ~60 % of the items: the PQ path with a selector
    mask = flt.mask(ll, np.array([None] * n, dtype=object))
    sel = np.flatnonzero(mask)
    assert mask.sum() > loaded.exact_threshold
    _, ftruth = faiss.knn(q, x[sel], 10, metric=faiss.METRIC_INNER_PRODUCT)
    _, fgot = loaded.search(q, 10, flt)
    assert mask[fgot[fgot >= 0]].all() and _recall(fgot, sel[ftruth]) >= 0.95
    assert loaded.remove(np.arange(100)) == 100 and not np.isin(loaded.search(q, 10)[1], np.arange(100)).any()
    loaded.close()


def test_ivfpq_collection_build_reopen_and_incremental_add(tmp_path):
    from geoseek.collection import Collection, Item

    x, ll = _clustered(3200, 16)
    items = [Item(id=f"i{i}", centroid=tuple(ll[i])) for i in range(3200)]
    with Collection.create(tmp_path / "c", modality="t", dim=16,
                           index_options={"memory_budget": "0.15M", "ivf_threshold": 1000}) as b:
        for s in range(0, 3000, 1000):
            b.add(items[s:s + 1000], x[s:s + 1000])
    assert not list(tmp_path.glob("**/.vectors.spill")) and not list(tmp_path.glob("**/.geoseek-vectors-*"))
    with Collection.open(tmp_path / "c") as col:
        assert col.index.index_type == "ivfpq" and (tmp_path / "c" / "index" / "vectors.npy").is_file()
        col.add(items[3000:], x[3000:])
        assert col.search(x[3100], 1)[0].ids == ["i3100"]
    with Collection.open(tmp_path / "c") as col:
        assert len(col) == 3200 and col.search(x[3150], 1)[0].ids == ["i3150"]
        np.testing.assert_array_equal(col.vectors(["i5", "i3199"]), x[[5, 3199]])
