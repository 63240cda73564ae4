"""The tiles capability's figures: a t-SNE map of tile embeddings and a retrieval grid (PNG files).

Both are drawn by :func:`geoseek.capabilities.tiles.evaluate.evaluate_tiles` with ``figures=DIR``
(``geoseek eval tiles --figures DIR``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def plot_embedding_map(emb: np.ndarray, labels: Sequence[str], out: str | Path, title: str = "", seed: int = 0) -> Path:
    """2-D t-SNE (scikit-learn) of embeddings (N, D), points coloured by land-use label; PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.manifold import TSNE

    from geoseek.sources.layers import LAND_USE_LAYERS

    palette = plt.get_cmap("tab10")
    xy = TSNE(n_components=2, perplexity=min(30.0, max(5.0, len(emb) / 10)), init="pca", random_state=seed).fit_transform(emb)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=110)
    for name in sorted(set(labels)):
        m = np.array([l == name for l in labels])
        color = palette(LAND_USE_LAYERS.index(name) if name in LAND_USE_LAYERS else 9)
        ax.scatter(xy[m, 0], xy[m, 1], s=9, color=color, label=f"{name} ({int(m.sum())})", edgecolors="none")
    ax.legend(markerscale=2, fontsize=8, loc="best")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"t-SNE of tile embeddings by dominant land use\n{title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)


def plot_retrieval_grid(
    tiles: np.ndarray, emb: np.ndarray, labels: Sequence[str], centers: np.ndarray, exclude_m: float,
    out: str | Path, title: str = "", seed: int = 0, n_queries: int = 6, k: int = 6,
) -> Path:
    """Rows: a query tile (one per land use where possible) then its k nearest beyond ``exclude_m``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from geoseek.geo import pairwise_haversine_m
    from geoseek.sources.render import to_rgb

    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, l in enumerate(labels):
        by_label.setdefault(l, []).append(i)
    queries = [int(rng.choice(v)) for _, v in sorted(by_label.items(), key=lambda kv: -len(kv[1]))][:n_queries]
    while len(queries) < min(n_queries, len(labels)):
        queries.append(int(rng.integers(len(labels))))
    e = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(1.6 * (k + 1), 1.75 * len(queries)), dpi=100)
    axes = np.atleast_2d(axes)
    for r, q in enumerate(queries):
        s = e @ e[q]
        far = pairwise_haversine_m(centers[q : q + 1], centers)[0] >= max(exclude_m, 1e-6)
        s = np.where(far, s, -np.inf)
        order = np.argsort(-s)[:k]
        for c, idx in enumerate([q, *order.tolist()]):
            ax = axes[r, c]
            ax.imshow(to_rgb(tiles[idx]))
            ax.set_xticks([])
            ax.set_yticks([])
            ok = c == 0 or labels[idx] == labels[q]
            ax.set_title(("query: " if c == 0 else "") + labels[idx], fontsize=7, color="black" if ok else "red")
    fig.suptitle(f"nearest tiles by embedding (> {exclude_m:.0f} m away; red = other land use)\n{title}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return Path(out)
