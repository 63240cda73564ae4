"""One writer per collection at a time, across processes: ``fcntl.flock`` on ``<collection>.lock``.

The lock file sits next to the collection directory (``/data/tiles`` → ``/data/tiles.lock``) so
that it exists before a build creates the collection and survives the directory swap of a
rebuild. ``flock`` locks belong to the open file: the kernel drops them when the holder exits,
however it exits (kill -9 included), so a lock is never stale. The file itself stays (deleting
it would race with a waiter) and holds a JSON line naming the current or last holder (pid,
command, since), which the refusal message quotes.

Within one process the lock is re-entrant (a CLI command holds it around several edits, each of
which takes it again) and threads queue on a per-collection ``threading.RLock``.

Writers that cannot get the lock fail with :class:`~geoseek.errors.ConflictError` naming the
holder, or wait for it (``wait=True``; the CLI's ``--wait`` sets :func:`set_default_wait`).
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geoseek.collection import _fs
from geoseek.errors import ConflictError

LOCK_SUFFIX = ".lock"

_registry_lock = threading.Lock()
_held: dict[str, _Held] = {}
_default_wait = False


class _Held:
    """A lock file this process holds (or is taking): its fd, re-entry count, thread lock."""

    def __init__(self) -> None:
        self.fd: int | None = None
        self.count = 0
        self.tlock = threading.RLock()


def set_default_wait(wait: bool) -> None:
    """Whether writers that find a collection locked wait (True) or fail (False, the default)."""
    global _default_wait
    _default_wait = bool(wait)


def default_wait() -> bool:
    return _default_wait or os.environ.get("GEOSEEK_LOCK_WAIT", "") == "1"


def lock_path(collection: str | os.PathLike) -> Path:
    """``<collection>.lock`` beside the collection directory (parent resolved, so aliases agree)."""
    p = Path(collection).absolute()
    return Path(os.path.realpath(p.parent)) / f"{p.name}{LOCK_SUFFIX}"


def holder(collection: str | os.PathLike) -> dict | None:
    """What the lock file says about its (last) holder: {pid, command, since, host}, or None."""
    try:
        text = lock_path(collection).read_text()
        info = json.loads(text) if text.strip() else None
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def describe_holder(info: dict | None) -> str:
    if not info:
        return "another process"
    cmd = str(info.get("command", ""))[:160]
    return f"pid {info.get('pid')} ({cmd!r}) since {info.get('since')}"


def _command() -> str:
    return " ".join(["geoseek" if i == 0 and a.endswith("geoseek") else a for i, a in enumerate(sys.argv)])[:300]


@contextmanager
def writer_lock(collection: str | os.PathLike, *, wait: bool | None = None) -> Iterator[Path]:
    """Hold the writer lock of ``collection`` for the block (re-entrant within a process).

    Args:
        wait: block until the lock is free (printing one message to stderr); ``None`` uses
            :func:`default_wait`. When False and another process holds it: ConflictError.
    Yields:
        the lock file's path.
    """
    path = lock_path(collection)
    key = str(path)
    with _registry_lock:
        held = _held.setdefault(key, _Held())
    held.tlock.acquire()
    try:
        if held.count == 0:
            held.fd = _acquire(path, Path(collection).name, default_wait() if wait is None else wait)
            _fs.fault("lock:acquired")
        held.count += 1
    except BaseException:
        held.tlock.release()
        raise
    try:
        yield path
    finally:
        held.count -= 1
        if held.count == 0 and held.fd is not None:
            fd, held.fd = held.fd, None
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        held.tlock.release()


def _acquire(path: Path, name: str, wait: bool) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = describe_holder(holder(path.with_name(path.name[: -len(LOCK_SUFFIX)])))
            if not wait:
                raise ConflictError(
                    f"collection {name} is being written by {who}; try again when it is done, "
                    "or pass --wait to queue behind it"
                ) from None
            print(f"geoseek: waiting for collection {name}: it is being written by {who}", file=sys.stderr, flush=True)
            fcntl.flock(fd, fcntl.LOCK_EX)
        info = {
            "pid": os.getpid(),
            "command": _command(),
            "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "host": socket.gethostname(),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        return fd
    except BaseException:
        os.close(fd)
        raise

