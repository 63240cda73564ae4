"""Sketch-map test fixtures: a small scene collection of Helsinki (tiny untrained SPP-CNN, raw-pixel
rerank on), a sketch map drawn on a canvas, and a test client of the service over a collection."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

SKETCH = {
    "type": "FeatureCollection", "canvas": {"width": 200, "height": 200},
    "features": [
        {"type": "Feature", "properties": {"layer": "building"},
         "geometry": {"type": "Polygon", "coordinates": [[[10, 10], [90, 10], [90, 90], [10, 90], [10, 10]]]}},
        {"type": "Feature", "properties": {"layer": "minor_road"},
         "geometry": {"type": "LineString", "coordinates": [[0, 120], [200, 110]]}},
    ],
}


@pytest.fixture(scope="module")
def scene_collection(shared_data: Path, tmp_path_factory) -> Path:
    from geoseek.capabilities.sketchmap.build import build_scene_collection
    from geoseek.checkpoint import save_checkpoint
    from geoseek.encoders.registry import create_model

    tmp = tmp_path_factory.mktemp("sketchmap")
    torch.manual_seed(0)
    cfg = {"widths": [8, 16, 16], "hidden": 32}
    ckpt = save_checkpoint(tmp / "tiny.pt", model_name="sketchmap-sppcnn", config=cfg,
                           model=create_model("sketchmap-sppcnn", **cfg), data={"window_m": 240.0, "size": 32})
    out = tmp / "scenes"
    # with the raw-pixel rerank on, so the search tests exercise both steps
    build_scene_collection(shared_data / "osm" / "helsinki-center.osm.pbf", out, model=ckpt, progress=False, fusion_weight=1.0)
    return out


@pytest.fixture
def sketch() -> dict[str, Any]:
    """A canvas sketch map: one building block and a minor road (a fresh copy per test)."""
    return copy.deepcopy(SKETCH)


@pytest.fixture
def client() -> Callable[[Path], Any]:
    """``client(path)``: a FastAPI test client of the service over the collection at ``path`` (named ``scenes``)."""

    def _client(path: Path):
        from fastapi.testclient import TestClient

        from geoseek.service.app import create_app

        return TestClient(create_app({"scenes": path}))

    return _client
