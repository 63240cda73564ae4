"""A searchable collection on disk, built atomically and edited incrementally.

Directory layout::

    <path>/manifest.json     format, modality, model_id, model_checksum, dim, metric, backend,
                             created, count, extra
    <path>/items.sqlite      items + R*Tree over footprints (see :mod:`geoseek.collection.items`)
    <path>/index/            the vector index (``config.json`` names its backend)
    <path>/arrays/<name>.npy optional named arrays, row i <-> internal key i
    <path>/files/<name>      optional files (e.g. the model that made the vectors)

Builds write everything into a sibling ``.<name>.build-<pid>-*`` directory, fsync it, and swap
it in with one rename: until then the previous collection stays intact and searchable, and a
killed build leaves only a stale temp directory (removed by the next build).

Incremental edits are ordered so a crash can only leave *orphan* vectors (keys in the index
with no item in SQLite): additions save the index (atomically) before committing the SQLite
transaction; removals commit SQLite first. Orphans are never returned (hits are joined from
SQLite) and :meth:`Collection.open` removes them.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.collection import _fs
from geoseek.collection.items import Hits, Item, ItemCache, ItemStore
from geoseek.errors import GeoseekError, InvalidInputError, NotFoundError
from geoseek.index.base import BACKENDS, METRICS, Filter, VectorIndex, check_vectors, load_index

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ITEMS_DB = "items.sqlite"
INDEX_DIR = "index"
ARRAYS_DIR = "arrays"
FILES_DIR = "files"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class CollectionError(GeoseekError):
    """A collection on disk cannot be used."""


class CorruptCollectionError(CollectionError):
    """A collection's files are missing, unreadable or inconsistent."""


class NewerFormatError(CollectionError):
    """The collection was written by a newer geoseek (format version above ours)."""


def _check_name(name: str, what: str) -> str:
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise InvalidInputError(f"{what} name {name!r} must be letters, digits, '_', '-', '.'")
    return name


def _lonlat_labels(items: Sequence[Item]) -> tuple[np.ndarray, list[str | None]]:
    lonlat = np.array([it.lonlat for it in items], dtype=np.float64).reshape(-1, 2)
    return lonlat, [it.label for it in items]


def _check_items(items: Sequence[Item], vectors: np.ndarray, dim: int) -> tuple[list[Item], np.ndarray]:
    items = list(items)
    for it in items:
        if not isinstance(it, Item):
            raise InvalidInputError(f"expected Item objects, got {type(it).__name__}")
    vectors = check_vectors(vectors, dim)
    if len(vectors) != len(items):
        raise InvalidInputError(f"{len(items)} items but {len(vectors)} vectors")
    return items, vectors


class _RWLock:
    """Many readers or one writer (writers are not re-entrant)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._readers:
                self._cond.wait()
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


class CollectionBuilder:
    """Writes a new collection aside and swaps it in on :meth:`commit` (or a clean ``with`` exit)."""

    def __init__(self, path: Path, manifest: dict[str, Any], index_options: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self.tmp = path.with_name(f".{path.name}.build-{os.getpid()}-{secrets.token_hex(4)}")
        self.tmp.mkdir(parents=True)
        self._store = ItemStore(self.tmp / ITEMS_DB, create=True, fast=True)
        self.index: VectorIndex = BACKENDS.create(
            manifest["backend"], dim=manifest["dim"], metric=manifest["metric"], **index_options
        )
        self._next_key = 0
        self._done = False
        # FAISS chooses and trains its index by size: give it everything at once
        self._buffer: list | None = [] if manifest["backend"] == "faiss" else None

    def __enter__(self) -> CollectionBuilder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def add(self, items: Sequence[Item], vectors: np.ndarray) -> np.ndarray:
        """Add items with their vectors (N, D); returns their keys (consecutive, in add order)."""
        items, vectors = _check_items(items, vectors, self.manifest["dim"])
        keys = np.arange(self._next_key, self._next_key + len(items), dtype=np.int64)
        self._store.begin()
        try:
            self._store.insert(keys, items)
            self._store.commit()
        except BaseException:
            self._store.rollback()
            raise
        lonlat, labels = _lonlat_labels(items)
        if self._buffer is not None:  # the index is built once at commit, knowing the final size
            self._buffer.append((keys, vectors.copy(), lonlat, labels))
        else:
            self.index.add(keys, vectors, lonlat, labels)
        self._next_key += len(items)
        return keys

    def _flush(self) -> None:
        if self._buffer:
            keys = np.concatenate([b[0] for b in self._buffer])
            vectors = np.concatenate([b[1] for b in self._buffer])
            lonlat = np.concatenate([b[2] for b in self._buffer])
            labels = [lab for b in self._buffer for lab in b[3]]
            self._buffer = []
            self.index.add(keys, vectors, lonlat, labels)

    def put_array(self, name: str, array: np.ndarray) -> None:
        """Store a named numpy array beside the items (row i <-> key i, i.e. add order)."""
        _check_name(name, "array")
        (self.tmp / ARRAYS_DIR).mkdir(exist_ok=True)
        np.save(self.tmp / ARRAYS_DIR / f"{name}.npy", np.asarray(array))

    def put_file(self, name: str, src: str | os.PathLike) -> None:
        """Copy file ``src`` into the collection as ``files/<name>``."""
        _check_name(name, "file")
        src = Path(src)
        if not src.is_file():
            raise NotFoundError(f"file {src} does not exist")
        (self.tmp / FILES_DIR).mkdir(exist_ok=True)
        shutil.copyfile(src, self.tmp / FILES_DIR / name)

    def commit(self) -> Collection:
        """Finish the build: save, fsync, swap into place; returns the opened collection."""
        if self._done:
            raise InvalidInputError("this build is already finished")
        try:
            self._flush()
            self.manifest["count"] = self._store.count()
            self._store.conn.execute("PRAGMA journal_mode=DELETE")
            self._store.close()
            self.index.save(self.tmp / INDEX_DIR)
            self.index.close()
            _fs.write_json_atomic(self.tmp / MANIFEST, self.manifest)
            _fs.fsync_tree(self.tmp)
            _fs.swap_dir(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        return Collection.open(self.path)

    def abort(self) -> None:
        """Drop the build; the previous collection (if any) is untouched."""
        if self._done:
            return
        self._done = True
        for close in (self._store.close, getattr(self.index, "destroy", self.index.close)):
            try:
                close()
            except Exception:  # noqa: BLE001 - best effort while failing
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)


class Collection:
    """A searchable collection on disk: items in SQLite, vectors in an index backend.

    Open with :meth:`open`; build with :meth:`create`. Internal keys are int64, assigned in add
    order from 0 and never reused; named arrays are row-aligned with them (``array(name)[key]``).
    """

    def __init__(self, path: Path, manifest: dict[str, Any], store: ItemStore, index: VectorIndex) -> None:
        self.path = path
        self.manifest = manifest
        self.store = store
        self.index = index
        self._rw = _RWLock()  # searches share it; add/remove take it alone
        self._cache_lock = threading.Lock()
        self._cache: ItemCache | None = None
        self._arrays: dict[str, tuple[tuple[int, int, int], np.ndarray]] = {}

    # --- construction ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike,
        *,
        modality: str,
        dim: int,
        model_id: str = "",
        model_checksum: str = "",
        metric: str = "ip",
        backend: str = "faiss",
        overwrite: bool = False,
        extra: dict[str, Any] | None = None,
        index_options: dict[str, Any] | None = None,
    ) -> CollectionBuilder:
        """Start an atomic build of a collection at ``path`` (use as a context manager).

        Args:
            modality: what the vectors describe ("osm-tiles", "aerial-images", ...).
            dim: vector dimension D. metric: "ip" or "l2". backend: an index backend name.
            overwrite: replace an existing collection (only once the new one is complete).
            extra: JSON-serializable extras stored in the manifest.
            index_options: backend keyword arguments (e.g. ``{"url": ...}`` for Qdrant).
        """
        path = Path(path).absolute()
        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}")
        if int(dim) <= 0:
            raise InvalidInputError(f"dim must be > 0, got {dim}")
        BACKENDS.get(backend)
        _fs.recover_dir(path)
        if path.exists():
            if not overwrite:
                raise InvalidInputError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
            if not path.is_dir() or (any(path.iterdir()) and not (path / MANIFEST).is_file()):
                raise InvalidInputError(f"{path} exists and is not a collection; refusing to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        _fs.clean_stale(path.parent, f".{path.name}.build-")
        try:
            json.dumps(extra or {})
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"extra must be JSON-serializable: {exc}") from None
        manifest = {
            "format": FORMAT_VERSION,
            "modality": modality,
            "model_id": model_id,
            "model_checksum": model_checksum,
            "dim": int(dim),
            "metric": metric,
            "backend": backend,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "count": 0,
            "extra": dict(extra or {}),
        }
        return CollectionBuilder(path, manifest, dict(index_options or {}))

    @classmethod
    def open(cls, path: str | os.PathLike) -> Collection:
        """Open the collection at ``path``.

        Raises:
            NotFoundError: nothing there. NewerFormatError: written by a newer geoseek.
            CorruptCollectionError: files missing, unreadable or inconsistent.
        """
        path = Path(path).absolute()
        _fs.recover_dir(path)
        if not path.exists():
            raise NotFoundError(f"no collection at {path}")
        if not path.is_dir():
            raise CorruptCollectionError(f"{path} is not a collection directory")
        try:
            manifest = json.loads((path / MANIFEST).read_text())
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except FileNotFoundError:
            raise CorruptCollectionError(f"{path} is not a collection: {MANIFEST} is missing") from None
        except (OSError, ValueError) as exc:
            raise CorruptCollectionError(f"{path / MANIFEST} is unreadable: {exc}") from None
        fmt = manifest.get("format")
        if not isinstance(fmt, int):
            raise CorruptCollectionError(f"{path / MANIFEST} has no integer 'format' version")
        if fmt > FORMAT_VERSION:
            raise NewerFormatError(
                f"{path} has collection format {fmt}, this geoseek reads up to {FORMAT_VERSION}: upgrade geoseek"
            )
        for key in ("dim", "metric", "backend"):
            if key not in manifest:
                raise CorruptCollectionError(f"{path / MANIFEST} lacks {key!r}")
        _fs.clean_stale(path, f".{INDEX_DIR}.new-")
        _fs.recover_dir(path / INDEX_DIR)
        try:
            store = ItemStore(path / ITEMS_DB)
            count = store.count()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise CorruptCollectionError(f"{path / ITEMS_DB} is unreadable: {exc}") from None
        try:
            index = load_index(path / INDEX_DIR)
        except GeoseekError as exc:
            store.close()
            raise CorruptCollectionError(f"the vector index of {path} is unreadable: {exc}") from None
        if index.dim != manifest["dim"]:
            store.close()
            raise CorruptCollectionError(f"{path}: index dim {index.dim} != manifest dim {manifest['dim']}")
        manifest["count"] = count
        col = cls(path, manifest, store, index)
        if len(index) != count:
            col._reconcile()
        return col

    def close(self) -> None:
        self.store.close()
        self.index.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.manifest
        return f"Collection({str(self.path)!r}, modality={m.get('modality')!r}, count={len(self)}, dim={m['dim']})"

    # --- reading --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def dim(self) -> int:
        return int(self.manifest["dim"])

    @property
    def metric(self) -> str:
        return str(self.manifest["metric"])

    def __len__(self) -> int:
        return int(self.manifest["count"])

    def get(self, item_id: str) -> Item:
        """The item ``item_id`` with its thumbnail (NotFoundError if absent)."""
        return self.store.get(str(item_id))[1]

    def __contains__(self, item_id: object) -> bool:
        try:
            self.store.get(str(item_id))
        except NotFoundError:
            return False
        return True

    def key_of(self, item_id: str) -> int:
        return int(self.store.keys_of([item_id])[0])

    def keys_of(self, ids: Sequence[str]) -> np.ndarray:
        """Internal keys (int64) of item ids, in order (NotFoundError naming a missing id)."""
        return self.store.keys_of(list(ids))

    def vector(self, item_id: str) -> np.ndarray:
        """The stored vector (D,) float32 of ``item_id``."""
        return self.index.vectors(np.array([self.key_of(item_id)]))[0]

    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors (N, D) float32 of ``ids``."""
        return self.index.vectors(self.keys_of(ids))

    def items(self) -> Iterator[Item]:
        """Every item, in key (add) order, thumbnails included."""
        for _key, item in self.store.iter_items():
            yield item

    def items_in(self, bbox, limit: int = 1000) -> list[Item]:
        """Items whose footprint intersects ``bbox`` (R*Tree), at most ``limit``, in key order."""
        keys = np.sort(self.store.keys_in(bbox, limit=limit))
        found = self.store.items_by_keys(keys)
        return [found[k] for k in keys.tolist() if k in found]

    def thumbnail(self, item_id: str) -> bytes | None:
        return self.get(item_id).thumbnail

    def array(self, name: str, mmap: bool = True) -> np.ndarray:
        """Named array (row i <-> key i), memory-mapped read-only by default.

        The memory map is reused while the file is unchanged (same inode, size and mtime), so a
        search that reads rows per query does not reopen it each time."""
        p = self.path / ARRAYS_DIR / f"{_check_name(name, 'array')}.npy"
        try:
            st = p.stat()
        except FileNotFoundError:
            raise NotFoundError(f"collection {self.name} has no array {name!r}") from None
        if not mmap:
            return np.load(p)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._arrays.get(name)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        arr = np.load(p, mmap_mode="r")
        self._arrays[name] = (stamp, arr)
        return arr

    def file(self, name: str) -> Path:
        """Path of the stored file ``name`` (NotFoundError if absent)."""
        p = self.path / FILES_DIR / _check_name(name, "file")
        if not p.is_file():
            raise NotFoundError(f"collection {self.name} has no file {name!r}")
        return p

    # --- search ---------------------------------------------------------------------------------

    def search(self, vectors: np.ndarray, k: int = 10, filter: Filter | None = None,
               exclude: Sequence[Sequence[str]] | None = None) -> list[Hits]:
        """Top-k items per query vector (Q, D) or (D,): one :class:`Hits` sequence per query.

        ``exclude`` (optional, one list of item ids per query) drops those items from the
        results (e.g. the query item itself); k results are still returned when possible.
        """
        queries = check_vectors(vectors, self.dim, name="query vectors")
        k = int(k)
        if k <= 0:
            raise InvalidInputError(f"k must be > 0, got {k}")
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        with self._rw.read():  # an index is not safe to search while it is being changed
            scores, keys = self.index.search(queries, k + extra, filter)
        return self._join(scores, keys, k, exclude)

    def _join(self, scores: np.ndarray, keys: np.ndarray, k: int,
              exclude: Sequence[Sequence[str]] | None) -> list[Hits]:
        cache = self.item_cache()
        ids = cache.ids
        n = len(ids)
        if not exclude and keys.shape[1] == k and n and 0 <= keys.min() and keys.max() < n:
            id_rows = cache.ids_array()[keys]  # one batch lookup of every hit's id
            if None not in id_rows:  # every key has its item: the common case, kept lean
                return [Hits(srow, krow, cache, irow) for srow, krow, irow in zip(scores.tolist(), keys.tolist(), id_rows)]
        out: list[Hits] = []
        for qi, (srow, krow) in enumerate(zip(scores.tolist(), keys.tolist())):
            skip = set(exclude[qi]) if exclude else ()
            kept_s: list[float] = []
            kept_k: list[int] = []
            for s, key in zip(srow, krow):
                if key < 0 or key >= n:
                    continue
                item_id = ids[key]
                if item_id is None or item_id in skip:  # an orphan vector, or excluded
                    continue
                kept_s.append(s)
                kept_k.append(key)
                if len(kept_k) == k:
                    break
            out.append(Hits(kept_s, kept_k, cache))
        return out

    def item_cache(self) -> ItemCache:
        """The in-memory item columns search hits are joined from (loaded on first use)."""
        cache = self._cache
        if cache is not None:
            return cache
        with self._cache_lock:
            if self._cache is None:
                self._cache = ItemCache(self.store)
            return self._cache

    def search_item(self, item_id: str, k: int = 10, filter: Filter | None = None,
                    include_self: bool = False) -> Hits:
        """Items most similar to the stored item ``item_id``."""
        vec = self.vector(item_id)
        return self.search(vec, k, filter, exclude=None if include_self else [[item_id]])[0]

    # --- incremental edits ----------------------------------------------------------------------

    def add(self, items: Sequence[Item], vectors: np.ndarray,
            arrays: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Add items with vectors (N, D) durably; returns their new keys.

        ``arrays`` appends rows to named arrays (rows of keys added without them are zeros).
        """
        items, vectors = _check_items(items, vectors, self.dim)
        if not items:
            return np.zeros(0, dtype=np.int64)
        with self._rw.write():
            self.store.begin()
            added_to_index = False
            try:
                first = self.store.next_key_in_txn()
                keys = np.arange(first, first + len(items), dtype=np.int64)
                self.store.insert(keys, items)
                for name, arr in (arrays or {}).items():
                    self._append_array(name, first, np.asarray(arr), len(items))
                lonlat, labels = _lonlat_labels(items)
                self.index.add(keys, vectors, lonlat, labels)
                added_to_index = True
                self._save_index()
                self.store.commit()
            except BaseException:
                if added_to_index:
                    self.index.remove(keys)
                self.store.rollback()
                raise
            if self._cache is not None:
                self._cache.added(keys, items)
            self._set_count(self.manifest["count"] + len(items))
        return keys

    def remove(self, ids: Sequence[str]) -> int:
        """Remove items by id durably (NotFoundError if one is absent); returns how many."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        if not ids:
            return 0
        with self._rw.write():
            keys = self.store.keys_of(ids)
            self.store.begin()
            try:
                self.store.delete(keys)
                self.store.commit()
            except BaseException:
                self.store.rollback()
                raise
            self._set_count(self.manifest["count"] - len(keys))
            if self._cache is not None:
                self._cache.removed(keys)
            self.index.remove(keys)
            self._save_index()
        return len(keys)

    def _append_array(self, name: str, first_key: int, arr: np.ndarray, n: int) -> None:
        _check_name(name, "array")
        if len(arr) != n:
            raise InvalidInputError(f"array {name!r} has {len(arr)} rows for {n} items")
        p = self.path / ARRAYS_DIR / f"{name}.npy"
        if p.is_file():
            old = np.load(p)
            if old.shape[1:] != arr.shape[1:]:
                raise InvalidInputError(f"array {name!r} rows have shape {arr.shape[1:]}, stored {old.shape[1:]}")
            old = old[:first_key]
            if len(old) < first_key:
                pad = np.zeros((first_key - len(old), *old.shape[1:]), dtype=old.dtype)
                old = np.concatenate([old, pad])
            arr = np.concatenate([old, arr.astype(old.dtype)])
        else:
            p.parent.mkdir(exist_ok=True)
            pad = np.zeros((first_key, *arr.shape[1:]), dtype=arr.dtype)
            arr = np.concatenate([pad, arr])
        tmp = p.with_name(f".{p.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, arr)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
        _fs.fsync_path(p.parent)

    def _save_index(self) -> None:
        """Persist the index: in place for backends that write through, else aside + swap."""
        dst = self.path / INDEX_DIR
        if getattr(self.index, "backend", "") == "qdrant":
            self.index.save(dst)  # points are already persisted by Qdrant; refresh config.json
            return
        new = self.path / f".{INDEX_DIR}.new-{os.getpid()}-{secrets.token_hex(4)}"
        try:
            self.index.save(new)
            _fs.fsync_tree(new)
            _fs.swap_dir(new, dst)
        finally:
            shutil.rmtree(new, ignore_errors=True)

    def _set_count(self, count: int) -> None:
        self.manifest["count"] = int(count)
        _fs.write_json_atomic(self.path / MANIFEST, self.manifest)

    def _reconcile(self) -> None:
        """Drop orphan vectors (left by a crash between the index save and the SQLite commit)."""
        with self._rw.write():
            orphans = np.setdiff1d(self.index.keys(), self.store.all_keys())
            if len(orphans):
                self.index.remove(orphans)
                self._save_index()
            count = self.store.count()
            if len(self.index) != count:
                raise CorruptCollectionError(
                    f"{self.path}: {count} items but {len(self.index)} vectors; rebuild the collection"
                )
            if self.manifest.get("count") != count:
                self._set_count(count)

    def info(self) -> dict[str, Any]:
        """Manifest plus live figures, JSON-ready."""
        out = dict(self.manifest)
        out.update(path=str(self.path), name=self.name, count=len(self), index_count=len(self.index),
                   labels=self.store.labels())
        if hasattr(self.index, "index_type"):
            out["index_type"] = self.index.index_type
        arrays = self.path / ARRAYS_DIR
        out["arrays"] = sorted(p.stem for p in arrays.glob("*.npy")) if arrays.is_dir() else []
        files = self.path / FILES_DIR
        out["files"] = sorted(p.name for p in files.iterdir()) if files.is_dir() else []
        return out


def collection_path(name_or_path: str | os.PathLike) -> Path:
    """Resolve a collection given as a path, or as a name under ``$GEOSEEK_COLLECTIONS``."""
    p = Path(name_or_path)
    if p.exists() or os.sep in str(name_or_path):
        return p
    root = os.environ.get("GEOSEEK_COLLECTIONS")
    if root and (Path(root) / p).exists():
        return Path(root) / p
    return p
