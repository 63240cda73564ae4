"""``verify`` and ``repair`` of a collection on disk (``geoseek collection verify|repair NAME``).

Repair rebuilds the vector index from the vectors already stored in it, keyed from
``items.sqlite``, and commits it atomically (new index dir swapped in, new manifest generation).
It needs: a readable manifest, an intact ``items.sqlite`` (``PRAGMA integrity_check``), and
intact stored vectors (``index/faiss.index``, or ``index/vectors.npy`` for IVF-PQ: checksum
matching the manifest, or readable when no checksum was recorded). ``keys.npy``, ``lonlat.npy``,
``label_codes.npy``, ``alive.npy`` and ``config.json`` are re-derived when damaged: positions
hold keys in increasing order, so when the index holds exactly one vector per item the keys are
the items' keys, sorted. Anything else (vectors damaged, SQLite damaged) cannot be repaired
here: rebuild the collection from its source.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.collection import core, integrity, locking
from geoseek.collection import manifest as manifest_file
from geoseek.collection.integrity import DamagedFileError
from geoseek.collection.items import ItemStore
from geoseek.errors import DamagedDataError, NotFoundError


def verify(path: str | os.PathLike) -> dict[str, Any]:
    """Open ``path`` with every check (see :mod:`geoseek.collection.integrity`); a report dict
    ``{"collection", "ok", "file"?, "problem"?, ...}`` (never raises for damage)."""
    path = Path(path).absolute()
    try:
        col = core.Collection.open(path, verify=True)
    except DamagedFileError as exc:
        return {"collection": path.name, "ok": False, "file": exc.file, "problem": exc.problem, "error": str(exc)}
    except DamagedDataError as exc:
        return {"collection": path.name, "ok": False, "file": core.MANIFEST, "problem": str(exc), "error": str(exc)}
    with col:
        return col.verify()


def _intact(path: Path, manifest: dict[str, Any], rel: str) -> bool:
    """The file matches its recorded checksum (True when none was recorded but it exists)."""
    f = path / rel
    if not f.is_file():
        return False
    entry = (manifest.get("checksums") or {}).get(rel)
    if entry is None:
        return "checksums" not in manifest
    return integrity.digest(f) == entry.get(integrity.HASH_NAME)


def _stored_vectors(path: Path, manifest: dict[str, Any]) -> np.ndarray:
    """Vectors (n_positions, D) by index position, from the intact vector file."""
    from geoseek.index._faiss import faiss

    name, dim = path.name, int(manifest["dim"])
    vec_file = "index/vectors.npy"
    if (path / vec_file).is_file():
        if not _intact(path, manifest, vec_file):
            raise DamagedFileError(name, vec_file, "does not match its checksum: the stored vectors are lost; "
                                                  "rebuild the collection from its source")
        return np.load(path / vec_file, mmap_mode="r")
    rel = "index/faiss.index"
    if not _intact(path, manifest, rel):
        raise DamagedFileError(name, rel, "does not match its checksum: the stored vectors are lost; "
                                          "rebuild the collection from its source")
    try:
        index = faiss.read_index(str(path / rel))
    except RuntimeError:
        raise DamagedFileError(name, rel, "is unreadable: the stored vectors are lost") from None
    if index.d != dim:
        raise DamagedFileError(name, rel, f"has dimension {index.d}, the manifest {dim}")
    if isinstance(index, faiss.IndexIVF):
        index.make_direct_map()
    if index.ntotal == 0:
        return np.zeros((0, dim), dtype=np.float32)
    if isinstance(index, faiss.IndexIVF):  # ids are positions; removed ones are absent
        raise DamagedFileError(name, "index/keys.npy", "cannot be re-derived for an IVF index: rebuild the collection")
    return index.reconstruct_n(0, index.ntotal)


def repair(path: str | os.PathLike, *, wait: bool | None = None) -> dict[str, Any]:
    """Rebuild the index of the collection at ``path`` from its stored vectors (see module doc).

    Returns ``{"collection", "repaired": True, "count", "generation"}``; raises DamagedFileError
    naming what cannot be repaired, ConflictError when another writer holds the collection."""
    from geoseek.index.base import BACKENDS

    path = Path(path).absolute()
    if not (path / core.MANIFEST).is_file():
        raise NotFoundError(f"no collection at {path}")
    name = path.name
    with locking.writer_lock(path, wait=wait):
        manifest = manifest_file.parse_manifest(path, manifest_file.read_manifest_bytes(path))
        if manifest["backend"] != "faiss":
            raise DamagedDataError(f"collection {name}: repair supports the faiss backend only")
        integrity.check_sqlite_file(path, core.ITEMS_DB, name, quick=False)
        integrity.sqlite_check(path, core.ITEMS_DB, name, full=True)
        store = ItemStore(path / core.ITEMS_DB)
        try:
            item_keys = store.all_keys()
            vectors = _stored_vectors(path, manifest)
            keys = None
            if all(_intact(path, manifest, f"index/{f}") for f in ("keys.npy", "alive.npy")):
                try:
                    keys = np.load(path / "index" / "keys.npy")
                    alive = np.load(path / "index" / "alive.npy")
                    if len(keys) != len(vectors) or len(alive) != len(keys):
                        keys = None
                except (OSError, ValueError):
                    keys = None
            if keys is None:
                if len(vectors) != len(item_keys):
                    raise DamagedFileError(name, "index/keys.npy", f"is damaged and the index holds {len(vectors)} "
                                           f"vectors for {len(item_keys)} items: rebuild the collection")
                keys = np.sort(item_keys)
            pos_of = {int(k): i for i, k in enumerate(keys.tolist())}
            missing = [int(k) for k in item_keys.tolist() if int(k) not in pos_of]
            if missing:
                raise DamagedFileError(name, "index/keys.npy", f"lacks {len(missing)} items' vectors: rebuild the collection")
            pos = np.array([pos_of[int(k)] for k in item_keys.tolist()], dtype=np.int64)
            vecs = np.ascontiguousarray(np.asarray(vectors)[pos], dtype=np.float32)
            if not np.isfinite(vecs).all():
                raise DamagedFileError(name, "index/faiss.index", "holds non-finite vectors: rebuild the collection")
            items = store.items_by_keys(item_keys)
            lonlat = np.array([items[k].lonlat for k in item_keys.tolist()], dtype=np.float64).reshape(-1, 2)
            labels = [items[k].label for k in item_keys.tolist()]
            options: dict[str, Any] = {}
            try:
                cfg = json.loads((path / "index" / "config.json").read_text())
                if cfg.get("kind") in ("auto", "flat", "ivf", "ivfpq", "hnsw"):
                    options["kind"] = cfg["kind"]
            except (OSError, ValueError, AttributeError):
                pass
            index = BACKENDS.create("faiss", dim=int(manifest["dim"]), metric=manifest["metric"], **options)
            index.add(item_keys, vecs, lonlat, labels)
            manifest["count"] = len(item_keys)
            col = core.Collection(path, manifest, store, index)
            col._commit_files({}, len(item_keys))
            return {"collection": name, "repaired": True, "count": int(len(item_keys)),
                    "generation": col.manifest.get("generation")}
        finally:
            store.close()
