"""Spatial shards: one collection split by quadkey prefix into sub-collections.

Layout of a sharded collection ``OUT/``::

    OUT/sharded.json          {"format", "by": "quadkey", "level", "source", "dim", "metric", "modality",
                               "count", "shards": {KEY: {"count", "extent": [w, s, e, n], "labels": {...}}}}
    OUT/shards/<KEY>/         an ordinary Collection per shard (KEY: the quadkey of the items'
                              centroids at ``level``; "none" for items without a location)
    OUT/files/                the source collection's files (model, OSM file), copied once

``extent`` is the bbox of the shard's item centroids (what filters test), so a bbox or radius
filter opens only the shards whose extent it overlaps, and a label filter only those holding the
label. :class:`ShardedCollection` searches those shards on threads and merges the hits by score:
with exact per-shard indexes (small FAISS collections) it returns the unsharded collection's hits.
It is a thin layer with Collection's search API; :func:`open_collection` opens either kind.
A sharded collection is read-only here: edit the source and re-shard.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.collection import _fs
from geoseek.collection.core import ARRAYS_DIR, FILES_DIR, MANIFEST, Collection, OutputExistsError
from geoseek.collection.items import Hit
from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.geo import BBox, lonlat_to_tile
from geoseek.index.base import Filter, check_vectors

SHARDED_MANIFEST = "sharded.json"
SHARDS_DIR = "shards"
NO_LOCATION = "none"


def quadkey(lon: float, lat: float, level: int) -> str:
    """Bing-style quadkey (``level`` digits 0-3) of the XYZ tile holding (lon, lat) degrees."""
    x, y = lonlat_to_tile(lon, lat, level)
    digits = []
    for i in range(level, 0, -1):
        mask = 1 << (i - 1)
        digits.append(str((1 if x & mask else 0) + (2 if y & mask else 0)))
    return "".join(digits)


class MergedHits(list):
    """Hits of a sharded search: a list of :class:`Hit`, best first, with ``ids``/``scores``."""

    @property
    def ids(self) -> list[str]:
        return [h.id for h in self]

    @property
    def scores(self) -> list[float]:
        return [h.score for h in self]


def shard_collection(source: str | os.PathLike, out: str | os.PathLike, *, level: int = 10, by: str = "quadkey",
                     overwrite: bool = False, batch: int = 10_000) -> dict[str, Any]:
    """Split the collection ``source`` by the quadkey of its items' centroids at ``level``.

    Items keep their add order inside each shard; named arrays are split row-aligned; files are
    copied once. Written aside and renamed into place. Returns ``{out, shards, count, level}``.
    """
    if by != "quadkey":
        raise InvalidInputError(f"--by must be 'quadkey', got {by!r}")
    if not 1 <= int(level) <= 23:
        raise InvalidInputError(f"--level must be in 1..23, got {level}")
    out = Path(out).absolute()
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists (pass --overwrite to replace it)")
    src = Collection.open(source)
    tmp = out.with_name(f".{out.name}.shard-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        keys: dict[str, list[Any]] = {}
        for it in src.items():
            lon, lat = it.lonlat
            qk = NO_LOCATION if not np.isfinite(lon) else quadkey(lon, lat, int(level))
            keys.setdefault(qk, []).append(it)
        arrays = sorted(p.stem for p in (src.path / ARRAYS_DIR).glob("*.npy")) if (src.path / ARRAYS_DIR).is_dir() else []
        m = src.manifest
        shards: dict[str, Any] = {}
        for qk in sorted(keys):
            items = keys[qk]
            rows = src.keys_of([it.id for it in items])
            with Collection.create(tmp / SHARDS_DIR / qk, modality=m.get("modality", ""), dim=src.dim,
                                   model_id=m.get("model_id", ""), model_checksum=m.get("model_checksum", ""),
                                   metric=src.metric, backend=m["backend"], extra=m.get("extra") or {}) as b:
                for i in range(0, len(items), batch):
                    b.add(items[i:i + batch], src.index.vectors(rows[i:i + batch]))
                for name in arrays:
                    b.put_array(name, np.asarray(src.array(name))[rows])
            ll = np.array([it.lonlat for it in items], dtype=np.float64)
            labels: dict[str, int] = {}
            for it in items:
                if it.label is not None:
                    labels[it.label] = labels.get(it.label, 0) + 1
            extent = None if qk == NO_LOCATION else [float(ll[:, 0].min()), float(ll[:, 1].min()),
                                                     float(ll[:, 0].max()), float(ll[:, 1].max())]
            shards[qk] = {"count": len(items), "extent": extent, "labels": labels,
                          "unlabelled": sum(it.label is None for it in items)}
        if (src.path / FILES_DIR).is_dir():
            shutil.copytree(src.path / FILES_DIR, tmp / FILES_DIR)
        meta = {"format": 1, "by": by, "level": int(level), "source": src.name, "dim": src.dim, "metric": src.metric,
                "modality": m.get("modality", ""), "source_manifest": {k: v for k, v in m.items() if k != "checksums"},
                "count": len(src), "shards": shards}
        _fs.write_json_atomic(tmp / SHARDED_MANIFEST, meta)
        _fs.fsync_tree(tmp)
        if out.exists():
            _fs.swap_dir(tmp, out)
        else:
            _fs.rename_noreplace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        src.close()
    return {"out": str(out), "shards": len(shards), "count": meta["count"], "level": int(level), "by": by}


def is_sharded(path: str | os.PathLike) -> bool:
    return (Path(path) / SHARDED_MANIFEST).is_file()


class ShardedCollection:
    """A spatially sharded collection with :class:`Collection`'s search API (read-only).

    Shards are opened on first use, so a filtered search opens only the shards it overlaps.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).absolute()
        try:
            self.meta = json.loads((self.path / SHARDED_MANIFEST).read_text())
        except FileNotFoundError:
            raise NotFoundError(f"no sharded collection at {self.path}") from None
        self.manifest = dict(self.meta.get("source_manifest") or {})
        self.manifest.update(count=self.meta["count"], sharded={"by": self.meta["by"], "level": self.meta["level"]})
        self._open: dict[str, Collection] = {}
        self._pool = ThreadPoolExecutor(max(1, min(8, len(self.meta["shards"]))), thread_name_prefix="geoseek-shard")

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    @property
    def metric(self) -> str:
        return str(self.meta["metric"])

    def __len__(self) -> int:
        return int(self.meta["count"])

    def shard(self, key: str) -> Collection:
        """The shard ``key``, opened on first use."""
        col = self._open.get(key)
        if col is None:
            col = self._open.setdefault(key, Collection.open(self.path / SHARDS_DIR / key))
        return col

    @property
    def opened(self) -> list[str]:
        """Keys of the shards opened so far (tests and diagnostics)."""
        return sorted(self._open)

    def shards_for(self, filter: Filter | None) -> list[str]:
        """Keys of the shards that may hold items passing ``filter``."""
        out = []
        for key, s in sorted(self.meta["shards"].items()):
            if filter is not None and not filter.empty:
                if (filter.bbox is not None or filter.radius is not None) and s["extent"] is None:
                    continue
                ext = BBox(*s["extent"]) if s["extent"] is not None else None
                if filter.bbox is not None and not ext.intersects(filter.bbox):
                    continue
                if filter.radius is not None and not ext.intersects(filter.radius.bounds()):
                    continue
                if filter.labels is not None and not (set(s["labels"]) & set(filter.labels)):
                    continue
            out.append(key)
        return out

    def search(self, vectors: np.ndarray, k: int = 10, filter: Filter | None = None,
               exclude: Sequence[Sequence[str]] | None = None) -> list[MergedHits]:
        """Top-k items per query vector (Q, D) over the overlapping shards, merged by score."""
        queries = check_vectors(vectors, self.dim, name="query vectors")
        k = int(k)
        if k <= 0:
            raise InvalidInputError(f"k must be > 0, got {k}")
        keys = self.shards_for(filter)
        per_shard = list(self._pool.map(lambda key: self.shard(key).search(queries, k, filter, exclude), keys))
        out = []
        for qi in range(len(queries)):
            cands = [(h.score, si, h) for si, hits in enumerate(per_shard) for h in hits[qi]]
            cands.sort(key=lambda c: (-c[0], c[1]))
            out.append(MergedHits(Hit(rank=r, score=s, item=h.item) for r, (s, _si, h) in enumerate(cands[:k], 1)))
        return out

    def search_item(self, item_id: str, k: int = 10, filter: Filter | None = None,
                    include_self: bool = False) -> MergedHits:
        """Items most similar to the stored item ``item_id``."""
        vec = self.vector(item_id)
        return self.search(vec, k, filter, exclude=None if include_self else [[item_id]])[0]

    def _find(self, item_id: str) -> Collection:
        for key in sorted(self.meta["shards"]):
            col = self.shard(key)
            if item_id in col:
                return col
        raise NotFoundError(f"no item {item_id!r} in collection {self.name}")

    def get(self, item_id: str):
        return self._find(item_id).get(item_id)

    def vector(self, item_id: str) -> np.ndarray:
        return self._find(item_id).vector(item_id)

    def file(self, name: str) -> Path:
        p = self.path / FILES_DIR / name
        if not p.is_file():
            raise NotFoundError(f"collection {self.name} has no file {name!r}")
        return p

    def info(self) -> dict[str, Any]:
        return {**self.manifest, "path": str(self.path), "name": self.name, "count": len(self),
                "shards": {k: {"count": v["count"], "extent": v["extent"]} for k, v in self.meta["shards"].items()}}

    def close(self) -> None:
        for col in self._open.values():
            col.close()
        self._open.clear()
        self._pool.shutdown(wait=False)

    def __enter__(self) -> ShardedCollection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_collection(path: str | os.PathLike, **kwargs: Any) -> Collection | ShardedCollection:
    """Open a collection, sharded (``sharded.json``) or not (``manifest.json``: :meth:`Collection.open`)."""
    if is_sharded(path) and not (Path(path) / MANIFEST).is_file():
        return ShardedCollection(path)
    return Collection.open(path, **kwargs)
