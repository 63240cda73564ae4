"""Query / top-k retrieval grids."""

from __future__ import annotations

from PIL import Image

from geoseek.sources.datasets import Fold


def test_results_figure_has_a_column_per_hit_and_the_query(trained, tmp_path):
    from geoseek.capabilities.sketch_image.figures import results_figure

    _, _, data, model, _ = trained
    fold = Fold(1, ["discs", "grid"], ["stripes"])
    png = results_figure(model, data, fold, tmp_path / "fig.png", per_class=1, top=3, rerank=5)
    assert Image.open(png).size[0] > 96 * 3
