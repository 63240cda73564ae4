"""Building a collection aside and swapping it into place in one atomic commit."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseek.collection import _fs, integrity, locking
from geoseek.collection.items import Item, ItemStore
from geoseek.collection.manifest import ARRAYS_DIR, FILES_DIR, INDEX_DIR, ITEMS_DB, MANIFEST, check_name, state_on_disk
from geoseek.errors import ConflictError, InvalidInputError, NotFoundError
from geoseek.index.base import BACKENDS, VectorIndex, check_vectors

if TYPE_CHECKING:
    from geoseek.collection.core import Collection


class OutputExistsError(ConflictError, InvalidInputError):
    """A build's output already exists (or appeared while building) and ``overwrite`` was not given."""


def lonlat_labels(items: Sequence[Item]) -> tuple[np.ndarray, list[str | None]]:
    lonlat = np.array([it.lonlat for it in items], dtype=np.float64).reshape(-1, 2)
    return lonlat, [it.label for it in items]


def check_items(items: Sequence[Item], vectors: np.ndarray, dim: int) -> tuple[list[Item], np.ndarray]:
    items = list(items)
    for it in items:
        if not isinstance(it, Item):
            raise InvalidInputError(f"expected Item objects, got {type(it).__name__}")
    vectors = check_vectors(vectors, dim)
    if len(vectors) != len(items):
        raise InvalidInputError(f"{len(items)} items but {len(vectors)} vectors")
    return items, vectors


class CollectionBuilder:
    """Writes a new collection aside and swaps it in on :meth:`commit` (or a clean ``with`` exit)."""

    def __init__(self, path: Path, manifest: dict[str, Any], index_options: dict[str, Any], *,
                 overwrite: bool = False, wait: bool | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self.overwrite = bool(overwrite)
        self._done = True  # until the lock is held and the temp dir made
        self._lock = locking.writer_lock(path, wait=wait)  # held until commit / abort
        self._lock.__enter__()
        try:
            _fs.recover_dir(path)
            if path.exists():
                if not overwrite:
                    raise OutputExistsError(f"{path} already exists (pass overwrite=True / --overwrite to replace it)")
                if not path.is_dir() or (any(path.iterdir()) and not (path / MANIFEST).is_file()):
                    raise InvalidInputError(f"{path} exists and is not a collection; refusing to replace it")
            self._replaces = state_on_disk(path)  # re-checked at commit
            path.parent.mkdir(parents=True, exist_ok=True)
            _fs.clean_stale(path.parent, f".{path.name}.build-")
            self.tmp = path.with_name(f".{path.name}.build-{os.getpid()}-{secrets.token_hex(4)}")
            self.tmp.mkdir(parents=True)
            self._done = False
            self._store = ItemStore(self.tmp / ITEMS_DB, create=True, fast=True)
            if manifest["backend"] == "faiss":  # IVF-PQ writes its vector file beside the build
                index_options = {"spill_dir": str(self.tmp), **index_options}
            self.index: VectorIndex = BACKENDS.create(
                manifest["backend"], dim=manifest["dim"], metric=manifest["metric"], **index_options
            )
        except BaseException:
            if not self._done:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self._done = True
            self._lock.__exit__(None, None, None)
            raise
        self._next_key = 0
        # FAISS chooses and trains its index by size: give it everything at once. The vectors wait
        # in a raw float32 file (read back memory-mapped), so a 10 M-item build never holds them in RAM
        self._buffer: list | None = [] if manifest["backend"] == "faiss" else None
        self._spill = self.tmp / ".vectors.spill"
        self._spilled = 0

    def __enter__(self) -> CollectionBuilder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    def add(self, items: Sequence[Item], vectors: np.ndarray) -> np.ndarray:
        """Add items with their vectors (N, D); returns their keys (consecutive, in add order)."""
        items, vectors = check_items(items, vectors, self.manifest["dim"])
        keys = np.arange(self._next_key, self._next_key + len(items), dtype=np.int64)
        self._store.begin()
        try:
            self._store.insert(keys, items)
            self._store.commit()
        except BaseException:
            self._store.rollback()
            raise
        lonlat, labels = lonlat_labels(items)
        if self._buffer is not None:  # the index is built once at commit, knowing the final size
            with open(self._spill, "ab") as f:
                f.write(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
            self._spilled += len(vectors)
            self._buffer.append((keys, lonlat, labels))
        else:
            self.index.add(keys, vectors, lonlat, labels)
        self._next_key += len(items)
        return keys

    def _flush(self) -> None:
        if self._buffer:
            keys = np.concatenate([b[0] for b in self._buffer])
            lonlat = np.concatenate([b[1] for b in self._buffer])
            labels = [lab for b in self._buffer for lab in b[2]]
            self._buffer = []
            vectors = np.memmap(self._spill, dtype=np.float32, mode="r", shape=(self._spilled, self.manifest["dim"]))
            self.index.add(keys, vectors, lonlat, labels)
            del vectors
            self._spill.unlink(missing_ok=True)

    def put_array(self, name: str, array: np.ndarray) -> None:
        """Store a named numpy array beside the items (row i <-> key i, i.e. add order)."""
        check_name(name, "array")
        (self.tmp / ARRAYS_DIR).mkdir(exist_ok=True)
        np.save(self.tmp / ARRAYS_DIR / f"{name}.npy", np.asarray(array))

    def put_file(self, name: str, src: str | os.PathLike) -> None:
        """Copy file ``src`` into the collection as ``files/<name>``."""
        check_name(name, "file")
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
            old = self._replaces
            self.manifest["generation"] = (int(old[1]) + 1) if old and isinstance(old[1], int) else 1
            self.manifest["build_id"] = secrets.token_hex(8)
            self.manifest["checksums"] = integrity.record(self.tmp, backend=self.manifest["backend"])
            _fs.write_json_atomic(self.tmp / MANIFEST, self.manifest)
            _fs.fsync_tree(self.tmp)
            _fs.fault("build:before-swap")
            now = state_on_disk(self.path)  # re-check what we replace, under the lock
            if now is not None and not self.overwrite:
                raise OutputExistsError(f"{self.path} was created by another writer during this build; "
                                        "nothing was replaced (pass --overwrite to replace it)")
            if now != old:
                raise ConflictError(f"{self.path} was changed by another writer during this build; nothing was replaced")
            if now is None:
                _fs.rename_noreplace(self.tmp, self.path)
            else:
                _fs.swap_dir(self.tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._done = True
        from geoseek.collection.core import Collection

        try:
            return Collection.open(self.path)
        finally:
            self._lock.__exit__(None, None, None)

    def abort(self) -> None:
        """Drop the build; the previous collection (if any) is untouched."""
        if self._done:
            return
        self._done = True
        try:
            for close in (self._store.close, getattr(self.index, "destroy", self.index.close)):
                try:
                    close()
                except Exception:  # noqa: BLE001 - best effort while failing
                    pass
            shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            self._lock.__exit__(None, None, None)
