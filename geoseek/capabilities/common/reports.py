"""JSON reports written by the evaluation and training commands."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def save_json(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` as indented, key-sorted JSON (atomically: temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)
    return path
