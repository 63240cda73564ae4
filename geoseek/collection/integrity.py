"""Integrity of a collection's files: checksums in the manifest, cheap checks at open, full verify.

The manifest's ``checksums`` maps each index, array and stored file (paths relative to the
collection, e.g. ``index/faiss.index``) to ``{"size": bytes, "blake2b": hex}`` (BLAKE2b-256),
written at every commit. ``items.sqlite`` is not checksummed (it changes in place, in SQLite
transactions); SQLite's own ``PRAGMA quick_check`` / ``integrity_check`` covers it.

Cheap (every open, no file is read in full):
- manifest fields (format, dim, metric, backend, checksums) are valid;
- every checksummed file exists with its recorded size;
- ``.npy`` headers parse and their shape × itemsize matches the file size;
- the FAISS header's dimension and vector count match the manifest and ``keys.npy``, and a flat
  index file has exactly the size its header implies;
- the SQLite header is valid and the file a whole number of pages; ``PRAGMA quick_check`` when
  the file is at most :data:`QUICK_CHECK_MAX_BYTES`;
- after loading: the index keys increase strictly (keys are assigned in add order), every item
  in SQLite has a vector, and (flat indexes) every stored vector is finite.

Full (:func:`verify`, ``geoseek collection verify``, ``Collection.open(verify=True)``): all of the
above, every checksum, every stored vector finite, ``PRAGMA integrity_check``.

Every failure is one :class:`~geoseek.errors.DamagedDataError` naming the file relative to the
collection (never an absolute path: the message may reach HTTP clients).
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import struct
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.errors import DamagedDataError, GeoseekError

HASH_NAME = "blake2b"
QUICK_CHECK_MAX_BYTES = 64 * 1024 * 1024
"""Largest ``items.sqlite`` given ``PRAGMA quick_check`` at open (it reads the whole file)."""

_CHUNK = 1 << 20
_SQLITE_MAGIC = b"SQLite format 3\x00"
_FLAT_FOURCC = (b"IxFI", b"IxF2")
_FAISS_FILE = "index/faiss.index"


class CollectionError(GeoseekError):
    """A collection on disk cannot be used."""


class CorruptCollectionError(CollectionError, DamagedDataError):
    """A collection's files are missing, unreadable or inconsistent (HTTP 503: a server-side fault)."""


class DamagedFileError(CorruptCollectionError):
    """A collection file failed a check; ``file`` is its path relative to the collection."""

    def __init__(self, collection: str, file: str, problem: str) -> None:
        self.collection, self.file, self.problem = collection, file, problem
        super().__init__(
            f"collection {collection} is damaged: {file} {problem} "
            f"(`geoseek collection verify {collection}` checks every file; "
            f"`geoseek collection repair {collection}` rebuilds the index where the vectors are intact)"
        )


def digest(path: Path) -> str:
    """BLAKE2b-256 of a file's bytes, hex."""
    h = hashlib.blake2b(digest_size=32)
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def tracked_files(root: Path, backend: str = "faiss") -> list[str]:
    """Files the manifest checksums, relative to ``root``: the index (not for Qdrant, whose files
    change in place), arrays and stored files."""
    out: list[str] = []
    for sub in ("index", "arrays", "files") if backend != "qdrant" else ("arrays", "files"):
        base = root / sub
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = Path(dirpath).relative_to(root)
            if rel_dir == Path("index"):
                dirnames[:] = [d for d in dirnames if d != "storage"]
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            out += [(rel_dir / f).as_posix() for f in filenames if not f.startswith(".")]
    return sorted(out)


def record(root: Path, rels: list[str] | None = None, backend: str = "faiss") -> dict[str, dict[str, Any]]:
    """{relative path: {"size", "blake2b"}} of ``rels`` (default: :func:`tracked_files`)."""
    rels = tracked_files(root, backend) if rels is None else rels
    return {rel: {"size": (root / rel).stat().st_size, HASH_NAME: digest(root / rel)} for rel in rels}


def _entries(manifest: dict[str, Any], rel: str) -> list[dict[str, Any]]:
    """The acceptable states of ``rel``: the committed one and, mid-commit, the pending one."""
    out = []
    for source in (manifest.get("checksums") or {}, (manifest.get("pending") or {}).get("checksums") or {}):
        entry = source.get(rel)
        if isinstance(entry, dict):
            out.append(entry)
    return out


def check_sizes(root: Path, manifest: dict[str, Any], name: str) -> None:
    """Every checksummed file exists with a recorded size."""
    rels = set(manifest.get("checksums") or {}) | set(((manifest.get("pending") or {}).get("checksums") or {}))
    for rel in sorted(rels):
        entries = _entries(manifest, rel)
        try:
            size = (root / rel).stat().st_size
        except FileNotFoundError:
            raise DamagedFileError(name, rel, "is missing") from None
        sizes = [e.get("size") for e in entries]
        if size not in sizes:
            raise DamagedFileError(name, rel, f"has {size} bytes, the manifest records {sizes[0]}")


def npy_shape(root: Path, rel: str, name: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype from a ``.npy`` header, checked against the file size."""
    path = root / rel
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except FileNotFoundError:
        raise DamagedFileError(name, rel, "is missing") from None
    except (OSError, ValueError) as exc:
        raise DamagedFileError(name, rel, f"is not a valid .npy file ({str(exc)[:120]})") from None
    if dtype.hasobject:
        raise DamagedFileError(name, rel, "holds Python objects")
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if size != expected:
        raise DamagedFileError(name, rel, f"has {size} bytes, its header implies {expected}")
    return tuple(shape), dtype


def _read_head(root: Path, rel: str, name: str, n: int) -> tuple[int, bytes]:
    """(size in bytes, first ``n`` bytes) of ``root / rel``; DamagedFileError naming it when missing."""
    try:
        path = root / rel
        size = path.stat().st_size
        with open(path, "rb") as f:
            return size, f.read(n)
    except FileNotFoundError:
        raise DamagedFileError(name, rel, "is missing") from None


def check_faiss_header(root: Path, name: str, dim: int, n_keys: int | None) -> None:
    """The FAISS file's header: dimension, vector count (vs ``keys.npy``), exact size if flat."""
    size, head = _read_head(root, _FAISS_FILE, name, 45)
    if len(head) < 16:
        raise DamagedFileError(name, _FAISS_FILE, "is truncated (no FAISS header)")
    fourcc = head[:4]
    d, ntotal = struct.unpack("<iq", head[4:16])
    if not fourcc.isalnum() or d != dim or ntotal < 0:
        raise DamagedFileError(name, _FAISS_FILE, f"has a bad header (dimension {d}, expected {dim})")
    if fourcc in _FLAT_FOURCC and len(head) >= 45:
        metric = struct.unpack("<i", head[33:37])[0]
        if metric in (0, 1):
            expected = 45 + ntotal * d * 4
            if size != expected:
                raise DamagedFileError(name, _FAISS_FILE, f"has {size} bytes, its header implies {expected}")
            (n_floats,) = struct.unpack("<Q", head[37:45])
            if n_floats != ntotal * d:
                raise DamagedFileError(name, _FAISS_FILE, "has a bad header (vector count)")
        if n_keys is not None and ntotal != n_keys:
            raise DamagedFileError(name, _FAISS_FILE, f"holds {ntotal} vectors but index/keys.npy has {n_keys} keys")


def check_sqlite_file(root: Path, rel: str, name: str, *, quick: bool | None = None) -> None:
    """SQLite header and page-size arithmetic; ``quick_check`` if ``quick`` (None: when small)."""
    size, head = _read_head(root, rel, name, 100)
    if len(head) < 100 or head[:16] != _SQLITE_MAGIC:
        raise DamagedFileError(name, rel, "is not an SQLite database (bad header)")
    page = struct.unpack(">H", head[16:18])[0]
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1) or size % page:
        raise DamagedFileError(name, rel, f"has {size} bytes, not a whole number of {page}-byte pages")
    if quick is None:
        quick = size <= QUICK_CHECK_MAX_BYTES
    if quick:
        sqlite_check(root, rel, name, full=False)


def sqlite_check(root: Path, rel: str, name: str, *, full: bool) -> None:
    """``PRAGMA integrity_check`` (full) or ``quick_check`` on a read-only connection."""
    pragma = "integrity_check" if full else "quick_check"
    try:
        conn = sqlite3.connect(f"file:{root / rel}?mode=ro", uri=True)
        try:
            rows = conn.execute(f"PRAGMA {pragma}(5)").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise DamagedFileError(name, rel, f"fails SQLite's {pragma} ({exc})") from None
    problems = [r[0] for r in rows if r[0] != "ok"]
    if problems:
        raise DamagedFileError(name, rel, f"fails SQLite's {pragma}: {'; '.join(problems)[:200]}")


def cheap_check(root: Path, manifest: dict[str, Any], name: str, items_db: str) -> None:
    """The checks made at every open before anything is loaded (see the module docstring)."""
    check_sizes(root, manifest, name)
    n_keys = None
    for rel in tracked_files(root, str(manifest.get("backend"))):
        if rel.endswith(".npy"):
            shape, _ = npy_shape(root, rel, name)
            if rel == "index/keys.npy":
                n_keys = shape[0] if shape else 0
    if manifest.get("backend") == "faiss" and (root / "index" / "faiss.index").exists():
        alive_dead = None
        if (root / "index" / "alive.npy").is_file() and n_keys is not None:
            try:
                alive = np.load(root / "index" / "alive.npy")
                alive_dead = int((~alive.astype(bool)).sum())
            except (OSError, ValueError):
                raise DamagedFileError(name, "index/alive.npy", "is unreadable") from None
        # an IVF drops removed vectors from FAISS but keeps their keys until it is rebuilt
        check_faiss_header(root, name, int(manifest["dim"]), None)
        if n_keys is not None:
            _check_count(root, name, n_keys, alive_dead)
    check_sqlite_file(root, items_db, name)


def _check_count(root: Path, name: str, n_keys: int, n_dead: int | None) -> None:
    with open(root / _FAISS_FILE, "rb") as f:
        fourcc, (_, ntotal) = f.read(4), struct.unpack("<iq", f.read(12))
    ok = ntotal == n_keys if fourcc in _FLAT_FOURCC or not n_dead else ntotal in (n_keys, n_keys - n_dead)
    if not ok:
        raise DamagedFileError(name, _FAISS_FILE, f"holds {ntotal} vectors but index/keys.npy has {n_keys} keys")


def check_loaded(name: str, index: Any, item_keys: np.ndarray) -> np.ndarray:
    """Checks on the loaded index against the items; returns orphan keys (vectors without an item).

    Raises DamagedFileError when keys do not increase, when an item has no vector, or when a
    flat index holds a non-finite vector (stored vectors are always finite: ``add`` refuses others).
    """
    if getattr(index, "backend", "") != "faiss":
        return np.setdiff1d(index.keys(), item_keys)
    raw = index._keys  # every position, dead ones included: assigned in add order
    if len(raw) > 1 and not bool((np.diff(raw) > 0).all()):
        raise DamagedFileError(name, "index/keys.npy", "is out of order (keys must increase)")
    keys = index.keys()
    missing = np.setdiff1d(item_keys, keys, assume_unique=True)
    if len(missing):
        raise DamagedFileError(name, "index/keys.npy",
                               f"lacks {len(missing)} of the items in items.sqlite (e.g. key {int(missing[0])})")
    if index.index_type == "flat" and index._index.ntotal:
        xb = index._xb()
        step = max(1, (1 << 24) // max(index.dim, 1))
        for s in range(0, len(xb), step):
            if not np.isfinite(xb[s:s + step]).all():
                raise DamagedFileError(name, _FAISS_FILE, "holds non-finite vector values")
    return np.setdiff1d(keys, item_keys, assume_unique=True)


def check_all_vectors(name: str, index: Any) -> None:
    """Every stored vector is finite (reads them all, in chunks)."""
    if getattr(index, "backend", "") != "faiss":
        return
    keys = index.keys()
    for s in range(0, len(keys), 65536):
        if not np.isfinite(index.vectors(keys[s:s + 65536])).all():
            raise DamagedFileError(name, _FAISS_FILE, "holds non-finite vector values")


def check_checksums(root: Path, manifest: dict[str, Any], name: str) -> list[str]:
    """Hash every checksummed file; returns the relative paths checked."""
    checksums = manifest.get("checksums") or {}
    rels = sorted(set(checksums) | set(((manifest.get("pending") or {}).get("checksums") or {})))
    for rel in rels:
        if not (root / rel).is_file():
            raise DamagedFileError(name, rel, "is missing")
        got = digest(root / rel)
        if got not in [e.get(HASH_NAME) for e in _entries(manifest, rel)]:
            raise DamagedFileError(name, rel, "does not match its checksum (its bytes were altered)")
    untracked = [r for r in tracked_files(root, str(manifest.get("backend"))) if r not in rels]
    if checksums and untracked:
        raise DamagedFileError(name, untracked[0], "is not recorded in the manifest")
    return rels
