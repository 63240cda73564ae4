"""The QueryMode framework and the vector / item modes."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from geoseek.collection import Collection, Item
from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.geo import BBox
from geoseek.search import QueryMode, filter_from_args, make_filter, query_modes, select_mode
from geoseek.search.vector import parse_vector, search_item, search_vector


@pytest.fixture
def col(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(40, 4)).astype(np.float32)
    items = [Item(id=f"p{i}", centroid=(10 + i * 0.01, 50.0), label="ab"[i % 2]) for i in range(40)]
    with Collection.create(tmp_path / "c", modality="points", dim=4) as b:
        b.add(items, vecs)
    c = Collection.open(tmp_path / "c")
    yield c, vecs
    c.close()


def test_discovery_finds_vector_and_item_modes():
    modes = query_modes()
    assert {"vector", "item"} <= set(modes)
    assert all(isinstance(m, QueryMode) for m in modes.values())


def test_select_mode_needs_exactly_one():
    modes = list(query_modes().values())
    parser = argparse.ArgumentParser()
    for m in modes:
        m.add_arguments(parser)
    with pytest.raises(InvalidInputError, match="exactly one"):
        select_mode(modes, parser.parse_args([]))
    with pytest.raises(InvalidInputError, match="exactly one"):
        select_mode(modes, parser.parse_args(["--vector", "1,2", "--item", "x"]))
    assert select_mode(modes, parser.parse_args(["--item", "x"])).name == "item"


def test_make_filter_forms():
    assert make_filter() is None
    f = make_filter("1,2,3,4", "10,50,1000", "a, b")
    assert f.bbox == BBox(1, 2, 3, 4) and f.radius.metres == 1000 and f.labels == {"a", "b"}
    assert make_filter([1, 2, 3, 4]).bbox == BBox(1, 2, 3, 4)
    for bad in ({"bbox": "1,2,3"}, {"bbox": "3,2,1,4"}, {"radius": "10,50,-1"}, {"radius": "x"},
                {"bbox": [1, 2]}, {"radius": "10,95,100"}):
        with pytest.raises(InvalidInputError):
            make_filter(**bad)
    with pytest.raises(InvalidInputError):
        filter_from_args(argparse.Namespace(k=0, bbox=None, radius=None, label=None))


def test_search_vector_and_item(col):
    c, vecs = col
    hits = search_vector(c, vecs[3], k=3)
    assert hits[0].item.id == "p3" and len(hits) == 3
    hits = search_item(c, "p3", k=3, filter=make_filter(labels="b"))
    assert len(hits) == 3 and all(h.item.label == "b" and h.item.id != "p3" for h in hits)
    assert search_item(c, "p3", k=1, include_self=True)[0].item.id == "p3"
    hits = search_vector(c, vecs[0], k=40, filter=make_filter(radius="10,50,3000"))
    assert {h.item.id for h in hits} == {f"p{i}" for i in range(40) if i * 0.01 * 71_500 <= 3000}
    with pytest.raises(NotFoundError):
        search_item(c, "nope")
    with pytest.raises(InvalidInputError):
        search_vector(c, np.zeros((2, 4)))


def test_parse_vector(tmp_path):
    np.save(tmp_path / "v.npy", np.arange(3, dtype=np.float32)[None])
    np.testing.assert_array_equal(parse_vector(str(tmp_path / "v.npy")), [0, 1, 2])
    np.testing.assert_array_equal(parse_vector("[1, 2.5]"), [1, 2.5])
    with pytest.raises(NotFoundError):
        parse_vector(str(tmp_path / "missing.npy"))
    with pytest.raises(InvalidInputError):
        parse_vector("a,b")
