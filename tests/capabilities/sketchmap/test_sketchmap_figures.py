"""The sketch-map figure: a small region (fewer queries or scenes than rows and columns asked) still draws."""

from __future__ import annotations

import numpy as np
import pytest


def _data(n_scenes: int):
    from geoseek.capabilities.sketchmap.data import SceneSet, SketchMapData

    rng = np.random.default_rng(0)
    r = (rng.random((n_scenes, 14, 16, 16)) > 0.9).astype(np.uint8) * 255
    idx = np.arange(n_scenes)
    return SketchMapData(SceneSet(r, np.zeros((n_scenes, 4)), np.zeros((n_scenes, 4))), idx, idx[:1], idx[:1],
                         r[:, None], r[:1]), r


@pytest.mark.parametrize(("n_scenes", "n_queries"), [(3, 1), (8, 2)])
def test_figure_with_fewer_queries_and_scenes_than_asked(tmp_path, n_scenes, n_queries):
    from PIL import Image

    from geoseek.capabilities.sketchmap.figures import figure_top5
    from geoseek.encoders.registry import create_model

    data, r = _data(n_scenes)
    model = create_model("sketchmap-sppcnn", widths=[8, 16, 16], hidden=32).eval()
    out = figure_top5(model, data, r[:n_queries], np.arange(n_queries), tmp_path / "f.png", n=4, k=5)
    w, h = Image.open(out).size
    assert h < w  # rows = queries shown (1 or 2), columns = min(k, scenes) + 1


def test_figure_without_queries_is_a_clear_error(tmp_path):
    from geoseek.capabilities.sketchmap.figures import figure_top5
    from geoseek.encoders.registry import create_model
    from geoseek.errors import InvalidInputError

    data, r = _data(3)
    model = create_model("sketchmap-sppcnn", widths=[8, 16, 16], hidden=32).eval()
    with pytest.raises(InvalidInputError):
        figure_top5(model, data, r[:0], np.arange(0), tmp_path / "f.png")
