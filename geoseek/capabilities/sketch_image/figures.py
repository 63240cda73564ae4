"""Sketch → image figures: query / top-k retrieval grids as in MLAGT's figures 4–5."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from geoseek.capabilities.sketch_image.data import SketchImageData
from geoseek.capabilities.sketch_image.encode import encode_images, encode_sketches
from geoseek.capabilities.sketch_image.encode import rerank as rerank_fn
from geoseek.encoders.sketch_image import MLAGT
from geoseek.errors import InvalidInputError
from geoseek.sources.datasets import Fold


@torch.no_grad()
def results_figure(
    model: MLAGT,
    data: SketchImageData,
    fold: Fold,
    out: str | Path,
    per_class: int = 1,
    top: int = 5,
    rerank: int = 100,
    real: bool = False,
    cell: int = 96,
) -> Path:
    """A grid as MLAGT's figures 4–5: each row a sketch query of an unseen class and its top-``top``
    gallery images, framed green (right class) or red (wrong class)."""
    from PIL import ImageDraw as _Draw

    ug = data.select(fold.unseen, "gallery")
    rows: list[tuple[np.ndarray, str]] = []
    for c in fold.unseen:
        if real:
            sel = [i for i, l in enumerate(data.real_labels) if l == c][:per_class]
            rows += [(np.asarray(data.real[i]), c) for i in sel]
        else:
            sel = data.select([c], "query")[:per_class]
            rows += [(np.asarray(data.sketches[i, 0]), c) for i in sel]
    if not rows:
        raise InvalidInputError("no queries for the figure")
    inks = np.stack([r[0] for r in rows])
    es, st = encode_sketches(model, inks)
    ei, it = encode_images(model, data.features[ug])
    scores = es @ ei.T
    if rerank > 0:
        scores = rerank_fn(model, st, scores, it, rerank)
    pad, label_h = 6, 14
    W = (top + 1) * (cell + pad) + pad
    H = len(rows) * (cell + pad + label_h) + pad
    canvas = Image.new("RGB", (W, H), "white")
    draw = _Draw.Draw(canvas)
    labels = data.labels
    for r, (ink, cls) in enumerate(rows):
        y = pad + r * (cell + pad + label_h)
        sk = Image.fromarray(((1 - np.asarray(ink, np.float32) / (255.0 if ink.max() > 1.5 else 1.0)) * 255).astype(np.uint8)).resize((cell, cell))
        canvas.paste(sk.convert("RGB"), (pad, y))
        draw.rectangle([pad - 1, y - 1, pad + cell, y + cell], outline="black")
        draw.text((pad, y + cell + 1), f"query: {cls}", fill="black")
        order = np.argsort(-scores[r])[:top]
        for j, gi in enumerate(order):
            idx = ug[gi]
            x = pad + (j + 1) * (cell + pad)
            img = Image.open(data.samples[idx].path).convert("RGB").resize((cell - 6, cell - 6))
            ok = labels[idx] == cls
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=(0, 170, 0) if ok else (220, 0, 0))
            canvas.paste(img, (x + 3, y + 3))
            draw.text((x, y + cell + 1), str(labels[idx])[:16], fill=(0, 120, 0) if ok else (200, 0, 0))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return out
