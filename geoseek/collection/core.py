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

Writers (builds, adds, removes, repairs) hold the collection's writer lock
(:mod:`geoseek.collection.locking`, ``<path>.lock``) and re-check, right before they replace
anything, that the manifest's ``build_id`` and ``generation`` are still the ones they started
from (else ConflictError, nothing written). A build without ``overwrite`` refuses at commit an
output that appeared meanwhile.

Incremental edits write the new index into ``.index.new-*``, record its checksums in the
manifest as ``pending``, swap it in (one atomic rename), then write the manifest with the new
``generation`` and checksums (see :mod:`geoseek.collection.integrity`). They are ordered so a
crash can only leave *orphan* vectors (keys in the index with no item in SQLite): additions save
the index before committing the SQLite transaction; removals commit SQLite first. Orphans are
never returned (hits are joined from SQLite) and :meth:`Collection.open` removes them. Readers
load manifest, index and SQLite, then re-read the manifest and start again if it changed, so
they never mix two generations.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import secrets
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.collection import _fs, integrity, locking
from geoseek.collection._rwlock import RWLock
from geoseek.collection.builder import CollectionBuilder, OutputExistsError, check_items, lonlat_labels
from geoseek.collection.manifest import (
    ARRAYS_DIR,
    FILES_DIR,
    FORMAT_VERSION,
    INDEX_DIR,
    ITEMS_DB,
    MANIFEST,
    NewerFormatError,  # noqa: F401  (re-exported by geoseek.collection)
    check_name,
    parse_manifest,
    read_manifest_bytes,
    state,
    writer_active,
)
from geoseek.collection.integrity import CollectionError, CorruptCollectionError, DamagedFileError  # noqa: F401  (re-exported)
from geoseek.collection.items import Hits, Item, ItemCache, ItemStore
from geoseek.errors import ConflictError, DamagedDataError, GeoseekError, InvalidInputError, NotFoundError
from geoseek.index.base import BACKENDS, METRICS, Filter, VectorIndex, check_vectors, clamp_k, load_index

_OPEN_ATTEMPTS = 100
_OPEN_RETRY_S = 0.05


def _sqlite_guard(fn):
    """Turn SQLite errors of a collection read into DamagedDataError naming items.sqlite."""

    @functools.wraps(fn)
    def wrapper(self: Collection, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            raise _sqlite_damage(self.name, exc) from None

    return wrapper


def _sqlite_damage(name: str, exc: sqlite3.DatabaseError) -> GeoseekError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
        return ConflictError(f"collection {name} is busy (its items database is locked); try again")
    return DamagedFileError(name, ITEMS_DB, f"is unreadable ({text[:120]})")


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
        self._rw = RWLock()  # searches share it; add/remove take it alone
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
        wait: bool | None = None,
    ) -> CollectionBuilder:
        """Start an atomic build of a collection at ``path`` (use as a context manager).

        Args:
            modality: what the vectors describe ("osm-tiles", "aerial-images", ...).
            dim: vector dimension D. metric: "ip" or "l2". backend: an index backend name.
            overwrite: replace an existing collection (only once the new one is complete).
            extra: JSON-serializable extras stored in the manifest.
            index_options: backend keyword arguments (e.g. ``{"url": ...}`` for Qdrant).
            wait: when another process is writing ``path``, wait for it (True) or raise
                ConflictError (False); None: :func:`geoseek.collection.locking.default_wait`.

        The builder holds ``path``'s writer lock until it commits or aborts. Without
        ``overwrite``, an output that exists at the start or appears before the commit is
        refused (:class:`OutputExistsError`, a ConflictError).
        """
        path = Path(path).absolute()
        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}")
        if int(dim) <= 0:
            raise InvalidInputError(f"dim must be > 0, got {dim}")
        BACKENDS.get(backend)
        if path.exists() and not overwrite:  # early, friendly refusal; re-checked under the lock
            raise OutputExistsError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
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
        return CollectionBuilder(path, manifest, dict(index_options or {}), overwrite=overwrite, wait=wait)

    @classmethod
    def open(cls, path: str | os.PathLike, *, verify: bool = False) -> Collection:
        """Open the collection at ``path``, checking its files cheaply (``verify``: fully).

        What is checked: :mod:`geoseek.collection.integrity`. A reader never mixes two
        generations of a collection that is being written: it re-reads the manifest after
        loading and starts again when it changed.

        Raises:
            NotFoundError: nothing there. NewerFormatError: written by a newer geoseek.
            DamagedDataError (CorruptCollectionError, DamagedFileError): a file is missing,
            damaged or inconsistent; the message names it relative to the collection.
            ConflictError: the collection kept changing while being opened.
        """
        path = Path(path).absolute()
        _fs.recover_dir(path)
        if not path.exists():
            raise NotFoundError(f"no collection at {path}")
        if not path.is_dir():
            raise CorruptCollectionError(f"{path.name} is not a collection directory")
        for _attempt in range(_OPEN_ATTEMPTS):
            raw = read_manifest_bytes(path)
            manifest = parse_manifest(path, raw)
            if writer_active(manifest):  # a commit is swapping files right now
                time.sleep(_OPEN_RETRY_S)
                continue
            try:
                col = cls._load(path, manifest, verify)
            except DamagedDataError:
                if read_manifest_bytes(path) != raw:
                    continue  # a writer replaced files while we read them: read the new state
                raise
            if read_manifest_bytes(path) == raw:
                return col
            col.close()
        raise ConflictError(f"collection {path.name} kept changing while being opened; try again")

    @classmethod
    def _load(cls, path: Path, manifest: dict[str, Any], verify: bool) -> Collection:
        name = path.name
        _fs.clean_stale(path, f".{INDEX_DIR}.new-")
        _fs.recover_dir(path / INDEX_DIR)
        integrity.cheap_check(path, manifest, name, ITEMS_DB)
        if verify:
            integrity.check_checksums(path, manifest, name)
            integrity.sqlite_check(path, ITEMS_DB, name, full=True)
        try:
            store = ItemStore(path / ITEMS_DB)
            count = store.count()
            item_keys = store.all_keys()
        except (OSError, sqlite3.DatabaseError) as exc:
            raise DamagedFileError(name, ITEMS_DB, f"is unreadable ({str(exc)[:120]})") from None
        try:
            try:
                index = load_index(path / INDEX_DIR)
            except GeoseekError as exc:
                text = str(exc).replace(str(path / INDEX_DIR), INDEX_DIR).replace(str(path), name)
                raise DamagedFileError(name, f"{INDEX_DIR}/", f"is unreadable ({text[:160]})") from None
            except (OSError, ValueError, RuntimeError, KeyError, TypeError) as exc:
                raise DamagedFileError(name, f"{INDEX_DIR}/", f"is unreadable ({type(exc).__name__})") from None
            if index.dim != manifest["dim"]:
                index.close()
                raise DamagedFileError(name, f"{INDEX_DIR}/config.json",
                                       f"says dimension {index.dim}, the manifest {manifest['dim']}")
            if getattr(index, "metric", manifest["metric"]) != manifest["metric"]:
                index.close()
                raise DamagedFileError(name, MANIFEST, f"says metric {manifest['metric']!r}, "
                                                       f"the index was built with {index.metric!r}")
            try:
                orphans = integrity.check_loaded(name, index, item_keys)
                if verify:
                    integrity.check_all_vectors(name, index)
            except BaseException:
                index.close()
                raise
        except BaseException:
            store.close()
            raise
        manifest["count"] = count
        col = cls(path, manifest, store, index)
        if len(orphans) or manifest.get("pending"):
            col._reconcile(orphans)
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

    @_sqlite_guard
    def get(self, item_id: str) -> Item:
        """The item ``item_id`` with its thumbnail (NotFoundError if absent)."""
        return self.store.get(str(item_id))[1]

    @_sqlite_guard
    def __contains__(self, item_id: object) -> bool:
        try:
            self.store.get(str(item_id))
        except NotFoundError:
            return False
        return True

    @_sqlite_guard
    def key_of(self, item_id: str) -> int:
        return int(self.store.keys_of([item_id])[0])

    @_sqlite_guard
    def keys_of(self, ids: Sequence[str]) -> np.ndarray:
        """Internal keys (int64) of item ids, in order (NotFoundError naming a missing id)."""
        return self.store.keys_of(list(ids))

    @_sqlite_guard
    def vector(self, item_id: str) -> np.ndarray:
        """The stored vector (D,) float32 of ``item_id``."""
        return self.index.vectors(np.array([self.key_of(item_id)]))[0]

    @_sqlite_guard
    def vectors(self, ids: Sequence[str]) -> np.ndarray:
        """Stored vectors (N, D) float32 of ``ids``."""
        return self.index.vectors(self.keys_of(ids))

    def items(self) -> Iterator[Item]:
        """Every item, in key (add) order, thumbnails included."""
        try:
            for _key, item in self.store.iter_items():
                yield item
        except sqlite3.DatabaseError as exc:
            raise _sqlite_damage(self.name, exc) from None

    @_sqlite_guard
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
        p = self.path / ARRAYS_DIR / f"{check_name(name, 'array')}.npy"
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
        p = self.path / FILES_DIR / check_name(name, "file")
        if not p.is_file():
            raise NotFoundError(f"collection {self.name} has no file {name!r}")
        return p

    # --- search ---------------------------------------------------------------------------------

    @_sqlite_guard
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
            k = clamp_k(k, len(self.index))  # a huge k never allocates more than the collection holds
            scores, keys = self.index.search(queries, clamp_k(k + extra, len(self.index)), filter)
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

    @_sqlite_guard
    def item_cache(self) -> ItemCache:
        """The in-memory item columns search hits are joined from (loaded on first use)."""
        cache = self._cache
        if cache is not None:
            return cache
        with self._cache_lock:
            if self._cache is None:
                self._cache = ItemCache(self.store)
            return self._cache

    @_sqlite_guard
    def search_item(self, item_id: str, k: int = 10, filter: Filter | None = None,
                    include_self: bool = False) -> Hits:
        """Items most similar to the stored item ``item_id``."""
        vec = self.vector(item_id)
        return self.search(vec, k, filter, exclude=None if include_self else [[item_id]])[0]

    # --- incremental edits ----------------------------------------------------------------------

    def add(self, items: Sequence[Item], vectors: np.ndarray,
            arrays: dict[str, np.ndarray] | None = None, *, wait: bool | None = None) -> np.ndarray:
        """Add items with vectors (N, D) durably; returns their new keys.

        ``arrays`` appends rows to named arrays (rows of keys added without them are zeros).
        Takes the writer lock (``wait``: see :meth:`create`); ConflictError if another process
        holds it or changed the collection since it was opened.
        """
        items, vectors = check_items(items, vectors, self.dim)
        if not items:
            return np.zeros(0, dtype=np.int64)
        with self._rw.write(), self._writing(wait):
            self.store.begin()
            added_to_index = False
            try:
                first = self.store.next_key_in_txn()
                keys = np.arange(first, first + len(items), dtype=np.int64)
                self.store.insert(keys, items)
                new_arrays = {name: self._appended_array(name, first, np.asarray(arr), len(items))
                              for name, arr in (arrays or {}).items()}
                lonlat, labels = lonlat_labels(items)
                self.index.add(keys, vectors, lonlat, labels)
                added_to_index = True
                _fs.fault("add:before-commit")
                self._commit_files(new_arrays, self.manifest["count"] + len(items))
                _fs.fault("add:before-sqlite-commit")
                self.store.commit()
            except BaseException:
                if added_to_index:
                    self.index.remove(keys)
                self.store.rollback()
                raise
            if self._cache is not None:
                self._cache.added(keys, items)
        return keys

    def remove(self, ids: Sequence[str], *, wait: bool | None = None) -> int:
        """Remove items by id durably (NotFoundError if one is absent); returns how many."""
        ids = list(dict.fromkeys(str(i) for i in ids))
        if not ids:
            return 0
        with self._rw.write(), self._writing(wait):
            keys = self.store.keys_of(ids)
            self.store.begin()
            try:
                self.store.delete(keys)
                self.store.commit()
            except BaseException:
                self.store.rollback()
                raise
            _fs.fault("remove:after-sqlite-commit")
            self.manifest["count"] = int(self.manifest["count"]) - len(keys)
            if self._cache is not None:
                self._cache.removed(keys)
            self.index.remove(keys)
            self._commit_files({}, self.manifest["count"])
        return len(keys)

    def _appended_array(self, name: str, first_key: int, arr: np.ndarray, n: int) -> np.ndarray:
        """The stored array ``name`` with ``arr``'s rows placed at keys ``first_key``.. (padded)."""
        check_name(name, "array")
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
            return np.concatenate([old, arr.astype(old.dtype)])
        pad = np.zeros((first_key, *arr.shape[1:]), dtype=arr.dtype)
        return np.concatenate([pad, arr])

    @contextmanager
    def _writing(self, wait: bool | None = None) -> Iterator[None]:
        """Hold the writer lock; ConflictError if the collection changed since it was opened."""
        with locking.writer_lock(self.path, wait=wait):
            self._check_current()
            yield

    def _check_current(self) -> None:
        disk = parse_manifest(self.path, read_manifest_bytes(self.path))
        if state(disk) != state(self.manifest):
            raise ConflictError(
                f"collection {self.name} was changed by another writer since it was opened "
                f"(generation {disk.get('generation')}, opened at {self.manifest.get('generation')}); "
                "nothing was written: reopen it and try again"
            )

    def _settled_checksums(self) -> dict[str, Any]:
        """The committed checksums, with what a crashed commit left ``pending`` resolved by hashing."""
        m = self.manifest
        backend = str(m.get("backend"))
        if "checksums" not in m:  # written before checksums existed: record the other files once
            rels = [r for r in integrity.tracked_files(self.path, backend) if not r.startswith(f"{INDEX_DIR}/")]
            return integrity.record(self.path, rels)
        checksums = dict(m.get("checksums") or {})
        for rel, entry in ((m.get("pending") or {}).get("checksums") or {}).items():
            f = self.path / rel
            if not rel.startswith(f"{INDEX_DIR}/") and f.is_file() and \
                    integrity.digest(f) == entry.get(integrity.HASH_NAME):
                checksums[rel] = entry
        return checksums

    def _commit_files(self, arrays: dict[str, np.ndarray], count: int) -> None:
        """Write the index (and ``arrays``) aside, swap them in, then commit a new manifest
        generation with their checksums. The caller holds the writer lock."""
        self._check_current()  # re-check what we replace, right before replacing it
        m = self.manifest
        gen = int(m.get("generation") or 0) + 1
        checksums = self._settled_checksums()
        qdrant = getattr(self.index, "backend", "") == "qdrant"
        pending: dict[str, Any] = {}
        new_index: Path | None = None
        staged: list[tuple[Path, Path]] = []
        announced = False
        try:
            if qdrant:
                self.index.save(self.path / INDEX_DIR)  # points are persisted by Qdrant; refresh config.json
            else:
                new_index = self.path / f".{INDEX_DIR}.new-{os.getpid()}-{secrets.token_hex(4)}"
                self.index.save(new_index)
                _fs.fsync_tree(new_index)
                for f in sorted(new_index.rglob("*")):
                    if f.is_file() and not f.name.startswith("."):
                        pending[f"{INDEX_DIR}/{f.relative_to(new_index).as_posix()}"] = \
                            {"size": f.stat().st_size, integrity.HASH_NAME: integrity.digest(f)}
            for name, arr in arrays.items():
                dst = self.path / ARRAYS_DIR / f"{name}.npy"
                dst.parent.mkdir(exist_ok=True)
                tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
                with open(tmp, "wb") as f:
                    np.save(f, arr)
                    f.flush()
                    os.fsync(f.fileno())
                staged.append((tmp, dst))
                pending[f"{ARRAYS_DIR}/{name}.npy"] = {"size": tmp.stat().st_size, integrity.HASH_NAME: integrity.digest(tmp)}
            if pending:
                _fs.write_json_atomic(self.path / MANIFEST, {**m, "pending": {
                    "generation": gen, "pid": os.getpid(), "host": socket.gethostname(), "checksums": pending}})
                announced = True
                _fs.fault("commit:after-pending")
                for tmp, dst in staged:
                    os.replace(tmp, dst)
                if staged:
                    _fs.fsync_path(self.path / ARRAYS_DIR)
                if new_index is not None:
                    _fs.swap_dir(new_index, self.path / INDEX_DIR)
                _fs.fault("commit:after-swap")
            if not qdrant:
                checksums = {k: v for k, v in checksums.items() if not k.startswith(f"{INDEX_DIR}/")}
            checksums.update(pending)
            final = {k: v for k, v in m.items() if k != "pending"}
            final.update(generation=gen, checksums=checksums, count=int(count))
            _fs.write_json_atomic(self.path / MANIFEST, final)
            self.manifest = final
        except BaseException:
            if announced:  # let readers accept either state without waiting for this process
                try:
                    _fs.write_json_atomic(self.path / MANIFEST, {**m, "pending": {
                        "generation": gen, "pid": None, "checksums": pending}})
                except OSError:
                    pass
            raise
        finally:
            if new_index is not None:
                shutil.rmtree(new_index, ignore_errors=True)
            for tmp, _dst in staged:
                tmp.unlink(missing_ok=True)

    def _reconcile(self, orphans: np.ndarray | None = None) -> None:
        """Drop orphan vectors (left by a crash between the index save and the SQLite commit) and
        settle what a crashed commit left pending: on disk when the writer lock is free, else
        from memory only (the writer at work will commit its own state)."""
        if orphans is None:
            orphans = np.setdiff1d(self.index.keys(), self.store.all_keys())
        try:
            lock = locking.writer_lock(self.path, wait=False)
            lock.__enter__()
        except (ConflictError, OSError):
            lock = None
        try:
            with self._rw.write():
                if len(orphans):
                    self.index.remove(orphans)
                if lock is None:
                    return
                try:
                    self._check_current()
                except ConflictError:
                    return  # changed meanwhile: our snapshot stays consistent in memory
                self._commit_files({}, self.store.count())
        finally:
            if lock is not None:
                lock.__exit__(None, None, None)

    def verify(self) -> dict[str, Any]:
        """Full check of every file (checksums, SQLite integrity_check, every vector finite);
        DamagedFileError naming the first damaged file. Returns a JSON-ready report."""
        name = self.name
        with self._rw.read():
            integrity.cheap_check(self.path, self.manifest, name, ITEMS_DB)
            checked = integrity.check_checksums(self.path, self.manifest, name)
            integrity.sqlite_check(self.path, ITEMS_DB, name, full=True)
            integrity.check_loaded(name, self.index, self.store.all_keys())
            integrity.check_all_vectors(name, self.index)
        return {"collection": name, "ok": True, "count": len(self), "generation": self.manifest.get("generation"),
                "checksums_recorded": "checksums" in self.manifest, "files_checked": checked}

    @_sqlite_guard
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
