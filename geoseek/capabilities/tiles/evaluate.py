"""The tiles evaluation protocol (Loc2Vec publishes no numbers; see docs/osm-tiles.md).

XYZ tiles (each seen as a window of ``tile_ground_m`` ground metres centred on it, default
:data:`~geoseek.capabilities.tiles.data.TILE_GROUND_M`) labelled with their dominant OSM land use;
leave-one-out kNN retrieval P@k / mAP by the embedding against the baselines: raw-raster kNN,
ImageNet EfficientNet-Lite0 features (no training) and random vectors; on held-out spatial
blocks, with database tiles near the query excluded.

* :func:`evaluate_tiles` — the protocol, one JSON-ready dict;
* :func:`knn_report` — the retrieval metrics of any vectors (also training's ``val_p10``);
* :func:`raw_vectors`, :func:`imagenet_vectors` — the baselines' vectors.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.capabilities.tiles.data import (
    DEFAULT_ZOOM, TASK, TILE_GROUND_M, TILE_PX, as_ground_m, embed_tiles, load_features, region_tiles,
)
from geoseek.capabilities.tiles.figures import plot_embedding_map, plot_retrieval_grid
from geoseek.errors import InvalidInputError
from geoseek.sources.layers import LABEL_MIN_FRACTION


def knn_report(vectors: np.ndarray, labels: Sequence[str], centers: np.ndarray, exclude_m: float, metric: str = "cos",
               ks: Sequence[int] = (1, 10), by_label: bool = False) -> dict[str, Any]:
    """Leave-one-out kNN retrieval by ``vectors`` (cosine, or negative squared L2 with metric="l2").

    Every tile queries all others; the query itself and tiles within ``exclude_m`` metres of it
    are removed from its ranking. Relevant = same land-use label. ``by_label`` adds
    ``p_at_10_by_label``: the mean P@10 of the queries of each label.
    """
    from geoseek.evaluate import map_at_all, precision_at_k, rank_by_scores, relevance_from_labels
    from geoseek.geo import pairwise_haversine_m

    v = np.asarray(vectors, np.float32)
    if metric == "cos":
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        scores = v @ v.T
    else:
        sq = (v.astype(np.float64) ** 2).sum(1)
        scores = -(sq[:, None] + sq[None, :] - 2 * (v @ v.T).astype(np.float64))
    rel = relevance_from_labels(labels, labels)
    exclude = pairwise_haversine_m(centers, centers) < max(exclude_m, 1e-6)
    np.fill_diagonal(exclude, True)
    ranked = rank_by_scores(scores, rel, exclude)
    n_rel = (rel & ~exclude).sum(1)
    out = {"map": map_at_all(ranked, n_rel)}
    for k in ks:
        out[f"p_at_{k}"] = precision_at_k(ranked, k)
    if by_label:
        per_query = (ranked[:, :10] > 0).sum(1) / 10
        lab = np.asarray(labels, dtype=object)
        out["p_at_10_by_label"] = {str(c): float(per_query[lab == c].mean()) for c in sorted(set(labels))}
    return out


MACRO_MIN_QUERIES = 20
"""A land-use label joins ``macro_p_at_10`` when it has at least this many query tiles."""


def macro_p_at_10(by_label: dict[str, float], counts: dict[str, int], min_queries: int = MACRO_MIN_QUERIES) -> float | None:
    """Mean of the per-label P@10 over labels with >= ``min_queries`` query tiles (None if no label has that many).

    Plain P@10 is dominated by the most common label (a forest region's raw kNN scores 0.76 with
    chance at 0.64); the macro mean weighs each well-represented land use alike."""
    vals = [v for k, v in by_label.items() if counts.get(k, 0) >= min_queries]
    return float(np.mean(vals)) if vals else None


def raw_vectors(tiles: np.ndarray, pool: int = 1) -> np.ndarray:
    """The raw-raster baseline: (N, C, H, W) uint8 tiles → (N, C·H·W / pool²) float32 in [0, 1]
    (optionally average-pooled by ``pool``); compared by L2 (``knn_report(..., metric="l2")``)."""
    t = tiles.astype(np.float32) / 255.0
    if pool > 1:
        n, c, h, w = t.shape
        t = t.reshape(n, c, h // pool, pool, w // pool, pool).mean((3, 5))
    return t.reshape(len(t), -1)


def imagenet_vectors(tiles: np.ndarray, batch: int = 64) -> np.ndarray:
    """EfficientNet-Lite0 ImageNet features (no training) of the tiles' RGB map-style renders."""
    import torch

    from geoseek.encoders.backbones import LITE_MEAN, LITE_STD, efficientnet_lite0
    from geoseek.sources.render import to_rgb

    model = efficientnet_lite0(pretrained=True, num_classes=0).eval()
    mean = torch.tensor(LITE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(LITE_STD).view(1, 3, 1, 1)
    out = []
    with torch.no_grad():
        for i in range(0, len(tiles), batch):
            rgb = np.stack([to_rgb(t) for t in tiles[i : i + batch]]).transpose(0, 3, 1, 2)
            x = (torch.from_numpy(rgb).float() / 255.0 - mean) / std
            out.append(model(x).numpy())
    return np.concatenate(out)


def evaluate_tiles(
    region: str | Path,
    model: str | Path = "default",
    *,
    zoom: int = DEFAULT_ZOOM,
    split: str | None = None,
    exclude_m: float = 1000.0,
    min_fraction: float = LABEL_MIN_FRACTION,
    baselines: Sequence[str] = ("raw", "imagenet", "random"),
    seed: int = 0,
    progress: bool = False,
    figures: str | Path | None = None,
    protocols: Sequence[str] = ("hidden", "visible"),
    min_content_hidden: float = 0.01,
    tile_ground_m: float | None = TILE_GROUND_M,
) -> dict[str, Any]:
    """Our land-use retrieval protocol; see docs/osm-tiles.md.

    ``tile_ground_m``: every method sees each tile as a window of this many ground metres centred
    on it (:func:`~geoseek.capabilities.tiles.data.render_tile`), and its label is read from that
    window; None or 0: the XYZ tile itself (306 m × cos(lat) at z17). Reported as ``tile_ground_m``
    (0 for the XYZ render).

    ``protocols``: "hidden" blanks the land-use channels of every tile before any method sees
    it (labels come from them, so they must not be in the input; tiles with under
    ``min_content_hidden`` of their pixels left are dropped); "visible" keeps them. The first
    protocol's figures are unprefixed (``p_at_10``, ``raw_p_at_10``...), the others are prefixed
    (``visible_p_at_10``...).

    ``figures``: a directory to write ``tiles-embedding-<region>.png`` (2-D t-SNE of the
    embeddings coloured by land use) and ``tiles-retrieval-<region>.png`` (queries and their
    nearest tiles beyond ``exclude_m``).

    ``split``: "test" (tiles wholly inside held-out blocks of the model's spatial split: use
    it for the region the model was trained on), "all" (a region it never saw). Default: "test"
    when the model's training region has the same file name as ``region``, else "all".
    """
    from geoseek.checkpoint import load_model
    from geoseek.sources.tile_sampler import SpatialSplit, hide_land_use

    t0 = time.time()
    ground_m = as_ground_m(tile_ground_m)
    protocols = list(protocols)
    net, payload = load_model(model, TASK) if str(model) == "default" else load_model(model)
    trained_on = payload.get("data", {}).get("source", "")
    sources = payload.get("data", {}).get("sources") or [trained_on]
    has_split = bool(payload.get("data", {}).get("split"))
    if split is None:
        split = "test" if has_split and Path(region).name in sources else "all"
    if split != "all" and not has_split:
        raise InvalidInputError(f"the model was trained with no held-out blocks: there is no {split!r} split (use --split all)")
    split_cfg = None
    if payload.get("data", {}).get("split"):
        s = payload["data"]["split"]
        split_cfg = SpatialSplit(block_m=s["block_m"], holdout=s["holdout"], seed=s["seed"])
    features = load_features(region)
    et = region_tiles(features, zoom, TILE_PX, split, split_cfg, progress, min_fraction, ground_m)
    lab = np.array([l is not None for l in et.labels])
    if lab.sum() < 20:
        raise InvalidInputError(f"only {int(lab.sum())} labelled tiles in {region} ({split} split): too few to evaluate")
    tiles, labels, centers = et.tiles[lab], [l for l in et.labels if l is not None], et.centers[lab]
    counts = {k: labels.count(k) for k in sorted(set(labels))}
    result: dict[str, Any] = {
        "region": Path(region).name,
        "model": str(model),
        "model_name": payload["model"],
        "trained_on": trained_on,
        "split": split,
        "zoom": zoom,
        "tile_ground_m": ground_m or 0.0,
        "tiles": int(len(et.labels)),
        "labelled_tiles": int(lab.sum()),
        "all_label_counts": counts,
        "exclude_m": exclude_m,
        "all_chance_p_at_10": float(sum(c * (c - 1) for c in counts.values()) / max(len(labels) * (len(labels) - 1), 1)),
    }
    figure_data = None
    for proto in protocols:
        if proto == "hidden":
            p_tiles = hide_land_use(tiles)
            # a tile with nothing left to see (pure land use) says nothing about any method
            seen = p_tiles.any(1).reshape(len(p_tiles), -1).mean(1) >= min_content_hidden
            p_tiles, p_labels, p_centers = p_tiles[seen], [l for l, s in zip(labels, seen) if s], centers[seen]
        elif proto == "visible":
            p_tiles, p_labels, p_centers = tiles, labels, centers
        else:
            raise InvalidInputError(f"unknown protocol {proto!r}: use hidden and/or visible")
        pre = "" if proto == protocols[0] else f"{proto}_"
        pc = {k: p_labels.count(k) for k in sorted(set(p_labels))}
        result[f"{pre}protocol"] = proto
        result[f"{pre}query_tiles"] = len(p_labels)
        result[f"{pre}label_counts"] = pc
        result[f"{pre}chance_p_at_10"] = float(sum(c * (c - 1) for c in pc.values()) / max(len(p_labels) * (len(p_labels) - 1), 1))
        t_emb = time.time()
        emb = embed_tiles(net, p_tiles)
        result[f"{pre}embed_tiles_per_s"] = len(p_tiles) / max(time.time() - t_emb, 1e-9)
        if figure_data is None:
            figure_data = (p_tiles, emb, p_labels, p_centers, proto)
        for k, v in knn_report(emb, p_labels, p_centers, exclude_m, by_label=True).items():
            result[f"{pre}{k}"] = v
        if "raw" in baselines:
            for k, v in knn_report(raw_vectors(p_tiles), p_labels, p_centers, exclude_m, metric="l2", by_label=True).items():
                result[f"{pre}raw_{k}"] = v
        if "imagenet" in baselines:
            try:
                for k, v in knn_report(imagenet_vectors(p_tiles), p_labels, p_centers, exclude_m).items():
                    result[f"{pre}imagenet_{k}"] = v
            except FileNotFoundError as exc:
                result["imagenet_error"] = str(exc)
        if "random" in baselines:
            rnd = np.random.default_rng(seed).standard_normal((len(p_tiles), 128)).astype(np.float32)
            for k, v in knn_report(rnd, p_labels, p_centers, exclude_m).items():
                result[f"{pre}random_{k}"] = v
        for m in ("", "raw_"):  # macro P@10: mean over the labels with >= MACRO_MIN_QUERIES query tiles
            by = result.get(f"{pre}{m}p_at_10_by_label")
            if by is not None:
                result[f"{pre}{m}macro_p_at_10"] = macro_p_at_10(by, pc)
        result[f"{pre}macro_labels"] = [k for k, c in pc.items() if c >= MACRO_MIN_QUERIES]
        if result.get(f"{pre}raw_p_at_10"):
            result[f"{pre}ratio_vs_raw"] = result[f"{pre}p_at_10"] / result[f"{pre}raw_p_at_10"]
    result["seconds"] = time.time() - t0
    if figures is not None:
        stem = Path(region).name.split(".")[0]
        fdir = Path(figures)
        fdir.mkdir(parents=True, exist_ok=True)
        tiles, emb, labels, centers, proto = figure_data
        scale = f", {ground_m:g} m windows" if ground_m else ""
        title = f"{stem}: {payload['model']} ({split} tiles, z{zoom}{scale}, land use {proto})"
        result["figures"] = [
            str(plot_embedding_map(emb, labels, fdir / f"tiles-embedding-{stem}.png", title, seed)),
            str(plot_retrieval_grid(tiles, emb, labels, centers, exclude_m, fdir / f"tiles-retrieval-{stem}.png", title, seed)),
        ]
    return result
