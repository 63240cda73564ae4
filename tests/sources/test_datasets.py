"""Dataset readers and zero-shot folds."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.sources.datasets import (
    FOLD_SEED,
    RSKETCH_CLASSES,
    UCM_AID_CLASSES,
    load_folds,
    make_folds,
    query_gallery_split,
    read_class_folders,
    read_earth_on_canvas,
    read_rsketch,
    read_ucm_aid,
)


def _img(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), "gray").save(path)


def test_rsketch_layout(tmp_path):
    for split in ("train", "test"):
        for kind in ("sketch", "image"):
            for cls in ("airplane", "beach"):
                for i in range(2):
                    _img(tmp_path / split / kind / cls / f"{i}.png")
    (tmp_path / "train" / "sketch" / "airplane" / "notes.txt").write_text("x")
    d = read_rsketch(tmp_path)
    assert set(d) == {"train", "test"}
    assert len(d["train"]["sketch"]) == 4 and {s.label for s in d["test"]["image"]} == {"airplane", "beach"}
    with pytest.raises(InvalidInputError):
        read_rsketch(tmp_path / "train" / "sketch")
    with pytest.raises(NotFoundError):
        read_rsketch(tmp_path / "nope")


def test_mlagt_test_layout_aliases(tmp_path):
    _img(tmp_path / "test" / "query" / "pond" / "a.jpg")
    _img(tmp_path / "test" / "database" / "pond" / "b.jpg")
    d = read_rsketch(tmp_path)
    assert d["test"]["sketch"][0].label == "pond" and d["test"]["image"][0].path.name == "b.jpg"


def test_earth_on_canvas_layout(tmp_path):
    _img(tmp_path / "Sketches" / "river" / "1.png")
    _img(tmp_path / "Images" / "river" / "1.png")
    d = read_earth_on_canvas(tmp_path)
    assert d["sketch"][0].label == "river" and len(d["image"]) == 1
    with pytest.raises(InvalidInputError):
        read_earth_on_canvas(tmp_path / "Images")


def test_class_folders_real(shared_data):
    s = read_class_folders(shared_data / "imagery" / "ucmerced", classes=["airplane", "runway"])
    assert len(s) == 200 and {x.label for x in s} == {"airplane", "runway"}
    u = read_ucm_aid(shared_data / "imagery", ["harbor"])
    assert len(u) == 200  # UC Merced harbor + AID Port
    assert {x.path.parent.name for x in u} == {"harbor", "Port"}


def test_class_set_folders_exist(shared_data):
    assert len(UCM_AID_CLASSES) == 20
    for cls, sources in UCM_AID_CLASSES.items():
        for dataset, folder in sources:
            assert (shared_data / "imagery" / dataset / folder).is_dir(), (cls, folder)


def test_query_gallery_split_is_disjoint_and_seeded(shared_data):
    s = read_class_folders(shared_data / "imagery" / "ucmerced", classes=["beach", "forest"])
    q, g = query_gallery_split(s, 0.2, seed=3)
    assert len(q) == 40 and len(g) == 160
    assert not {x.path for x in q} & {x.path for x in g}
    assert q == query_gallery_split(s, 0.2, seed=3)[0]
    assert q != query_gallery_split(s, 0.2, seed=4)[0]


@pytest.mark.parametrize("name,classes", [("ucm-aid", sorted(UCM_AID_CLASSES)), ("rsketch", RSKETCH_CLASSES)])
def test_committed_folds(name, classes):
    folds = load_folds(name)
    assert [f.index for f in folds] == [1, 2, 3, 4]
    unseen_all = []
    for f in folds:
        assert len(f.seen) == 15 and len(f.unseen) == 5
        assert not set(f.seen) & set(f.unseen)
        assert set(f.seen) | set(f.unseen) == set(classes)
        unseen_all += f.unseen
    assert sorted(unseen_all) == sorted(classes)  # each class unseen exactly once
    # the files are exactly what the seeded recipe gives
    again = make_folds(list(classes), seed=FOLD_SEED)
    assert [(f.seen, f.unseen) for f in again] == [(f.seen, f.unseen) for f in folds]


def test_make_folds_validates_and_depends_on_seed(tmp_path):
    with pytest.raises(InvalidInputError):
        make_folds(["a", "b"], n_folds=4, n_unseen=5)
    a = make_folds(RSKETCH_CLASSES, seed=1)
    b = make_folds(RSKETCH_CLASSES, seed=2)
    assert [f.unseen for f in a] != [f.unseen for f in b]
    with pytest.raises(NotFoundError):
        load_folds("nope")
    p = tmp_path / "f.json"
    p.write_text(json.dumps({"folds": [{"fold": 1, "seen": ["a"], "unseen": ["b"]}]}))
    assert load_folds(str(p))[0].unseen == ["b"]
