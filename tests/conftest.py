"""Shared fixtures. Real data is read from ``<repo>/../shared/data`` (never copied in)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$GEOSEEK_DATA`` if set, else ``<repo>/../shared/data``."""
    return Path(os.environ.get("GEOSEEK_DATA", REPO.parent / "shared" / "data")).resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"real data not found at {path}: put ../shared beside the checkout or set GEOSEEK_DATA")
    return path


@pytest.fixture(scope="session", autouse=True)
def isolated_user_cache(tmp_path_factory) -> Path:
    """Caches geoseek writes for the user (``$GEOSEEK_CACHE``: the exported ONNX backbone...) go to
    a folder of this test session, never to the user's ``~/.cache`` (subprocesses inherit it)."""
    path = tmp_path_factory.mktemp("geoseek-cache")
    old = os.environ.get("GEOSEEK_CACHE")
    os.environ["GEOSEEK_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("GEOSEEK_CACHE", None)
    else:
        os.environ["GEOSEEK_CACHE"] = old
