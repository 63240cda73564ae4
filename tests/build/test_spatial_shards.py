"""Spatial shards: a sharded collection returns the unsharded collection's hits, opening only overlapping shards."""

from __future__ import annotations

import numpy as np
import pytest

from geoseek.collection import Collection, Item
from geoseek.collection.sharded import ShardedCollection, open_collection, quadkey, shard_collection
from geoseek.errors import InvalidInputError
from geoseek.geo import BBox
from geoseek.index.base import Filter, Radius

N, D = 600, 16


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("shards")
    # four clusters of very different sizes (one of 5 items: k=20 is larger than that shard)
    centres = [(24.94, 60.17, 400), (24.70, 60.30, 150), (25.30, 60.05, 45), (26.50, 61.00, 5)]
    items, n = [], 0
    for lon, lat, m in centres:
        for _ in range(m):
            p = (lon + rng.normal(0, 0.02), lat + rng.normal(0, 0.01))
            items.append(Item(id=f"i{n}", centroid=p, label=["park", "water", "road"][n % 3],
                              metadata={"n": n}))
            n += 1
    vecs = rng.normal(size=(N, D)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with Collection.create(root / "flat", modality="test", dim=D) as b:
        b.add(items, vecs)
        b.put_array("rows", np.arange(N))
    report = shard_collection(root / "flat", root / "sharded", level=8)
    flat, sharded = Collection.open(root / "flat"), open_collection(root / "sharded")
    yield flat, sharded, report, vecs
    flat.close()
    sharded.close()


def _check(flat, sharded, q, k, f):
    a = flat.search(q, k, f)
    b = sharded.search(q, k, f)
    for ha, hb in zip(a, b):
        assert ha.ids == hb.ids
        np.testing.assert_allclose(ha.scores, hb.scores, rtol=0, atol=1e-6)
    return a


@pytest.mark.parametrize("k", [3, 20, 700])
@pytest.mark.parametrize("f", [
    None,
    Filter(bbox=BBox(24.6, 60.2, 24.8, 60.4)),
    Filter(radius=Radius(24.94, 60.17, 3000.0)),
    Filter(labels=frozenset({"water"})),
    Filter(bbox=BBox(24.0, 59.0, 27.0, 62.0), labels=frozenset({"park", "road"})),
])
def test_sharded_equals_unsharded(pair, k, f):
    flat, sharded, report, vecs = pair
    assert isinstance(sharded, ShardedCollection) and report["shards"] >= 3
    q = np.random.default_rng(k).normal(size=(4, D)).astype(np.float32)
    hits = _check(flat, sharded, q, k, f)
    assert len(hits[0]) > 0


def test_bbox_opens_only_overlapping_shards(tmp_path, pair):
    flat, _s, _r, vecs = pair
    fresh = ShardedCollection(_s.path)
    f = Filter(bbox=BBox(24.6, 60.2, 24.8, 60.4))
    hits = fresh.search(vecs[:2], 5, f)
    assert fresh.opened == [quadkey(24.70, 60.30, 8)]
    assert all(f.bbox.contains([h.item.lonlat])[0] for h in hits[0])
    assert len(fresh.shards_for(None)) == _r["shards"] and fresh.shards_for(Filter(labels=frozenset({"none"}))) == []
    fresh.close()


def test_search_item_and_arrays_split(pair):
    flat, sharded, _r, _v = pair
    assert sharded.search_item("i7", 10).ids == flat.search_item("i7", 10).ids
    shard = sharded.shard(quadkey(*flat.get("i599").lonlat, 8))
    rows = shard.array("rows")
    assert [int(r) for r in rows] == [it.metadata["n"] for it in shard.items()]


def test_bad_level_and_existing_output(pair, tmp_path):
    flat = pair[0]
    with pytest.raises(InvalidInputError):
        shard_collection(flat.path, tmp_path / "s", level=0)
    with pytest.raises(InvalidInputError):
        shard_collection(flat.path, pair[1].path, level=8)
