"""One partition's output on disk: a single ``.npz`` file written atomically.

A shard holds what one partition of a build produced, in order: the items (JSON, thumbnails as
one byte string with offsets), their vectors (N, D) float32 and any per-item arrays (N, ...)
such as token sets or rasters. It is written to a temporary name, fsynced and renamed, so a
shard file that exists is complete (a kill -9 leaves at most a ``.tmp`` file, ignored).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from geoseek.collection.items import Item

_ARRAY_PREFIX = "array__"


@dataclass
class Shard:
    """What a partition function returns: ``items`` with ``vectors`` (N, D) float32 and
    ``arrays`` (name → (N, ...) array, row i ↔ item i). ``stats``: seconds spent per stage
    (summed into the build's report; not stored in the shard file)."""

    items: list[Item]
    vectors: np.ndarray
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.vectors = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.items):
            raise ValueError(f"shard: {len(self.items)} items but vectors of shape {self.vectors.shape}")
        for name, arr in self.arrays.items():
            if len(arr) != len(self.items):
                raise ValueError(f"shard: array {name!r} has {len(arr)} rows for {len(self.items)} items")


def _item_json(it: Item) -> dict:
    return {"id": it.id, "name": it.name, "footprint": list(it.footprint) if it.footprint is not None else None,
            "centroid": list(it.centroid) if it.centroid is not None else None, "label": it.label,
            "source": it.source, "metadata": it.metadata}


def save_shard(path: Path, shard: Shard) -> None:
    """Write ``shard`` to ``path`` atomically (temporary file, fsync, rename)."""
    thumbs = [it.thumbnail or b"" for it in shard.items]
    offsets = np.cumsum([0] + [len(t) for t in thumbs]).astype(np.int64)
    has_thumb = np.array([it.thumbnail is not None for it in shard.items], dtype=bool)
    payload = {
        "vectors": shard.vectors,
        "items_json": np.frombuffer(json.dumps([_item_json(it) for it in shard.items]).encode(), dtype=np.uint8),
        "thumbs": np.frombuffer(b"".join(thumbs), dtype=np.uint8),
        "thumb_offsets": offsets,
        "has_thumb": has_thumb,
        **{f"{_ARRAY_PREFIX}{k}": np.asarray(v) for k, v in shard.arrays.items()},
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **payload)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_shard(path: Path) -> Shard:
    """Read a shard written by :func:`save_shard` (ValueError/OSError if damaged)."""
    with np.load(path, allow_pickle=False) as z:
        rows = json.loads(z["items_json"].tobytes().decode())
        thumbs = z["thumbs"].tobytes()
        off = z["thumb_offsets"]
        has = z["has_thumb"]
        items = []
        for i, r in enumerate(rows):
            thumb = thumbs[off[i]:off[i + 1]] if has[i] else None
            items.append(Item(id=r["id"], name=r["name"], footprint=tuple(r["footprint"]) if r["footprint"] else None,
                              centroid=tuple(r["centroid"]) if r["centroid"] else None, label=r["label"],
                              source=r["source"], thumbnail=thumb, metadata=r["metadata"]))
        arrays = {k[len(_ARRAY_PREFIX):]: z[k] for k in z.files if k.startswith(_ARRAY_PREFIX)}
        return Shard(items, z["vectors"], arrays)
