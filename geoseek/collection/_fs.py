"""Crash-safe file-system steps: fsync, atomic file writes and directory swaps (Linux first)."""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import secrets
import shutil
from pathlib import Path

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = None


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (directories make renames and new entries durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems refuse fsync on directories
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and directory under ``root`` (bottom-up), then ``root`` itself."""
    for dirpath, _dirnames, filenames in os.walk(root, topdown=False):
        for name in filenames:
            fsync_path(Path(dirpath) / name)
        fsync_path(Path(dirpath))


def write_json_atomic(path: Path, obj: object) -> None:
    """Write JSON to ``path`` via a fsynced temp file and ``os.replace``."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1, sort_keys=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = _libc.renameat2
    except (OSError, AttributeError):
        return False
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP if hasattr(errno, "ENOTSUP") else errno.EINVAL):
        return False
    raise OSError(err, os.strerror(err), str(a))


def old_name(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.old-{os.getpid()}-{secrets.token_hex(4)}")


def swap_dir(new: Path, dst: Path) -> None:
    """Put directory ``new`` in place of ``dst`` (which may not exist), then delete the old one.

    The old directory stays in place until the new one is: on Linux the swap is one atomic
    ``renameat2(RENAME_EXCHANGE)``; elsewhere ``dst`` is first renamed to ``.<name>.old-*``
    (restored by :func:`recover_dir` if the process dies between the two renames).
    """
    new, dst = Path(new), Path(dst)
    if not dst.exists():
        os.rename(new, dst)
        fsync_path(dst.parent)
        return
    if _exchange(new, dst):
        fsync_path(dst.parent)
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now holds the old contents
        return
    old = old_name(dst)
    os.rename(dst, old)
    os.rename(new, dst)
    fsync_path(dst.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_dir(dst: Path) -> None:
    """If ``dst`` is missing but a swap left ``.<name>.old-*`` beside it, put the old one back."""
    dst = Path(dst)
    if dst.exists() or not dst.parent.is_dir():
        return
    olds = sorted(dst.parent.glob(f".{dst.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if olds:
        os.rename(olds[0], dst)
        fsync_path(dst.parent)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(parent: Path, prefix: str) -> list[Path]:
    """Delete ``parent/<prefix><pid>-*`` directories whose process ``pid`` is gone; returns them."""
    removed = []
    if not parent.is_dir():
        return removed
    for p in parent.glob(f"{prefix}*"):
        rest = p.name[len(prefix):]
        try:
            pid = int(rest.split("-", 1)[0])
        except ValueError:
            continue
        if pid == os.getpid() or pid_alive(pid):
            continue
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        removed.append(p)
    return removed


_RENAME_NOREPLACE = 1


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst`` only if ``dst`` does not exist (atomically on Linux, via
    ``renameat2(RENAME_NOREPLACE)``); ConflictError if it does."""
    from geoseek.errors import ConflictError

    global _libc
    src, dst = Path(src), Path(dst)
    fn = None
    try:
        if _libc is None:
            _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = _libc.renameat2
    except (OSError, AttributeError):
        fn = None
    if fn is not None:
        rc = fn(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), _RENAME_NOREPLACE)
        if rc == 0:
            fsync_path(dst.parent)
            return
        err = ctypes.get_errno()
        if err == errno.EEXIST:
            raise ConflictError(f"{dst.name} was created by another writer meanwhile; nothing was replaced")
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), str(dst))
    if dst.exists():
        raise ConflictError(f"{dst.name} was created by another writer meanwhile; nothing was replaced")
    os.rename(src, dst)
    fsync_path(dst.parent)


FAULT_ENV = "GEOSEEK_FAULT"
"""Test hook: ``GEOSEEK_FAULT=<point>`` kills the process (SIGKILL) when it reaches ``<point>``;
``<point>:sleep:<seconds>`` sleeps there instead. Points: ``build:before-swap``,
``add:before-commit``, ``commit:after-pending``, ``commit:after-swap``, ``add:before-sqlite-commit``,
``remove:after-sqlite-commit``, ``lock:acquired``."""


def fault(point: str) -> None:
    """Fault-injection point (no-op unless ``$GEOSEEK_FAULT`` names ``point``)."""
    spec = os.environ.get(FAULT_ENV)
    if not spec or not spec.startswith(point):
        return
    rest = spec[len(point):]
    if rest == "":
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    elif rest.startswith(":sleep:"):
        import time

        time.sleep(float(rest[len(":sleep:"):]))
