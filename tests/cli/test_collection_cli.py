"""``geoseek collection ...`` and ``geoseek search ...`` end to end (in-process)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from geoseek.cli import main


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(30, 6)).astype(np.float32)
    np.save(tmp_path / "v.npy", vecs)
    lines = [json.dumps({"id": f"x{i}", "name": f"n{i}", "bbox": [i, 0, i + 0.5, 0.5], "label": "ab"[i % 2]})
             for i in range(30)]
    (tmp_path / "items.jsonl").write_text("\n".join(lines))
    return tmp_path, vecs


def _json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_add_info_search_remove(files, capsys):
    d, vecs = files
    col = str(d / "col")
    assert main(["collection", "add", col, "--vectors", str(d / "v.npy"), "--items", str(d / "items.jsonl")]) == 2
    assert "--create" in capsys.readouterr().err
    assert main(["collection", "add", col, "--create", "--vectors", str(d / "v.npy"),
                 "--items", str(d / "items.jsonl"), "--json"]) == 0
    assert _json(capsys) == {"collection": col, "added": 30, "count": 30}
    assert main(["collection", "info", col, "--json"]) == 0
    info = _json(capsys)
    assert info["count"] == 30 and info["dim"] == 6 and info["labels"] == {"a": 15, "b": 15}
    np.save(d / "q.npy", vecs[7])
    assert main(["search", col, "--vector", str(d / "q.npy"), "-k", "3", "--json"]) == 0
    out = _json(capsys)
    assert out["mode"] == "vector" and out["hits"][0]["item"]["id"] == "x7" and len(out["hits"]) == 3
    assert main(["search", col, "--item", "x7", "-k", "4", "--bbox", "0,0,10,1", "--label", "a", "--json"]) == 0
    ids = [h["item"]["id"] for h in _json(capsys)["hits"]]
    assert len(ids) == 4 and "x7" not in ids and all(int(i[1:]) % 2 == 0 and int(i[1:]) < 10 for i in ids)
    assert main(["collection", "search", col, "--item", "x1", "-k", "2"]) == 0
    assert "rank" in capsys.readouterr().out
    assert main(["collection", "remove", col, "x1", "x2", "--json"]) == 0
    assert _json(capsys)["count"] == 28


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "{d}/nope", "--item", "x"], "no collection"),
        (["search", "{d}/col", "-k", "3"], "exactly one"),
        (["search", "{d}/col", "--item", "x1", "--vector", "1,2"], "exactly one"),
        (["search", "{d}/col", "--vector", "1,2,3"], "dimensions"),
        (["search", "{d}/col", "--item", "x1", "--bbox", "1,2,3"], "W,S,E,N"),
        (["search", "{d}/col", "--item", "x1", "--radius", "1,2"], "LON,LAT,METRES"),
        (["search", "{d}/col", "--item", "zzz"], "no item"),
        (["collection", "remove", "{d}/col", "zzz"], "no item"),
        (["collection", "add", "{d}/col", "--vectors", "{d}/v.npy", "--items", "{d}/bad.jsonl"], "bad.jsonl:2"),
        (["collection", "add", "{d}/col", "--vectors", "{d}/w.npy", "--items", "{d}/items.jsonl"], "dimensions"),
    ],
)
def test_errors_exit_2_with_message(files, capsys, argv, message):
    d, vecs = files
    assert main(["collection", "add", str(d / "col"), "--create", "--vectors", str(d / "v.npy"),
                 "--items", str(d / "items.jsonl")]) == 0
    (d / "bad.jsonl").write_text('{"id": "a"}\n{oops\n')
    np.save(d / "w.npy", np.zeros((30, 3), np.float32))
    capsys.readouterr()
    assert main([a.format(d=d) for a in argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_help_everywhere(capsys):
    for argv in (["search", "--help"], ["collection", "add", "--help"], ["collection", "info", "--help"],
                 ["collection", "remove", "--help"], ["collection", "search", "--help"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0
    assert "--vector" in capsys.readouterr().out
