"""Where geoseek finds the public datasets (read by the CLI, the demo and the benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "GEOSEEK_DATA"


def default_data_dir() -> Path:
    """Where the public datasets live: ``$GEOSEEK_DATA``, else ``../shared/data`` beside the repo."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"
