"""Collections: build, open, search with filters, incremental edits, atomicity and crash safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from geoseek.collection import (
    Collection,
    CorruptCollectionError,
    Filter,
    Hit,
    Item,
    NewerFormatError,
)
from geoseek.errors import GeoseekError, InvalidInputError, NotFoundError
from geoseek.geo import BBox

DIM = 8


def make_items(n: int, start: int = 0, seed: int = 0):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(start, start + n):
        lon, lat = 14.3 + 0.01 * (i % 50), 35.8 + 0.01 * (i // 50)
        if i % 3 == 0:  # a footprint
            items.append(Item(id=f"it{i}", name=f"item {i}", footprint=(lon, lat, lon + 0.005, lat + 0.005),
                              label=("park", "water")[i % 2], source="unit", metadata={"i": i}))
        else:  # a point only
            items.append(Item(id=f"it{i}", centroid=(lon, lat), label=("park", "water")[i % 2]))
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    return items, vecs


def _build(backend, tmp_path):
    items, vecs = make_items(120)
    path = tmp_path / "col"
    with Collection.create(path, modality="test", dim=DIM, model_id="m", model_checksum="sha256:0",
                           backend=backend, extra={"zoom": 16}) as b:
        b.add(items[:70], vecs[:70])
        b.add(items[70:], vecs[70:])
        b.put_array("tokens", vecs.astype(np.float16) * 2)
        src = tmp_path / "model.pt"
        src.write_bytes(b"weights")
        b.put_file("model.pt", src)
    return Collection.open(path), items, vecs


@pytest.fixture(params=["faiss", "qdrant"])
def built_any(request, tmp_path):
    """A built collection on each backend."""
    col, items, vecs = _build(request.param, tmp_path)
    yield col, items, vecs
    col.close()


@pytest.fixture
def built(tmp_path):
    """A built collection on the default backend (behaviour that does not depend on the backend)."""
    col, items, vecs = _build("faiss", tmp_path)
    yield col, items, vecs
    col.close()


def test_manifest_and_reads(built_any):
    col, items, vecs = built_any
    m = col.manifest
    assert m["format"] == 1 and m["modality"] == "test" and m["dim"] == DIM and m["metric"] == "ip"
    assert m["count"] == 120 and m["extra"] == {"zoom": 16} and m["model_checksum"] == "sha256:0"
    assert json.loads((col.path / "manifest.json").read_text())["count"] == 120
    assert len(col) == 120
    assert col.get("it3") == items[3]
    assert col.get("it3").footprint is not None and col.get("it4").footprint is None
    np.testing.assert_allclose(col.vector("it7"), vecs[7], atol=1e-6)
    np.testing.assert_array_equal(col.keys_of(["it5", "it0"]), [5, 0])  # keys follow add order
    np.testing.assert_allclose(col.array("tokens")[col.keys_of(["it9"])], vecs[[9]].astype(np.float16) * 2)
    assert col.file("model.pt").read_bytes() == b"weights"
    assert [it.id for it in col.items()] == [it.id for it in items]
    with pytest.raises(NotFoundError):
        col.get("nope")
    with pytest.raises(NotFoundError):
        col.array("nope")


def test_search_joins_items_and_filters(built_any):
    col, items, vecs = built_any
    hits = col.search(vecs[:3], k=5)
    assert len(hits) == 3 and all(len(h) == 5 for h in hits)
    assert isinstance(hits[0][0], Hit) and hits[0][0].item.id == "it0" and hits[0][0].rank == 1
    j = hits[0][0].to_json()
    assert j["item"]["footprint"]["type"] == "Polygon" and j["rank"] == 1
    json.dumps(j)
    flt = Filter(bbox=BBox(14.295, 35.795, 14.445, 35.815), labels={"water"})
    lonlat = np.array([it.centroid for it in items])
    mask = flt.mask(lonlat, np.array([it.label for it in items], dtype=object))
    got = col.search(vecs[10], k=200, filter=flt)[0]
    assert {h.item.id for h in got} == {items[i].id for i in np.flatnonzero(mask)}
    assert all(h.item.label == "water" for h in got)
    scores = [h.score for h in got]
    assert scores == sorted(scores, reverse=True)
    # by item, itself excluded
    hits = col.search_item("it4", k=3)
    assert len(hits) == 3 and "it4" not in [h.item.id for h in hits]
    # R*Tree window query
    inside = col.items_in(BBox(14.3, 35.8, 14.305, 35.805))
    assert [it.id for it in inside] == ["it0"]


def test_bad_queries(built):
    col, _, _ = built
    with pytest.raises(InvalidInputError):
        col.search(np.zeros(DIM + 1, np.float32))
    with pytest.raises(InvalidInputError):
        col.search(np.zeros(DIM, np.float32), k=0)


def test_incremental_add_remove_durable(built_any):
    col, items, vecs = built_any
    before = col.array("tokens")
    assert col.array("tokens") is before  # the memory map is reused while the file is unchanged
    new_items, new_vecs = make_items(5, start=500, seed=3)
    keys = col.add(new_items, new_vecs, arrays={"tokens": new_vecs.astype(np.float16)})
    assert keys.tolist() == list(range(120, 125)) and len(col) == 125
    assert len(before) == 120 and col.array("tokens").shape[0] == 125  # a rewritten array is reopened
    with pytest.raises(InvalidInputError):  # duplicate id: nothing is added
        col.add(make_items(2, start=500)[0], new_vecs[:2])
    assert len(col) == 125 and len(col.index) == 125
    assert col.remove(["it0", "it501"]) == 2
    with pytest.raises(NotFoundError):
        col.remove(["it0"])
    path = col.path
    col.close()
    col2 = Collection.open(path)
    assert len(col2) == 123 and "it0" not in col2 and "it502" in col2
    assert col2.search(new_vecs[3], k=1)[0][0].item.id == "it503"
    assert col2.array("tokens").shape[0] == 125
    np.testing.assert_allclose(col2.array("tokens")[col2.key_of("it502")], new_vecs[2].astype(np.float16))
    more, more_vecs = make_items(1, start=900)
    assert col2.add(more, more_vecs).tolist() == [125]  # keys are never reused
    col2.close()
    # the test fixture closes ``col`` again: harmless


def test_create_refuses_to_clobber(tmp_path, built):
    col, _, _ = built
    with pytest.raises(InvalidInputError):
        Collection.create(col.path, modality="x", dim=DIM)
    other = tmp_path / "notacollection"
    other.mkdir()
    (other / "precious.txt").write_text("x")
    with pytest.raises(InvalidInputError):
        Collection.create(other, modality="x", dim=DIM, overwrite=True)


def test_failed_build_keeps_previous(built):
    col, items, vecs = built
    with pytest.raises(InvalidInputError):
        with Collection.create(col.path, modality="test", dim=DIM, overwrite=True,
                               backend=col.manifest["backend"]) as b:
            b.add(items[:10], vecs[:10])
            b.add(items[:1], vecs[:1])  # duplicate id → the build fails
    assert not list(col.path.parent.glob(".col.build-*"))
    col.close()
    again = Collection.open(col.path)
    assert len(again) == 120 and again.search(vecs[5], k=1)[0][0].item.id == "it5"
    again.close()


def test_overwrite_replaces(built):
    col, items, vecs = built
    col.close()
    with Collection.create(col.path, modality="test2", dim=DIM, overwrite=True) as b:
        b.add(items[:10], vecs[:10])
    new = Collection.open(col.path)
    assert len(new) == 10 and new.manifest["modality"] == "test2"
    assert not list(col.path.parent.glob(".col.*"))
    new.close()


def _small(tmp_path: Path, n: int = 30) -> Path:
    items, vecs = make_items(n)
    with Collection.create(tmp_path / "c", modality="test", dim=DIM) as b:
        b.add(items, vecs)
    return tmp_path / "c"


def test_open_errors(tmp_path):
    with pytest.raises(NotFoundError):
        Collection.open(tmp_path / "missing")
    path = _small(tmp_path)
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(NewerFormatError, match="upgrade"):
        Collection.open(path)
    (path / "manifest.json").write_text("{not json")
    with pytest.raises(CorruptCollectionError):
        Collection.open(path)
    (path / "manifest.json").write_text(json.dumps(manifest))
    Collection.open(path).close()
    (path / "items.sqlite").write_bytes(b"garbage" * 1000)
    with pytest.raises(CorruptCollectionError):
        Collection.open(path)
    path2 = _small(tmp_path / "b")
    (path2 / "index" / "faiss.index").write_bytes(b"garbage")
    with pytest.raises(CorruptCollectionError) as err:
        Collection.open(path2)
    assert isinstance(err.value, GeoseekError)


_KILLED_BUILD = textwrap.dedent(
    """
    import sys, time, numpy as np
    from geoseek.collection import Collection, Item
    path = sys.argv[1]
    rng = np.random.default_rng(1)
    with Collection.create(path, modality="test", dim=8, overwrite=True) as b:
        for batch in range(1000):
            items = [Item(id=f"new{batch}-{i}", centroid=(1.0, 2.0)) for i in range(50)]
            b.add(items, rng.normal(size=(50, 8)).astype(np.float32))
            if batch == 2:
                print("building", flush=True)
            time.sleep(0.05)
    """
)


def test_killed_build_leaves_previous_collection_intact(tmp_path):
    path = _small(tmp_path)
    items, vecs = make_items(30)
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_BUILD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "building"
        assert list(tmp_path.glob(".c.build-*")), "the build writes aside"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    col = Collection.open(path)
    assert len(col) == 30 and col.manifest["modality"] == "test"
    assert col.search(vecs[4], k=1)[0][0].item.id == "it4"
    col.close()
    # the next build removes the dead build's temp dir
    with Collection.create(path, modality="test", dim=DIM, overwrite=True) as b:
        b.add(items[:5], vecs[:5])
    assert not list(tmp_path.glob(".c.*"))
    assert len(Collection.open(path)) == 5


_CRASH_ADD = textwrap.dedent(
    """
    import os, signal, sys, numpy as np
    from geoseek.collection import Collection, Item
    from geoseek.collection.items import ItemStore
    col = Collection.open(sys.argv[1])
    ItemStore.commit = lambda self: os.kill(os.getpid(), signal.SIGKILL)  # die after the index save
    col.add([Item(id="ghost", centroid=(0, 0))], np.ones((1, 8), np.float32))
    """
)


def test_crash_during_add_is_recovered(tmp_path):
    path = _small(tmp_path)
    proc = subprocess.run([sys.executable, "-c", _CRASH_ADD, str(path)], timeout=60)
    assert proc.returncode == -signal.SIGKILL
    col = Collection.open(path)  # the orphan vector is dropped
    assert len(col) == 30 and len(col.index) == 30 and "ghost" not in col
    assert col.add([Item(id="ok", centroid=(0, 0))], np.ones((1, DIM), np.float32)).tolist() == [30]
    assert col.search(np.ones(DIM, np.float32), k=1)[0][0].item.id == "ok"
    col.close()


def test_item_validation():
    with pytest.raises(InvalidInputError):
        Item(id="")
    with pytest.raises(InvalidInputError):
        Item(id="a", footprint=(10, 10, 5, 5))
    with pytest.raises(InvalidInputError):
        Item(id="a", centroid=(200, 0))
    it = Item(id="a", footprint=(0, 0, 2, 4))
    assert it.centroid == (1.0, 2.0)
    assert Item.from_json(it.to_json()) == it


def test_hits_follow_incremental_edits(tmp_path):
    """The in-memory item columns that hits are joined from stay in step with add/remove."""
    path = _small(tmp_path)
    col = Collection.open(path)
    q = np.ones(DIM, np.float32)
    col.search(q, k=3)  # loads the columns
    col.add([Item(id="top", name="T", footprint=(1, 2, 3, 4), label="x", metadata={"a": 1})], q[None] * 10)
    hit = col.search(q, k=1)[0][0]
    assert hit.id == "top" and hit.item == Item(id="top", name="T", footprint=(1, 2, 3, 4), label="x",
                                                   metadata={"a": 1})
    assert hit.to_json()["item"]["bbox"] == [1, 2, 3, 4]
    col.remove(["top"])
    assert col.search(q, k=1)[0][0].id != "top"
    col.close()


def test_hit_is_a_dataclass_with_lazy_item(tmp_path):
    import dataclasses

    col = Collection.open(_small(tmp_path))
    _, vecs = make_items(30)
    hit = col.search(vecs[2], k=1)[0][0]
    assert hit.id == "it2" and "item" not in vars(hit)  # not built yet
    moved = dataclasses.replace(hit, rank=7)
    assert moved.rank == 7 and moved.item == col.get("it2") and hit.item.id == "it2"
    assert Hit(1, 0.5, Item(id="x")).id == "x"
    col.close()


def test_concurrent_searches_and_adds(tmp_path):
    import threading

    col = Collection.open(_small(tmp_path))
    errors: list[BaseException] = []

    def searcher():
        try:
            for _ in range(30):
                hits = col.search(np.ones((2, DIM), np.float32), k=5)
                assert all(len(h) == 5 for h in hits) and all(h.item.id for h in hits[0])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(5):
        col.add([Item(id=f"c{i}", centroid=(0, 0))], np.full((1, DIM), 0.1 * i, np.float32))
    for t in threads:
        t.join()
    assert not errors and len(col) == 35
    col.close()
