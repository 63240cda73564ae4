"""Items (the searchable things of a collection) and their SQLite store with an R*Tree.

Schema (``items.sqlite``):
- ``items(key INTEGER PRIMARY KEY, id TEXT UNIQUE, name, west, south, east, north, lon, lat,
  label, source, thumbnail BLOB, metadata JSON)``: ``key`` is the internal int64 key shared with
  the vector index; ``(lon, lat)`` the centroid in degrees.
- ``items_rtree(key, west, east, south, north)``: an R*Tree over footprints (a point for items
  that only have a centroid; no row for items without a location).
- ``meta(name, value)``: ``next_key`` (keys are never reused, so arrays can be row-aligned with keys).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.geo import BBox, CoordinateError

_COLUMNS = "key, id, name, west, south, east, north, lon, lat, label, source, metadata"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    key INTEGER PRIMARY KEY,
    id TEXT UNIQUE NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    west REAL, south REAL, east REAL, north REAL,
    lon REAL, lat REAL,
    label TEXT,
    source TEXT NOT NULL DEFAULT '',
    thumbnail BLOB,
    metadata TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS items_label ON items(label);
CREATE VIRTUAL TABLE IF NOT EXISTS items_rtree USING rtree(key, west, east, south, north);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


@dataclass
class Item:
    """One searchable thing.

    Attributes:
        id: user-facing id, unique in the collection.
        footprint: (west, south, east, north) in degrees, or None.
        centroid: (lon, lat) in degrees; defaults to the footprint's centre.
        thumbnail: PNG or JPEG bytes (not loaded in search hits: see ``has_thumbnail``).
        metadata: JSON-serializable dict.
    """

    id: str
    name: str = ""
    footprint: tuple[float, float, float, float] | None = None
    centroid: tuple[float, float] | None = None
    label: str | None = None
    source: str = ""
    thumbnail: bytes | None = None
    metadata: dict = field(default_factory=dict)
    has_thumbnail: bool = field(default=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise InvalidInputError(f"item id must be a non-empty string, got {self.id!r}")
        if self.footprint is not None:
            self.footprint = tuple(float(v) for v in self.footprint)  # type: ignore[assignment]
            if len(self.footprint) != 4:
                raise InvalidInputError(f"item {self.id!r}: footprint must be (west, south, east, north)")
            try:
                BBox(*self.footprint)
            except CoordinateError as exc:
                raise InvalidInputError(f"item {self.id!r}: {exc}") from None
            if self.centroid is None:
                w, s, e, n = self.footprint
                self.centroid = ((w + e) / 2, (s + n) / 2)
        if self.centroid is not None:
            try:
                lon, lat = (float(v) for v in self.centroid)
            except (TypeError, ValueError):
                raise InvalidInputError(f"item {self.id!r}: centroid must be (lon, lat) degrees, "
                                        f"got {self.centroid!r}") from None
            if not (math.isfinite(lon) and math.isfinite(lat) and abs(lon) <= 180.0 and abs(lat) <= 90.0):
                raise InvalidInputError(f"item {self.id!r}: centroid ({lon}, {lat}) is not a valid (lon, lat) "
                                        "in degrees: lon must be in [-180, 180] and lat in [-90, 90]")
            self.centroid = (lon, lat)
        if self.label is not None:
            self.label = str(self.label)
        if self.thumbnail is not None:
            self.has_thumbnail = True
        if not isinstance(self.metadata, dict):
            raise InvalidInputError(f"item {self.id!r}: metadata must be a dict")

    @property
    def lonlat(self) -> tuple[float, float]:
        """Centroid (lon, lat), (nan, nan) when the item has no location."""
        return self.centroid if self.centroid is not None else (math.nan, math.nan)

    def geometry(self) -> dict | None:
        """GeoJSON geometry: the footprint polygon, else the centroid point, else None."""
        if self.footprint is not None:
            return BBox(*self.footprint).to_geojson()
        if self.centroid is not None:
            return {"type": "Point", "coordinates": list(self.centroid)}
        return None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict; ``footprint`` is GeoJSON, ``bbox`` the raw (w, s, e, n)."""
        return {
            "id": self.id,
            "name": self.name,
            "label": self.label,
            "source": self.source,
            "centroid": list(self.centroid) if self.centroid is not None else None,
            "bbox": list(self.footprint) if self.footprint is not None else None,
            "footprint": self.geometry(),
            "has_thumbnail": bool(self.has_thumbnail or self.thumbnail is not None),
            "metadata": self.metadata,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Item:
        """Inverse of :meth:`to_json` (also accepts ``bbox``/``footprint`` as a 4-list, ``lon``/``lat``)."""
        if not isinstance(obj, dict) or "id" not in obj:
            raise InvalidInputError(f"an item must be a JSON object with an 'id', got {str(obj)[:80]}")
        fp = obj.get("bbox")
        if fp is None and isinstance(obj.get("footprint"), (list, tuple)):
            fp = obj["footprint"]
        centroid = obj.get("centroid")
        if centroid is None and "lon" in obj and "lat" in obj:
            centroid = (obj["lon"], obj["lat"])
        try:
            return cls(
                id=str(obj["id"]), name=str(obj.get("name") or ""),
                footprint=tuple(fp) if fp is not None else None,
                centroid=tuple(centroid) if centroid is not None else None,
                label=obj.get("label"), source=str(obj.get("source") or ""),
                metadata=dict(obj.get("metadata") or {}),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidInputError(f"item {obj.get('id')!r}: {exc}") from None


@dataclass
class Hit:
    """One search result: ``rank`` from 1, ``score`` higher-is-better, the joined ``item``.

    Hits returned by a collection search also carry the internal ``key``; their ``item`` is built
    from the collection's in-memory item columns on first access (``hit.id`` reads the id without
    building it). ``to_json()`` → ``{"rank": 1, "score": 0.93, "item": Item.to_json()}`` (the
    item's ``footprint`` is GeoJSON; thumbnails are not inlined: ``item.has_thumbnail`` says
    whether one exists). A plain dataclass otherwise (``dataclasses.replace`` works).
    """

    rank: int
    score: float
    item: Item
    key: int = field(default=-1, compare=False)
    source: ItemCache | None = field(default=None, compare=False, repr=False)

    def __getattr__(self, name: str) -> Any:  # only called while ``item`` is not built yet
        if name == "item":
            d = self.__dict__
            source = d.get("source")
            if source is not None:
                item = d["item"] = source.item(d["key"])
                return item
        raise AttributeError(name)

    @classmethod
    def lazy(cls, rank: int, score: float, key: int, source: ItemCache) -> Hit:
        """A hit whose item is built from ``source`` when first read."""
        hit = object.__new__(cls)
        hit.__dict__.update(rank=rank, score=score, key=key, source=source)
        return hit

    @property
    def id(self) -> str:
        """The item's id (without building the item)."""
        d = self.__dict__
        if "item" in d:
            return d["item"].id
        return d["source"].ids[d["key"]]

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "score": float(self.score), "item": self.item.to_json()}


def _lazy_hit(rank: int, score: float, key: int, cache: ItemCache, _new=object.__new__) -> Hit:
    """``Hit.lazy`` inlined for the hot path of every search."""
    hit = _new(Hit)
    hit.__dict__ = {"rank": rank, "score": score, "key": key, "source": cache}
    return hit


class Hits(Sequence[Hit]):
    """The ranked hits of one query: a read-only sequence of :class:`Hit`, best first.

    Built from the index's (score, key) rows without making a ``Hit`` per result: ``ids``,
    ``scores`` and ``keys`` read whole columns, and the ``Hit`` objects are made on first
    indexing or iteration. Compares equal to a list of the same hits.
    """

    __slots__ = ("_scores", "_keys", "_cache", "_hits", "_ids")

    def __init__(self, scores: list[float], keys: list[int], cache: ItemCache, ids: np.ndarray | None = None) -> None:
        self._scores, self._keys, self._cache, self._hits, self._ids = scores, keys, cache, None, ids

    def _all(self) -> list[Hit]:
        hits = self._hits
        if hits is None:
            cache = self._cache
            hits = self._hits = [_lazy_hit(r, s, k, cache) for r, (s, k) in enumerate(zip(self._scores, self._keys), 1)]
        return hits

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, i):  # type: ignore[override]
        return self._all()[i]

    def __iter__(self) -> Iterator[Hit]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (Hits, list, tuple)):
            return self._all() == list(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Hits({self._all()!r})"

    @property
    def ids(self) -> list[str]:
        """Item ids, best first (no ``Hit`` or ``Item`` is built)."""
        if self._ids is not None:
            return self._ids.tolist()
        ids = self._cache.ids
        return [ids[k] for k in self._keys]

    @property
    def scores(self) -> list[float]:
        """Scores, higher is better, best first."""
        return list(self._scores)

    @property
    def keys(self) -> list[int]:
        """Internal int64 keys, best first."""
        return list(self._keys)


class ItemStore:
    """The SQLite side of a collection. Thread-safe (one connection behind a lock)."""

    def __init__(self, path: Path, *, create: bool = False, fast: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(f"{self.path} is missing")
        uri = f"file:{self.path}?mode={'rwc' if create else 'rw'}"
        self.conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
        self.lock = threading.RLock()
        if fast:  # a build in a temp dir: durability comes from fsync + rename at the end
            self.conn.execute("PRAGMA journal_mode=MEMORY")
            self.conn.execute("PRAGMA synchronous=OFF")
            # 512 MB page cache: the id index and the R*Tree of a multi-million-item build stay in RAM
            # (the 2 MB default made each 100,000-item insert ~3x slower by 1 M items)
            self.conn.execute("PRAGMA cache_size=-524288")
        else:
            self.conn.execute("PRAGMA synchronous=FULL")
        if create:
            self.conn.executescript(_SCHEMA)
            self.conn.execute("INSERT OR IGNORE INTO meta VALUES ('next_key', '0')")

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # --- reads ----------------------------------------------------------------------------------

    def count(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT count(*) FROM items").fetchone()[0])

    def next_key(self) -> int:
        with self.lock:
            return int(self.conn.execute("SELECT value FROM meta WHERE name='next_key'").fetchone()[0])

    def all_keys(self) -> np.ndarray:
        with self.lock:
            rows = self.conn.execute("SELECT key FROM items ORDER BY key").fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    @staticmethod
    def _row_to_item(row: Sequence[Any], thumbnail: bytes | None = None, has_thumb: bool = False) -> Item:
        key, id_, name, w, s, e, n, lon, lat, label, source, meta = row[:12]
        item = Item.__new__(Item)  # trusted row: skip validation (hot path of every search)
        item.id, item.name, item.label, item.source = id_, name, label, source
        item.footprint = (w, s, e, n) if w is not None else None
        item.centroid = (lon, lat) if lon is not None else None
        item.thumbnail = thumbnail
        item.metadata = json.loads(meta) if meta != "{}" else {}
        item.has_thumbnail = has_thumb or thumbnail is not None
        return item

    def items_by_keys(self, keys: Sequence[int]) -> dict[int, Item]:
        """Items of ``keys`` (absent keys are skipped), without thumbnail bytes."""
        out: dict[int, Item] = {}
        keys = [int(k) for k in keys]
        with self.lock:
            for start in range(0, len(keys), 30_000):
                chunk = keys[start:start + 30_000]
                q = (f"SELECT {_COLUMNS}, thumbnail IS NOT NULL FROM items "
                     f"WHERE key IN ({','.join('?' * len(chunk))})")
                for row in self.conn.execute(q, chunk):
                    out[row[0]] = self._row_to_item(row, has_thumb=bool(row[12]))
        return out

    def get(self, item_id: str) -> tuple[int, Item]:
        """(key, item) with thumbnail bytes; NotFoundError if absent."""
        with self.lock:
            row = self.conn.execute(f"SELECT {_COLUMNS}, thumbnail FROM items WHERE id=?", (item_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"no item {item_id!r} in the collection")
        return row[0], self._row_to_item(row, thumbnail=row[12])

    def keys_of(self, ids: Sequence[str]) -> np.ndarray:
        ids = [str(i) for i in ids]
        found: dict[str, int] = {}
        with self.lock:
            for start in range(0, len(ids), 30_000):
                chunk = ids[start:start + 30_000]
                q = f"SELECT id, key FROM items WHERE id IN ({','.join('?' * len(chunk))})"
                found.update(self.conn.execute(q, chunk).fetchall())
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFoundError(f"no item {missing[0]!r} in the collection" +
                                (f" (and {len(missing) - 1} more missing)" if len(missing) > 1 else ""))
        return np.asarray([found[i] for i in ids], dtype=np.int64)

    def iter_items(self, batch: int = 1000) -> Iterator[tuple[int, Item]]:
        """(key, item) in key order, thumbnails included."""
        last = -1
        while True:
            with self.lock:
                rows = self.conn.execute(
                    f"SELECT {_COLUMNS}, thumbnail FROM items WHERE key > ? ORDER BY key LIMIT ?", (last, batch)
                ).fetchall()
            if not rows:
                return
            for row in rows:
                yield row[0], self._row_to_item(row, thumbnail=row[12])
            last = rows[-1][0]

    def keys_in(self, bbox: BBox, limit: int | None = None) -> np.ndarray:
        """Keys whose footprint (or point) intersects ``bbox``, via the R*Tree."""
        q = "SELECT key FROM items_rtree WHERE west <= ? AND east >= ? AND south <= ? AND north >= ?"
        args: list[Any] = [bbox.east, bbox.west, bbox.north, bbox.south]
        if limit is not None:
            q += " LIMIT ?"
            args.append(int(limit))
        with self.lock:
            rows = self.conn.execute(q, args).fetchall()
        return np.asarray([r[0] for r in rows], dtype=np.int64)

    def labels(self) -> dict[str, int]:
        """Label → number of items."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT label, count(*) FROM items WHERE label IS NOT NULL GROUP BY label ORDER BY label"
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    # --- writes (the caller holds a transaction: see :meth:`transaction`) -------------------------

    def begin(self) -> None:
        self.lock.acquire()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.lock.release()
            raise

    def commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        finally:
            self.lock.release()

    def rollback(self) -> None:
        try:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
        finally:
            self.lock.release()

    def insert(self, keys: np.ndarray, items: Sequence[Item]) -> None:
        """Insert ``items`` under ``keys`` and advance next_key (inside a transaction)."""
        rows, rtree = [], []
        for key, it in zip(keys.tolist(), items):
            w, s, e, n = it.footprint if it.footprint is not None else (None,) * 4
            lon, lat = it.centroid if it.centroid is not None else (None, None)
            try:
                meta = json.dumps(it.metadata) if it.metadata else "{}"
            except (TypeError, ValueError) as exc:
                raise InvalidInputError(f"item {it.id!r}: metadata is not JSON-serializable ({exc})") from None
            rows.append((key, it.id, it.name, w, s, e, n, lon, lat, it.label, it.source, it.thumbnail, meta))
            if w is not None:
                rtree.append((key, w, e, s, n))
            elif lon is not None:
                rtree.append((key, lon, lon, lat, lat))
        dup = self._first_duplicate([it.id for it in items])
        if dup is not None:
            raise InvalidInputError(f"item id {dup!r} is given twice or already in the collection")
        self.conn.executemany(f"INSERT INTO items ({_COLUMNS.replace('metadata', 'thumbnail, metadata')}) "
                              "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        self.conn.executemany("INSERT INTO items_rtree VALUES (?,?,?,?,?)", rtree)
        if len(keys):
            nk = max(self.next_key_in_txn(), int(keys.max()) + 1)
            self.conn.execute("UPDATE meta SET value=? WHERE name='next_key'", (str(nk),))

    def next_key_in_txn(self) -> int:
        return int(self.conn.execute("SELECT value FROM meta WHERE name='next_key'").fetchone()[0])

    def _first_duplicate(self, ids: list[str]) -> str | None:
        seen: set[str] = set()
        for i in ids:
            if i in seen:
                return i
            seen.add(i)
        for start in range(0, len(ids), 30_000):
            chunk = ids[start:start + 30_000]
            row = self.conn.execute(
                f"SELECT id FROM items WHERE id IN ({','.join('?' * len(chunk))}) LIMIT 1", chunk).fetchone()
            if row is not None:
                return row[0]
        return None

    def delete(self, keys: np.ndarray) -> None:
        ks = [(int(k),) for k in keys]
        self.conn.executemany("DELETE FROM items WHERE key=?", ks)
        self.conn.executemany("DELETE FROM items_rtree WHERE key=?", ks)


class ItemCache:
    """In-memory columns of every item but its thumbnail bytes, indexed by key, so search hits are
    joined without a database round trip (SQLite stays the source of truth; the collection keeps
    the cache in step with its own adds and removals).

    Memory: about 100 bytes per item plus ids, names and metadata text.
    """

    def __init__(self, store: ItemStore) -> None:
        with store.lock:
            n = store.next_key()
            rows = store.conn.execute(f"SELECT {_COLUMNS}, thumbnail IS NOT NULL FROM items ORDER BY key").fetchall()
        self.ids: list[str | None] = [None] * n
        self.names: list[str] = [""] * n
        self.geo = np.full((n, 6), np.nan)  # west, south, east, north, lon, lat
        self.labels: list[str | None] = [None] * n
        self.sources: list[str] = [""] * n
        self.meta: list[str | None] = [None] * n
        self.thumb = np.zeros(n, dtype=bool)
        self.present = np.zeros(n, dtype=bool)  # key has an item
        self._ids_array: np.ndarray | None = None
        self._fill(rows)

    def ids_array(self) -> np.ndarray:
        """The ids as a numpy object array indexed by key (None where no item), for batch lookups."""
        arr = self._ids_array
        if arr is None or len(arr) != len(self.ids):
            arr = np.empty(len(self.ids), dtype=object)
            arr[:] = self.ids
            self._ids_array = arr
        return arr

    def _fill(self, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        self._ids_array = None
        keys = [r[0] for r in rows]
        for r in rows:
            k = r[0]
            self.ids[k], self.names[k], self.labels[k], self.sources[k] = r[1], r[2], r[9], r[10]
            self.meta[k] = None if r[11] == "{}" else r[11]
        self.geo[keys] = np.array([r[3:9] for r in rows], dtype=np.float64)  # None -> nan
        self.thumb[keys] = [bool(r[12]) for r in rows]
        self.present[keys] = True

    def _grow(self, n: int) -> None:
        extra = n - len(self.ids)
        if extra > 0:
            self.ids += [None] * extra
            self.names += [""] * extra
            self.labels += [None] * extra
            self.sources += [""] * extra
            self.meta += [None] * extra
            self.geo = np.concatenate([self.geo, np.full((extra, 6), np.nan)])
            self.thumb = np.concatenate([self.thumb, np.zeros(extra, dtype=bool)])
            self.present = np.concatenate([self.present, np.zeros(extra, dtype=bool)])

    def added(self, keys: np.ndarray, items: Sequence[Item]) -> None:
        """Record items just added under ``keys``."""
        if len(keys) == 0:
            return
        self._grow(int(keys.max()) + 1)
        rows = []
        for k, it in zip(keys.tolist(), items):
            fp = it.footprint or (None,) * 4
            c = it.centroid or (None, None)
            rows.append((k, it.id, it.name, *fp, *c, it.label, it.source,
                         json.dumps(it.metadata) if it.metadata else "{}", it.thumbnail is not None))
        self._fill(rows)

    def removed(self, keys: np.ndarray) -> None:
        self._ids_array = None
        for k in keys.tolist():
            if k < len(self.ids):
                self.ids[k] = None
                self.present[k] = False

    def item(self, key: int) -> Item:
        """The item of ``key`` (KeyError if absent), without thumbnail bytes."""
        found = self.items([key])
        if key not in found:
            raise KeyError(key)
        return found[key]

    def items(self, keys: Sequence[int]) -> dict[int, Item]:
        """Items of ``keys`` (absent keys skipped), without thumbnail bytes."""
        out: dict[int, Item] = {}
        n = len(self.ids)
        ks = [k for k in keys if 0 <= k < n and self.ids[k] is not None]
        if not ks:
            return out
        geo = self.geo[ks].tolist()
        thumb = self.thumb[ks].tolist()
        new = Item.__new__
        for k, g, th in zip(ks, geo, thumb):
            item = new(Item)  # trusted data: skip validation (hot path of every search)
            item.id, item.name, item.label, item.source = self.ids[k], self.names[k], self.labels[k], self.sources[k]
            item.footprint = (g[0], g[1], g[2], g[3]) if g[0] == g[0] else None  # nan != nan
            item.centroid = (g[4], g[5]) if g[4] == g[4] else None
            item.thumbnail = None
            m = self.meta[k]
            item.metadata = json.loads(m) if m is not None else {}
            item.has_thumbnail = th
            out[k] = item
        return out
