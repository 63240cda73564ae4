"""Fault injection on the collection store: concurrent writers, kill -9 mid-write, file damage.

Writers run as real subprocesses (``python -m geoseek ...``); ``$GEOSEEK_FAULT`` (see
:func:`geoseek.collection._fs.fault`) kills or pauses them at named points of a commit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from geoseek.collection import Collection, Item
from geoseek.collection.repair import repair, verify
from geoseek.errors import ConflictError, DamagedDataError

DIM = 8
REPO = Path(__file__).resolve().parents[2]


def _items(prefix: str, n: int, seed: int) -> tuple[list[Item], np.ndarray]:
    rng = np.random.default_rng(seed)
    items = [Item(id=f"{prefix}{i}", centroid=(float(rng.uniform(-10, 10)), float(rng.uniform(-10, 10))),
                  label=f"l{i % 3}", metadata={"n": i}) for i in range(n)]
    vecs = rng.normal(size=(n, DIM)).astype(np.float32)
    return items, vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def _build(path: Path, n: int = 200, arrays: bool = False) -> tuple[list[Item], np.ndarray]:
    items, vecs = _items("it", n, 0)
    with Collection.create(path, modality="test", dim=DIM) as b:
        b.add(items, vecs)
        if arrays:
            b.put_array("extra", np.arange(n * 4, dtype=np.float32).reshape(n, 4))
    return items, vecs


def _write_inputs(d: Path, prefix: str, n: int, seed: int) -> tuple[Path, Path]:
    items, vecs = _items(prefix, n, seed)
    d.mkdir(parents=True, exist_ok=True)
    np.save(d / f"{prefix}.npy", vecs)
    (d / f"{prefix}.jsonl").write_text("\n".join(json.dumps(it.to_json()) for it in items))
    return d / f"{prefix}.npy", d / f"{prefix}.jsonl"


# ``geoseek collection ...`` as a real process, with the CLI's error handling, but registering only
# the collection commands (the full CLI imports every capability: seconds per start on a busy machine)
_CLI = textwrap.dedent(
    """
    import argparse, sys
    from geoseek.cli import _user_errors, collection
    parser = argparse.ArgumentParser(prog="geoseek")
    collection.register({"collection": parser.add_subparsers(dest="verb").add_parser("collection")})
    args = parser.parse_args(sys.argv[1:])
    try:
        sys.exit(args.func(args) or 0)
    except _user_errors() as exc:
        print(f"geoseek: error: {exc}", file=sys.stderr)
        sys.exit(2)
    """
)


def _geoseek(*args: str, fault: str | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("GEOSEEK_FAULT", None)
    if fault:
        env["GEOSEEK_FAULT"] = fault
    return subprocess.Popen([sys.executable, "-c", _CLI, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def _wait_holder(path: Path, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Return once ``proc`` holds the writer lock of ``path`` (its pid is in the lock file)."""
    import time

    from geoseek.collection.locking import holder

    deadline = time.monotonic() + timeout
    while (holder(path) or {}).get("pid") != proc.pid:
        assert proc.poll() is None and time.monotonic() < deadline, "the first writer never took the lock"
        time.sleep(0.05)


def _ids(path: Path) -> set[str]:
    with Collection.open(path) as col:
        assert len(col.index) == len(col), "items and vectors disagree"
        return {it.id for it in col.items()}


def _consistent(path: Path) -> Collection:
    col = Collection.open(path)
    assert len(col.index) == len(col)
    return col


# --- concurrent writers ---------------------------------------------------------------------------


@pytest.mark.parametrize("wait", [False, True])
def test_concurrent_cli_adds_never_lose_or_mix(tmp_path, wait):
    path = tmp_path / "col"
    _build(path, 50)
    a = _write_inputs(tmp_path / "in", "a", 40, 1)
    b = _write_inputs(tmp_path / "in", "b", 40, 2)
    extra = ["--wait"] if wait else []
    # the first writer pauses while holding the lock, so the two always overlap
    pa = _geoseek("collection", "add", str(path), "--vectors", str(a[0]), "--items", str(a[1]), "--batch", "15",
                  *extra, fault="lock:acquired:sleep:1.5")
    _wait_holder(path, pa)
    pb = _geoseek("collection", "add", str(path), "--vectors", str(b[0]), "--items", str(b[1]), "--batch", "15", *extra)
    (_, ea), (_, eb) = pa.communicate(timeout=120), pb.communicate(timeout=120)
    ids = _ids(path)
    base = {f"it{i}" for i in range(50)}
    a_ids, b_ids = {f"a{i}" for i in range(40)}, {f"b{i}" for i in range(40)}
    if wait:
        assert pa.returncode == pb.returncode == 0, (ea, eb)
        assert "waiting for collection col" in eb
        assert ids == base | a_ids | b_ids
    else:
        assert pa.returncode == 0, ea
        assert pb.returncode == 2 and "being written by pid" in eb and "--wait" in eb and "Traceback" not in eb
        assert ids == base | a_ids


def test_concurrent_builds_to_same_out_one_refused(tmp_path):
    out = tmp_path / "out"
    a = _write_inputs(tmp_path / "in", "a", 30, 1)
    b = _write_inputs(tmp_path / "in", "b", 30, 2)
    pa = _geoseek("collection", "add", str(out), "--create", "--vectors", str(a[0]), "--items", str(a[1]),
                  fault="build:before-swap:sleep:1.5")
    _wait_holder(out, pa)
    pb = _geoseek("collection", "add", str(out), "--create", "--vectors", str(b[0]), "--items", str(b[1]))
    (_, ea), (_, eb) = pa.communicate(timeout=120), pb.communicate(timeout=120)
    assert pa.returncode == 0, ea
    assert pb.returncode == 2 and "being written by" in eb, eb
    assert _ids(out) == {f"a{i}" for i in range(30)}


_BUILD = textwrap.dedent(
    """
    import sys, numpy as np
    from geoseek.collection import Collection, Item
    from geoseek.errors import ConflictError
    try:
        with Collection.create(sys.argv[1], modality="test", dim=8) as b:
            b.add([Item(id=f"x{i}", centroid=(1.0, 2.0)) for i in range(5)], np.ones((5, 8), np.float32))
    except ConflictError as exc:
        print("refused:", exc)
        sys.exit(3)
    """
)


def test_build_refuses_at_commit_an_output_created_meanwhile(tmp_path):
    """A writer that ignores the lock (an older geoseek) creates the output while we build."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GEOSEEK_FAULT": "build:before-swap:sleep:2"}
    proc = subprocess.Popen([sys.executable, "-c", _BUILD, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    _wait_holder(out, proc)
    other = tmp_path / "elsewhere" / "out"
    _build(other, 20)
    os.rename(other, out)
    stdout, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3 and "refused" in stdout and "created by another writer" in stdout
    assert _ids(out) == {f"it{i}" for i in range(20)}


def test_stale_writer_in_process_is_refused(tmp_path):
    path = tmp_path / "col"
    _build(path, 30)
    stale = Collection.open(path)
    fresh = Collection.open(path)
    items, vecs = _items("n", 5, 3)
    fresh.add(items, vecs)
    with pytest.raises(ConflictError, match="changed by another writer"):
        stale.add(*_items("m", 5, 4))
    stale.close()
    fresh.close()
    assert len(_ids(path)) == 35


# --- kill -9 mid-write ----------------------------------------------------------------------------


@pytest.mark.parametrize("point", ["lock:acquired", "add:before-commit", "commit:after-pending",
                                   "commit:after-swap", "add:before-sqlite-commit"])
def test_killed_add_leaves_old_contents(tmp_path, point):
    path = tmp_path / "col"
    items, vecs = _build(path, 60, arrays=True)
    before = Collection.open(path).search(vecs[:3], k=5)
    a = _write_inputs(tmp_path / "in", "a", 20, 1)
    proc = _geoseek("collection", "add", str(path), "--vectors", str(a[0]), "--items", str(a[1]), fault=point)
    proc.communicate(timeout=120)
    assert proc.returncode == -9
    with _consistent(path) as col:
        assert {it.id for it in col.items()} == {it.id for it in items}
        assert [h.ids for h in col.search(vecs[:3], k=5)] == [h.ids for h in before]
        assert col.verify()["ok"]
    # the lock died with the process: the next writer goes ahead
    with Collection.open(path) as col:
        col.add(*_items("z", 3, 9))
    assert len(_ids(path)) == 63


@pytest.mark.parametrize("point", ["commit:after-pending", "remove:after-sqlite-commit"])
def test_killed_remove_is_all_or_nothing(tmp_path, point):
    path = tmp_path / "col"
    items, _ = _build(path, 60)
    proc = _geoseek("collection", "remove", str(path), "it1", "it2", fault=point)
    proc.communicate(timeout=120)
    assert proc.returncode == -9
    ids = _ids(path)
    assert ids in ({it.id for it in items}, {it.id for it in items} - {"it1", "it2"})
    assert verify(path)["ok"]


def test_killed_build_leaves_old_collection(tmp_path):
    path = tmp_path / "col"
    items, _ = _build(path, 40)
    a = _write_inputs(tmp_path / "in", "a", 20, 1)
    env_fault = "build:before-swap"
    # a rebuild with --overwrite is a build over an existing output
    proc = _geoseek("collection", "add", str(tmp_path / "new"), "--create", "--vectors", str(a[0]),
                    "--items", str(a[1]), fault=env_fault)
    proc.communicate(timeout=120)
    assert proc.returncode == -9 and not (tmp_path / "new").exists()
    env = {**os.environ, "PYTHONPATH": str(REPO), "GEOSEEK_FAULT": env_fault}
    script = ("import sys, numpy as np\nfrom geoseek.collection import Collection, Item\n"
              "with Collection.create(sys.argv[1], modality='t', dim=8, overwrite=True) as b:\n"
              "    b.add([Item(id='q', centroid=(1.0, 2.0))], np.ones((1, 8), np.float32))\n")
    p = subprocess.run([sys.executable, "-c", script, str(path)], env=env, timeout=60)
    assert p.returncode == -9
    assert _ids(path) == {it.id for it in items}


# --- damaged files ----------------------------------------------------------------------------------


def _damage_message(path: Path, tmp_path: Path) -> str:
    """The DamagedDataError of opening with every check (``verify=True``)."""
    with pytest.raises(DamagedDataError) as err:
        Collection.open(path, verify=True)
    msg = str(err.value)
    assert str(tmp_path) not in msg, "no absolute path in a damage message"
    report = verify(path)
    assert not report["ok"]
    return msg


def test_scrambled_vector_bytes_detected(tmp_path):
    path = tmp_path / "col"
    _build(path)
    f = path / "index" / "faiss.index"
    data = bytearray(f.read_bytes())
    rng = np.random.default_rng(5)
    start = 45 + 40 * DIM * 4  # inside the stored vectors, after the header
    data[start:start + 1024] = rng.integers(0, 256, 1024, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))
    msg = _damage_message(path, tmp_path)
    assert "index/faiss.index" in msg
    assert verify(path)["file"] == "index/faiss.index"
    with pytest.raises(DamagedDataError, match="index/faiss.index"):  # the vectors are lost: no repair
        repair(path)


def test_shifted_keys_detected_at_open_and_repaired(tmp_path):
    path = tmp_path / "col"
    _, vecs = _build(path)
    with Collection.open(path) as col:
        want = [h.ids for h in col.search(vecs[:5], k=5)]
    keys = np.load(path / "index" / "keys.npy")
    np.save(path / "index" / "keys.npy", np.roll(keys, 1))
    with pytest.raises(DamagedDataError, match="index/keys.npy"):
        Collection.open(path)  # the cheap check at open catches it
    assert "index/keys.npy" in _damage_message(path, tmp_path)
    report = repair(path)
    assert report["repaired"] and report["count"] == 200
    with Collection.open(path, verify=True) as col:
        assert [h.ids for h in col.search(vecs[:5], k=5)] == want
    assert verify(path)["ok"]


def test_keys_file_bytes_shifted_by_one(tmp_path):
    path = tmp_path / "col"
    _build(path)
    f = path / "index" / "keys.npy"
    f.write_bytes(b"\x00" + f.read_bytes()[:-1])
    with pytest.raises(DamagedDataError, match="index/keys.npy"):
        Collection.open(path)


def test_garbage_inside_sqlite_detected(tmp_path):
    path = tmp_path / "col"
    _build(path, 2000)
    f = path / "items.sqlite"
    data = bytearray(f.read_bytes())
    assert len(data) > 64 * 1024
    off = (len(data) // 2) // 4096 * 4096
    data[off:off + 4096] = np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    f.write_bytes(bytes(data))
    with pytest.raises(DamagedDataError, match="items.sqlite"):
        Collection.open(path)
    assert "items.sqlite" in _damage_message(path, tmp_path)


def test_truncated_vector_and_array_files_detected(tmp_path):
    path = tmp_path / "col"
    _build(path, arrays=True)
    f = path / "index" / "faiss.index"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DamagedDataError, match="index/faiss.index"):
        Collection.open(path)
    path2 = tmp_path / "col2"
    _build(path2, arrays=True)
    a = path2 / "arrays" / "extra.npy"
    a.write_bytes(a.read_bytes()[:-16])
    with pytest.raises(DamagedDataError, match="arrays/extra.npy"):
        Collection.open(path2)


def test_bad_metric_in_manifest(tmp_path):
    path = tmp_path / "col"
    _build(path)
    m = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**m, "metric": "cosine"}))
    with pytest.raises(DamagedDataError, match="manifest.json.*metric"):
        Collection.open(path)
    (path / "manifest.json").write_text(json.dumps({**m, "metric": "l2"}))  # valid, but not the index's
    with pytest.raises(DamagedDataError, match="metric"):
        Collection.open(path)


def test_cli_verify_and_repair(tmp_path, capsys):
    from geoseek.cli import main

    path = tmp_path / "col"
    _build(path)
    assert main(["collection", "verify", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["ok"] is True
    keys = np.load(path / "index" / "keys.npy")
    np.save(path / "index" / "keys.npy", keys + 1)
    assert main(["collection", "verify", str(path)]) == 1
    assert "DAMAGED: index/keys.npy" in capsys.readouterr().out
    assert main(["collection", "info", str(path)]) == 2
    err = capsys.readouterr().err
    assert "index/keys.npy" in err and "Traceback" not in err
    assert main(["collection", "repair", str(path)]) == 0
    assert main(["collection", "verify", str(path)]) == 0
