"""Where geoseek finds the public datasets and keeps its run folders (read by the CLI, the demo, the benchmarks)."""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "GEOSEEK_DATA"
CACHE_ENV = "GEOSEEK_CACHE"


def repo_dir() -> Path:
    """The checkout's root folder (the one holding the ``geoseek`` package)."""
    return Path(__file__).resolve().parents[1]


def default_runs_dir(name: str) -> Path:
    """``<repo>/runs/<name>``: the default work folder of an evaluation (feature caches, trained models)."""
    return repo_dir() / "runs" / name


def default_data_dir() -> Path:
    """Where the public datasets live: ``$GEOSEEK_DATA``, else ``../shared/data`` beside the repo."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env)
    return repo_dir().parent / "shared" / "data"


def user_cache_dir() -> Path:
    """geoseek's per-user cache of derived files (e.g. the exported ONNX backbone):
    ``$GEOSEEK_CACHE``, else ``$XDG_CACHE_HOME/geoseek``, else ``~/.cache/geoseek``. Not created here."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "geoseek"
