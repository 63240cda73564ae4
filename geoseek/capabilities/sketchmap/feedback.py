"""The feedback log of a scene collection: (sketch map, chosen scene) pairs for retraining.

JSON Lines in ``<collection>/sketchmap-feedback.jsonl``, appended durably by the HTTP route
(``POST /collections/{name}/feedback``) and read back as training sketches by
``geoseek train sketchmap --with-feedback COLLECTION``.

Bounds: a record is at most :data:`MAX_RECORD_BYTES` (larger ones are refused, 422); the log is
rotated when it would pass :data:`MAX_LOG_BYTES` (``sketchmap-feedback.1.jsonl`` is the newest
rotated file, up to :data:`KEEP_ROTATED` are kept and read back for training; older ones are
deleted). :func:`count_feedback` counts incrementally: it reads only the bytes appended since
the last count (rotated files are counted once), never the whole log per request.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.capabilities.sketchmap.data import DEFAULT_WINDOW_M, SketchMapData

FEEDBACK_FILE = "sketchmap-feedback.jsonl"
MAX_RECORD_BYTES = 256 * 1024
"""Largest feedback record (one JSON line), bytes."""
MAX_LOG_BYTES = 32 * 1024 * 1024
"""The log is rotated before it would pass this size, bytes."""
KEEP_ROTATED = 3
"""Rotated logs kept (``.1`` newest .. ``.3`` oldest)."""

_counts: dict[str, tuple[int, int, int]] = {}  # file -> (inode, bytes counted, newlines in them)


def _rotated(path: Path, i: int) -> Path:
    return path.with_name(f"{path.stem}.{i}{path.suffix}")


def _log_files(path: Path) -> list[Path]:
    """Rotated logs oldest first, then the current one (those that exist)."""
    files = [_rotated(path, i) for i in range(KEEP_ROTATED, 0, -1)] + [path]
    return [f for f in files if f.is_file()]


def _rotate(path: Path) -> None:
    """Shift ``.1`` → ``.2`` ... (dropping the oldest) and the log to ``.1`` (caller holds the lock)."""
    import os

    _rotated(path, KEEP_ROTATED).unlink(missing_ok=True)
    for i in range(KEEP_ROTATED - 1, 0, -1):
        if _rotated(path, i).exists():
            os.replace(_rotated(path, i), _rotated(path, i + 1))
    os.replace(path, _rotated(path, 1))


def feedback_path(col_or_path: Any) -> Path:
    """The feedback log of a collection (a :class:`~geoseek.collection.Collection` or its directory)."""
    p = Path(getattr(col_or_path, "path", col_or_path))
    return p / FEEDBACK_FILE


def append_feedback(col: Any, sketch: Any, item_id: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Durably append one (sketch, chosen scene) pair to the collection's feedback log.

    The log is JSON Lines inside the collection directory, written with one ``write`` of a
    whole line under an exclusive lock and ``fsync`` before returning, so a record that was
    acknowledged survives a crash or restart. The sketch is validated first.
    """
    import datetime as _dt
    import fcntl
    import json
    import os

    from geoseek.errors import NotFoundError
    from geoseek.sources.sketchmap import parse_sketch_map

    extra_m = col.manifest.get("extra", {})
    parse_sketch_map(sketch, window_m=float(extra_m.get("window_m", DEFAULT_WINDOW_M)))
    if item_id not in col:
        raise NotFoundError(f"no scene {item_id!r} in collection {col.name}")
    rec = {
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "item_id": item_id, "sketch": sketch if not isinstance(sketch, (str, bytes)) else json.loads(sketch),
        **({"extra": extra} if extra else {}),
    }
    line = (json.dumps(rec, separators=(",", ":")) + "\n").encode()
    if len(line) > MAX_RECORD_BYTES:
        from geoseek.errors import InvalidInputError

        raise InvalidInputError(f"a feedback record is at most {MAX_RECORD_BYTES // 1024} KiB, this one is "
                                f"{len(line) // 1024} KiB: simplify the sketch")
    path = feedback_path(col)
    lock_fd = os.open(path.with_name(f".{path.name}.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # one appender or rotator at a time, across processes
        if path.is_file() and path.stat().st_size + len(line) > MAX_LOG_BYTES:
            _rotate(path)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        os.close(lock_fd)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return {"stored": True, "item_id": item_id, "count": count_feedback(col)}


def read_feedback(col_or_path: Any) -> list[dict[str, Any]]:
    """All feedback records of a collection (a torn last line, from a crash mid-write, is skipped)."""
    import json

    out = []
    for f in _log_files(feedback_path(col_or_path)):
        for line in f.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


def count_feedback(col_or_path: Any) -> int:
    """How many feedback records a collection holds (current and rotated logs), counted
    incrementally: only bytes appended since the previous call are read."""
    total = 0
    for f in _log_files(feedback_path(col_or_path)):
        try:
            st = f.stat()
        except FileNotFoundError:
            continue
        key = str(f)
        ino, done, n = _counts.get(key, (st.st_ino, 0, 0))
        if ino != st.st_ino or st.st_size < done:  # rotated or replaced: count it afresh
            done, n = 0, 0
        if st.st_size > done:
            with open(f, "rb") as fh:
                fh.seek(done)
                while chunk := fh.read(1 << 20):
                    n += chunk.count(b"\n")
                    done += len(chunk)
        _counts[key] = (st.st_ino, done, n)
        total += n
    return total


def feedback_sketches(collection: str | Path, data: SketchMapData) -> dict[int, list[np.ndarray]]:
    """Feedback of a scene collection as {scene index in ``data``: [sketch rasters]}.

    A chosen scene is matched to the scene of ``data`` with the same centre (within 1 m).
    """
    from geoseek.collection import Collection
    from geoseek.sources.sketchmap import parse_sketch_map

    col = Collection.open(collection)
    recs = read_feedback(col)
    centers = data.scenes.centers
    size = data.scenes.rasters.shape[-1]
    out: dict[int, list[np.ndarray]] = {}
    for rec in recs:
        try:
            item = col.get(rec["item_id"])
            sm = parse_sketch_map(rec["sketch"], window_m=data.scenes.window_m)
        except Exception:
            continue
        lon, lat = item.centroid or ((item.footprint[0] + item.footprint[2]) / 2, (item.footprint[1] + item.footprint[3]) / 2)
        d = np.hypot((centers[:, 0] - lon) * 111_320 * math.cos(math.radians(lat)), (centers[:, 1] - lat) * 110_540)
        j = int(d.argmin())
        if d[j] <= 1.0:
            out.setdefault(j, []).append(sm.rasterize(size))
    return out
