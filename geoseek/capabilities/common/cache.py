"""Array caches on disk: content keys and atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def cache_key(parts: Sequence[Any] | dict[str, Any], length: int = 16) -> str:
    """A short hex key for a cache entry.

    A sequence is keyed by its items' ``str`` (paths: resolve them first, so that a relative and an
    absolute spelling share one entry); a dict by its sorted JSON.
    """
    text = json.dumps(parts, sort_keys=True, default=str) if isinstance(parts, dict) else "\n".join(map(str, parts))
    return hashlib.sha1(text.encode()).hexdigest()[:length]


def atomic_save_npy(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` to ``path`` (.npy) through a temporary file, so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
    np.save(tmp, array)
    tmp.replace(path)
    return path
