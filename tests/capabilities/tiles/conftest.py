"""Tiles test fixtures: central Helsinki's OSM file, and a 2-step model with the collection it builds.

Everything runs in-process (``geoseek.cli.main``) with a 2-step model, so the tiles tests stay
within a few tens of seconds on two cores; the model and collection are built once per session.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from geoseek.cli import main


@pytest.fixture(scope="session")
def helsinki(shared_data) -> Path:
    return shared_data / "osm" / "helsinki-center.osm.pbf"


@pytest.fixture(scope="session")
def built(helsinki, tmp_path_factory):
    """(model path, collection path): a 2-step model and the collection it builds."""
    tmp = tmp_path_factory.mktemp("tiles")
    model = tmp / "m.pt"
    # Helsinki's extract is ~1 × 1.7 km: negatives at >= 600 m instead of 2 km, no held-out blocks
    rc = main(["train", "tiles", str(helsinki), "--out", str(model), "--steps", "2", "--batch", "4",
               "--validate-every", "1", "--val-triplets", "4", "--d-neg", "600", "--split-holdout", "0",
               "--hard-after", "1", "--size", "64", "--json"])
    assert rc == 0 and model.is_file()
    col = tmp / "col"
    assert main(["build", "osm", str(helsinki), "--out", str(col), "--model", str(model), "--json"]) == 0
    return model, col


@pytest.fixture
def last_json() -> Callable[..., dict]:
    """The JSON object on the last line a CLI command printed (``last_json(capsys)``)."""

    def read(capsys) -> dict:
        out = capsys.readouterr().out.strip().splitlines()
        return json.loads(out[-1])

    return read
