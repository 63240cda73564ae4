"""Sketch-map figures: sketch queries beside their top-k scenes (``geoseek eval sketchmap --figure``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from geoseek.capabilities.sketchmap.data import SketchMapData
from geoseek.capabilities.sketchmap.vectors import embed


def figure_top5(
    model: torch.nn.Module, data: SketchMapData, queries: np.ndarray, truth: np.ndarray, path: str | Path, n: int = 4, k: int = 5
) -> Path:
    """Save a PNG: each row a sketch query and its top-``k`` scenes (the true scene framed green).

    Shows ``min(n, len(queries))`` rows and ``min(k, number of scenes)`` hits per row (a small
    region may have fewer held-out queries or scenes than asked for).
    """
    from geoseek.errors import InvalidInputError

    n, k = min(n, len(queries)), min(k, len(data.scenes.rasters))
    if n < 1 or k < 1:
        raise InvalidInputError("the figure needs at least one query sketch and one scene")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geoseek.sources.render import to_rgb

    db = embed(model, data.scenes.rasters)
    q = embed(model, queries[:n])
    order = np.argsort(-(q @ db.T), axis=1)[:, :k]
    fig, axes = plt.subplots(n, k + 1, figsize=(1.8 * (k + 1), 1.9 * n), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(to_rgb(queries[i]))
        axes[i, 0].set_title("sketch", fontsize=8)
        for j in range(k):
            s = int(order[i, j])
            ax = axes[i, j + 1]
            ax.imshow(to_rgb(data.scenes.rasters[s]))
            hit = s == int(truth[i])
            ax.set_title(f"#{j + 1}{' (true)' if hit else ''}", fontsize=8, color="green" if hit else "black")
            for sp in ax.spines.values():
                sp.set_edgecolor("green" if hit else "#bbbbbb")
                sp.set_linewidth(3 if hit else 0.5)
        for ax in axes[i]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
