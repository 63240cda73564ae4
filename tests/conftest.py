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
