"""A collection's manifest: file names, validation on read, and the writer state it records.

``manifest.json`` holds format, modality, model_id, model_checksum, dim, metric, backend, created,
count, extra, plus ``build_id`` / ``generation`` (what a writer re-checks before replacing) and
``checksums`` / ``pending`` (see :mod:`geoseek.collection.integrity`).
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path
from typing import Any

from geoseek.collection import _fs
from geoseek.collection.integrity import CollectionError, CorruptCollectionError, DamagedFileError
from geoseek.errors import InvalidInputError
from geoseek.index.base import BACKENDS, METRICS

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
ITEMS_DB = "items.sqlite"
INDEX_DIR = "index"
ARRAYS_DIR = "arrays"
FILES_DIR = "files"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class NewerFormatError(CollectionError):
    """The collection was written by a newer geoseek (format version above ours)."""


def read_manifest_bytes(path: Path) -> bytes:
    try:
        return (path / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise CorruptCollectionError(f"{path.name} is not a collection: {MANIFEST} is missing") from None
    except OSError as exc:
        raise DamagedFileError(path.name, MANIFEST, f"is unreadable ({exc.strerror})") from None


def parse_manifest(path: Path, raw: bytes) -> dict[str, Any]:
    """The manifest, with its fields validated (DamagedFileError naming manifest.json)."""
    name = path.name
    try:
        manifest = json.loads(raw)
        if not isinstance(manifest, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise CorruptCollectionError(f"collection {name} is damaged: {MANIFEST} is not valid JSON ({exc})") from None
    fmt = manifest.get("format")
    if not isinstance(fmt, int):
        raise CorruptCollectionError(f"collection {name} is damaged: {MANIFEST} has no integer 'format' version")
    if fmt > FORMAT_VERSION:
        raise NewerFormatError(
            f"{name} has collection format {fmt}, this geoseek reads up to {FORMAT_VERSION}: upgrade geoseek"
        )
    for key in ("dim", "metric", "backend"):
        if key not in manifest:
            raise CorruptCollectionError(f"collection {name} is damaged: {MANIFEST} lacks {key!r}")
    dim = manifest["dim"]
    if not isinstance(dim, int) or isinstance(dim, bool) or dim <= 0:
        raise DamagedFileError(name, MANIFEST, f"has an invalid dim {dim!r}")
    if manifest["metric"] not in METRICS:
        raise DamagedFileError(name, MANIFEST, f"has an unknown metric {str(manifest['metric'])[:40]!r} "
                                               f"(one of {', '.join(METRICS)})")
    if not isinstance(manifest["backend"], str) or manifest["backend"] not in BACKENDS.names():
        raise DamagedFileError(name, MANIFEST, f"names an unknown index backend {str(manifest['backend'])[:40]!r}")
    for key in ("checksums", "pending"):
        if not isinstance(manifest.get(key) or {}, dict):
            raise DamagedFileError(name, MANIFEST, f"has a malformed {key!r}")
    return manifest


def state(manifest: dict[str, Any] | None) -> tuple[Any, Any] | None:
    """What a writer compares before replacing: (build_id, generation)."""
    return None if manifest is None else (manifest.get("build_id"), manifest.get("generation"))


def state_on_disk(path: Path) -> tuple[Any, Any] | None:
    if not path.exists():
        return None
    try:
        return state(json.loads((path / MANIFEST).read_bytes()))
    except (OSError, ValueError, AttributeError):
        return ("unreadable", None)


def writer_active(manifest: dict[str, Any]) -> bool:
    """A commit is in flight: the manifest has a ``pending`` entry from a live process here."""
    pending = manifest.get("pending") or {}
    pid = pending.get("pid")
    if not isinstance(pid, int) or pid == os.getpid() or pending.get("host") != socket.gethostname():
        return False
    return _fs.pid_alive(pid)


def check_name(name: str, what: str) -> str:
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise InvalidInputError(f"{what} name {name!r} must be letters, digits, '_', '-', '.'")
    return name
