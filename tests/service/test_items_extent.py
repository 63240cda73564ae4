"""The collection's ``items_bbox``: the extent of its items' footprints, without a few far-off ones;
the web page fits its first view to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from geoseek.service.routes.collections import items_extent


def test_items_bbox_is_the_extent_of_the_items_footprints(client: TestClient, scenes_path: Path) -> None:
    from geoseek.collection import Collection

    boxes = np.array([it.footprint for it in Collection.open(scenes_path).items()], dtype=np.float64)
    want = (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())
    c = client.get("/collections/scenes").json()
    assert c["items_bbox"] == pytest.approx(want)  # 24 items: nothing left out
    assert c["items_bbox"] == pytest.approx(c["bbox"])
    assert c["items_bbox"] == pytest.approx((14.40, 35.85, 14.46, 35.89))


def test_far_off_items_are_left_out_of_the_first_view() -> None:
    # 20 × 20 cells of 0.01° over Malta and 2 tiles far out at sea (north-east)
    w, s = np.meshgrid(14.2 + 0.01 * np.arange(20), 35.8 + 0.01 * np.arange(20))
    boxes = np.c_[w.ravel(), s.ravel(), w.ravel() + 0.01, s.ravel() + 0.01]
    boxes = np.vstack([boxes, [[14.83, 36.70, 14.84, 36.71], [14.80, 36.5, 14.81, 36.51]]])
    points = np.c_[(boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2]
    assert items_extent(points, boxes) == pytest.approx((14.2, 35.8, 14.4, 36.0))
    assert items_extent(points, boxes, share=0.0) == pytest.approx((14.2, 35.8, 14.84, 36.71))
    # below 1 / share items nothing is left out, however far
    assert items_extent(points[-3:], boxes[-3:]) == pytest.approx((14.39, 35.99, 14.84, 36.71))
    assert items_extent(np.zeros((0, 2)), np.zeros((0, 4))) is None


def test_collection_api_reports_the_items_view(far_off_points: Path) -> None:
    from geoseek.service.app import create_app

    with TestClient(create_app({"pts": far_off_points})) as client:
        c = client.get("/collections/pts").json()
    assert c["bbox"] == pytest.approx((14.2, 35.8, 14.83, 36.70))
    assert c["items_bbox"] == pytest.approx((14.2, 35.8, 14.39, 35.99))
