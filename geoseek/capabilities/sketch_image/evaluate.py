"""Sketch → image evaluation: the MLAGT paper's zero-shot protocol, its metrics, and the
training-free baselines beside it (HOG on edges, pooled ImageNet features)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from geoseek.capabilities.sketch_image.data import SketchImageData, ensure_sketch_features
from geoseek.capabilities.sketch_image.encode import encode_images, encode_sketches
from geoseek.capabilities.sketch_image.encode import rerank as rerank_fn
from geoseek.encoders.sketch_image import IMAGE_SIZE, MLAGT
from geoseek.sources.datasets import Fold
from geoseek.sources.sketch import DEFAULT_SIZE


# ---------------------------------------------------------------------------------- metrics
def _report(scores: np.ndarray, q_labels: Sequence[str], g_labels: Sequence[str]) -> dict[str, float]:
    from geoseek.evaluate import map_at_all, precision_at_k, rank_by_scores, relevance_from_labels

    rel = rank_by_scores(scores, relevance_from_labels(q_labels, g_labels))
    return {
        "map": 100 * map_at_all(rel),
        "p@10": 100 * precision_at_k(rel, 10),
        "p@50": 100 * precision_at_k(rel, 50),
        "p@100": 100 * precision_at_k(rel, 100),
        "queries": int(len(q_labels)),
        "gallery": int(len(g_labels)),
    }


def evaluate_split(
    model: MLAGT,
    data: SketchImageData,
    q_idx: np.ndarray,
    g_idx: np.ndarray,
    rerank_top: int | None = None,
    rerank: int = 100,
    real: bool = False,
    real_classes: Sequence[str] | None = None,
) -> dict[str, float]:
    """Retrieval metrics (percent) of sketch queries against gallery images.

    Queries are the variant-0 synthesized sketches of ``q_idx`` or, with ``real``, the Quick,
    Draw! sketches of ``real_classes``. ``rerank`` > 0 re-ranks each query's top ``rerank``.
    """
    rerank = rerank if rerank_top is None else rerank_top
    feats = None
    have = data.features_match(model)  # precomputed in the model's precision, at its backbone cut
    if real:
        sel = [i for i, l in enumerate(data.real_labels) if l in set(real_classes or [])]
        if not sel:
            return {}
        inks = data.real[sel]
        q_labels = [data.real_labels[i] for i in sel]
        if data.real_features is not None and have:
            feats = data.real_features[sel]
    else:
        inks = np.asarray(data.sketches[q_idx, 0])
        q_labels = list(data.labels[q_idx])
        if data.sketch_features is not None and have:
            feats = data.sketch_features[q_idx]
    if len(inks) == 0 or len(g_idx) == 0:
        return {}
    es, st = encode_sketches(model, inks, features=feats)
    ei, it = encode_images(model, data.features[g_idx])
    scores = es @ ei.T
    if rerank > 0:
        scores = rerank_fn(model, st, scores, it, rerank)
    return _report(scores, q_labels, list(data.labels[g_idx]))


# --------------------------------------------------------------------------------- baselines
def hog_features(inks_or_gray: np.ndarray, cells: int = 8, bins: int = 9) -> np.ndarray:
    """A small HOG descriptor (N, cells·cells·bins) of (N, H, W) grayscale/ink maps, L2-normalized."""
    x = torch.from_numpy(np.asarray(inks_or_gray, np.float32))[:, None]
    kx = torch.tensor([[-1.0, 0, 1]]).view(1, 1, 1, 3)
    ky = kx.transpose(2, 3)
    gx = F.conv2d(F.pad(x, (1, 1, 0, 0), mode="replicate"), kx)
    gy = F.conv2d(F.pad(x, (0, 0, 1, 1), mode="replicate"), ky)
    mag = torch.hypot(gx, gy)
    ang = torch.atan2(gy, gx) % np.pi
    b = (ang / np.pi * bins).long().clamp_max(bins - 1)
    hist = torch.zeros(x.shape[0], bins, *x.shape[-2:])
    hist.scatter_(1, b, mag)
    h = F.adaptive_avg_pool2d(hist, cells).flatten(1)
    h = F.normalize(h, dim=1).clamp_max(0.2)
    return F.normalize(h, dim=1).numpy()


def image_edges(paths: Sequence[Path], size: int = DEFAULT_SIZE) -> np.ndarray:
    """(N, size, size) Sobel edge magnitude maps of images (the edge side of the HOG baseline)."""
    from geoseek.sources.sketch import _sobel_magnitude

    out = []
    for p in paths:
        g = np.asarray(Image.open(p).convert("L").resize((size, size)), np.float32) / 255.0
        m = _sobel_magnitude(g)
        out.append(m / (m.max() + 1e-6))
    return np.stack(out)


@torch.no_grad()
def imagenet_sketch_features(inks: np.ndarray, batch: int = 64) -> np.ndarray:
    """Pooled EfficientNet-Lite0 features (N, 1280) of sketches drawn black on white at 224 px."""
    from geoseek.encoders.sketch_image import image_backbone

    m = image_backbone()
    out = []
    for i in range(0, len(inks), batch):
        x = torch.from_numpy(np.asarray(inks[i : i + batch], np.float32))
        if x.max() > 1.5:
            x = x / 255.0
        x = F.interpolate(1 - x[:, None], size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear").expand(-1, 3, -1, -1)
        out.append(m.forward_head(m.forward_features((x - 0.5) / 0.5), pre_logits=True))
    return F.normalize(torch.cat(out), dim=1).numpy()


def baseline_scores(kind: str, data: SketchImageData, q_idx: np.ndarray, g_idx: np.ndarray, real_sel: list[int] | None = None) -> np.ndarray:
    """Sketch × gallery scores of a training-free baseline: "imagenet" or "hog"."""
    inks = data.real[real_sel] if real_sel is not None else np.asarray(data.sketches[q_idx, 0])
    if kind == "imagenet":
        cached = data.real_features if real_sel is not None else data.sketch_features
        if data.sketch_features_dtype != "float32" or data.sketch_features_stages:
            cached = None  # the baseline is the float32 backbone
        if cached is not None:  # the same rendering and backbone, already computed: pool it
            sel = real_sel if real_sel is not None else q_idx
            q = F.normalize(torch.from_numpy(np.asarray(cached[sel], np.float32)).mean((2, 3)), dim=1).numpy()
        else:
            q = imagenet_sketch_features(inks)
        g = F.normalize(torch.from_numpy(np.asarray(data.features[g_idx], np.float32)).mean((2, 3)), dim=1).numpy()
    elif kind == "hog":
        q = hog_features(np.asarray(inks, np.float32) / 255.0)
        g = hog_features(image_edges([data.samples[i].path for i in g_idx]))
    else:
        raise ValueError(kind)
    return q @ g.T


# ---------------------------------------------------------------------------------- protocol
def evaluate_fold(model: MLAGT, data: SketchImageData, fold: Fold, rerank: int = 100, ablations: bool = True, baselines: bool = True) -> dict[str, Any]:
    """The paper's protocol on one fold: seen / unseen metrics, ablations and baselines."""
    out: dict[str, Any] = {"fold": fold.index, "unseen_classes": fold.unseen}
    if getattr(model, "needs_sketch_features", False):
        ensure_sketch_features(data, dtype=model.sketch_backbone_dtype, stages=getattr(model, "sketch_finetune_stages", 0))
    sq, sg = data.select(fold.seen, "query", 1), data.select(fold.seen, "gallery", 1)
    uq, ug = data.select(fold.unseen, "query"), data.select(fold.unseen, "gallery")
    out["seen"] = evaluate_split(model, data, sq, sg, rerank=rerank) if len(sq) and len(sg) else {}
    out["unseen"] = evaluate_split(model, data, uq, ug, rerank=rerank)
    if ablations:
        out["unseen_no_rerank"] = evaluate_split(model, data, uq, ug, rerank=0)
        model.filtering = False
        try:
            out["unseen_no_filter"] = evaluate_split(model, data, uq, ug, rerank=rerank)
        finally:
            model.filtering = True
        real_classes = [c for c in fold.unseen if c in data.real_labels]
        if real_classes:
            rg = data.select(real_classes, "gallery")
            out["unseen_real"] = evaluate_split(model, data, uq, rg, rerank=rerank, real=True, real_classes=real_classes)
            out["unseen_real"]["classes"] = real_classes
            out["unseen_synth_same_classes"] = evaluate_split(model, data, data.select(real_classes, "query"), rg, rerank=rerank)
    if baselines:
        for kind in ("imagenet", "hog"):
            for name, q, g in (("unseen", uq, ug), ("seen", sq, sg)):
                if len(q) and len(g):
                    out[f"baseline_{kind}_{name}"] = _report(baseline_scores(kind, data, q, g), list(data.labels[q]), list(data.labels[g]))
    return out


def summarize(folds: list[dict[str, Any]]) -> dict[str, Any]:
    """Average fold metrics; top-level keys ``seen_map``, ``unseen_map``, ``seen_p@10``... (percent)."""
    summary: dict[str, Any] = {}
    keys = sorted({k for f in folds for k, v in f.items() if isinstance(v, dict)})
    for key in keys:
        vals = [f[key] for f in folds if key in f]
        for metric in ("map", "p@10", "p@50", "p@100"):
            xs = [v[metric] for v in vals if metric in v]
            if xs:
                summary[f"{key}_{metric}"] = round(float(np.mean(xs)), 2)
    summary["unseen_map_per_fold"] = [round(f["unseen"]["map"], 2) for f in folds]
    return summary

