"""How close synthesized sketches are to real ones: raster statistics and a real-vs-synthesized classifier.

Statistics of an ink map (computed the same way on every kind of sketch, at ``DEFAULT_SIZE`` px
after the query-time preprocessing, ink = value > 0.25, low enough for the thin pencil lines of
the Earth on Canvas scans):

* ``density``: share of ink pixels;
* ``components``: 8-connected ink components (a proxy of separate strokes / shapes);
* ``skeleton``: length of the one-pixel skeleton (Zhang–Suen thinning), in sketch sides (px / size);
* ``endpoints`` / ``junctions``: skeleton pixels with one skeleton neighbour / clusters of
  skeleton pixels with three or more (open stroke ends and crossings; stroke count ≈
  endpoints / 2 + closed shapes);
* ``width``: mean pen width, px (ink pixels / skeleton pixels);
* ``extent``: share of the canvas inside the ink bounding box.

:func:`realism_table` compares real sketches (Quick, Draw! drawings of the mapped classes, the
Earth on Canvas drawings) with the outline synthesizer (:func:`~geoseek.sources.sketch.synthesize_sketch`)
and the drawn-style one (:func:`~geoseek.sources.drawn_sketch.drawn_sketch`): mean statistics per set
and the stratified 5-fold cross-validated accuracy of a logistic regression (standardized
statistics) that tells a real set from a synthesized one (balanced by subsampling; 0.5 =
indistinguishable).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.sources.sketch import DEFAULT_SIZE

STAT_NAMES = ("density", "components", "skeleton", "endpoints", "junctions", "width", "extent")


def _neighbours(m: np.ndarray) -> tuple[np.ndarray, ...]:
    """The 8 neighbours P2..P9 (clockwise from north) of every pixel of a padded boolean map."""
    p = np.pad(m, 1)
    h, w = m.shape
    at = lambda dy, dx: p[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]  # noqa: E731
    return at(-1, 0), at(-1, 1), at(0, 1), at(1, 1), at(1, 0), at(1, -1), at(0, -1), at(-1, -1)


def skeletonize(mask: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """Zhang–Suen thinning of a boolean (H, W) map → its one-pixel skeleton (boolean)."""
    m = mask.astype(bool).copy()
    for _ in range(max_iter):
        changed = False
        for step in (0, 1):
            n = _neighbours(m)
            nb = [x.astype(np.int8) for x in n]
            b = sum(nb)
            seq = nb + nb[:1]
            a = sum(((seq[i] == 0) & (seq[i + 1] == 1)).astype(np.int8) for i in range(8))
            p2, p3, p4, p5, p6, p7, p8, p9 = n
            if step == 0:
                c = ~(p2 & p4 & p6) & ~(p4 & p6 & p8)
            else:
                c = ~(p2 & p4 & p8) & ~(p2 & p6 & p8)
            rm = m & (b >= 2) & (b <= 6) & (a == 1) & c
            if rm.any():
                m &= ~rm
                changed = True
        if not changed:
            break
    return m


def sketch_statistics(ink: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """The :data:`STAT_NAMES` statistics (7,) of one ink map (H, W) in [0, 1] (or uint8)."""
    from scipy import ndimage

    x = np.asarray(ink, np.float32)
    if x.max() > 1.5:
        x = x / 255.0
    m = x > threshold
    size = m.shape[0]
    ink_px = int(m.sum())
    if ink_px == 0:
        return np.zeros(len(STAT_NAMES))
    _, comps = ndimage.label(m, structure=np.ones((3, 3)))
    sk = skeletonize(m)
    nsk = max(int(sk.sum()), 1)
    deg = sum(x.astype(np.int8) for x in _neighbours(sk))
    ends = int((sk & (deg == 1)).sum())
    junc = int(ndimage.label(sk & (deg >= 3), structure=np.ones((3, 3)))[1])  # crossings, not pixels
    ys, xs = np.nonzero(m)
    extent = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1) / m.size
    return np.array([ink_px / m.size, comps, nsk / size, ends, junc, ink_px / nsk, extent], np.float64)


def statistics(inks: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """(N, 7) :func:`sketch_statistics` of N ink maps."""
    return np.stack([sketch_statistics(i) for i in inks]) if len(inks) else np.zeros((0, len(STAT_NAMES)))


def separability(a: np.ndarray, b: np.ndarray, seed: int = 0, folds: int = 5) -> float:
    """Cross-validated accuracy of a logistic regression telling statistics ``a`` (N, F) from ``b`` (M, F).

    The larger set is subsampled to the smaller one's size (balanced: chance is 0.5); stratified
    ``folds``-fold CV (fewer when a set is smaller).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(seed)
    n = min(len(a), len(b))
    if n < 2:
        raise ValueError("each set needs at least 2 sketches")
    a = a[rng.choice(len(a), n, replace=False)]
    b = b[rng.choice(len(b), n, replace=False)]
    x = np.log1p(np.vstack([a, b]))
    y = np.r_[np.ones(n), np.zeros(n)]
    cv = StratifiedKFold(n_splits=min(folds, n), shuffle=True, random_state=seed)
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(cross_val_score(clf, x, y, cv=cv).mean())


def real_sketch_sets(data_dir: str | Path, size: int = DEFAULT_SIZE) -> dict[str, np.ndarray]:
    """Real ink maps (N, size, size) float32: ``quickdraw`` (the mapped classes) and ``earth-on-canvas``."""
    from geoseek.sources.sketch import QUICKDRAW_TO_CLASS, quickdraw_sketches, read_sketch_image

    data_dir = Path(data_dir)
    qd = [ink for ink, _, _ in quickdraw_sketches(data_dir / "sketches" / "quickdraw" / "strokes", QUICKDRAW_TO_CLASS, size)]
    eoc_dir = data_dir / "sketches" / "earth-on-canvas-extra"
    eoc = [read_sketch_image(p, size) for p in sorted(eoc_dir.glob("*.jpg"))] if eoc_dir.is_dir() else []
    return {"quickdraw": np.stack(qd) if qd else np.zeros((0, size, size), np.float32),
            "earth-on-canvas": np.stack(eoc) if eoc else np.zeros((0, size, size), np.float32)}


def synthesized_sets(images: Sequence[Path], seed: int = 0, size: int = DEFAULT_SIZE) -> dict[str, np.ndarray]:
    """Ink maps (N, size, size) of ``images`` by each synthesizer: ``outline`` and ``drawn`` (one random style each)."""
    from geoseek.sources.drawn_sketch import drawn_sketch
    from geoseek.sources.sketch import crop_and_square, synthesize_sketch

    outline, drawn = [], []
    for i, p in enumerate(images):
        # the outline synthesizer fills its frame; cropped like a query so both sides see one preprocessing
        o = synthesize_sketch(p, size, np.random.default_rng([seed, i, 0]))
        outline.append(crop_and_square(o, size) if (o > 0.2).any() else o)
        drawn.append(drawn_sketch(p, size, np.random.default_rng([seed, i, 1])))
    return {"outline": np.stack(outline), "drawn": np.stack(drawn)}


def sample_images(data_dir: str | Path, per_class: int, seed: int = 0) -> list[Path]:
    """``per_class`` UC Merced + AID images of each protocol class (seeded choice)."""
    from geoseek.sources.datasets import read_ucm_aid

    rng = np.random.default_rng(seed)
    by: dict[str, list[Path]] = {}
    for s in read_ucm_aid(Path(data_dir) / "imagery"):
        by.setdefault(s.label, []).append(s.path)
    out: list[Path] = []
    for c in sorted(by):
        ps = sorted(by[c])
        out += [ps[j] for j in sorted(rng.choice(len(ps), min(per_class, len(ps)), replace=False))]
    return out


def realism_table(real: dict[str, np.ndarray], synth: dict[str, np.ndarray], seed: int = 0) -> dict[str, Any]:
    """Mean statistics per set and real-vs-synthesized classifier accuracies (module docstring)."""
    stats = {k: statistics(v) for k, v in {**real, **synth}.items() if len(v)}
    out: dict[str, Any] = {"statistics": list(STAT_NAMES), "sets": {}, "separability": {}}
    for k, s in stats.items():
        out["sets"][k] = {"n": int(len(s)), **{n: round(float(v), 4) for n, v in zip(STAT_NAMES, s.mean(0))},
                          **{f"{n}_sd": round(float(v), 4) for n, v in zip(STAT_NAMES, s.std(0))}}
    for r in real:
        for sname in synth:
            if r in stats and sname in stats and min(len(stats[r]), len(stats[sname])) >= 4:
                out["separability"][f"{r}_vs_{sname}"] = round(separability(stats[r], stats[sname], seed), 3)
    return out


def realism_figure(real: dict[str, np.ndarray], synth: dict[str, np.ndarray], images: Sequence[Path], out: str | Path,
                   n: int = 8) -> Path:
    """A PNG: rows of source image | outline | drawn-style for ``n`` images, then real sketches (Earth on Canvas, Quick, Draw!)."""
    from PIL import Image, ImageDraw

    size = next(iter(synth.values())).shape[-1]
    gap = 4

    def tile(ink: np.ndarray) -> Image.Image:
        return Image.fromarray(((1 - np.clip(ink, 0, 1)) * 255).astype(np.uint8)).convert("RGB")

    cols = max(n, 8)
    rows: list[tuple[str, list[Image.Image]]] = [
        ("aerial image", [Image.open(p).convert("RGB").resize((size, size)) for p in images[:n]]),
        ("outline (old)", [tile(x) for x in synth["outline"][:n]]),
        ("drawn-style (new)", [tile(x) for x in synth["drawn"][:n]]),
    ]
    eoc = real.get("earth-on-canvas", np.zeros((0,)))
    for i in range(0, min(len(eoc), 2 * cols), cols):
        rows.append(("Earth on Canvas (real)", [tile(x) for x in eoc[i : i + cols]]))
    qd = real.get("quickdraw", np.zeros((0,)))
    if len(qd):
        step = max(1, len(qd) // cols)
        rows.append(("Quick, Draw! (real)", [tile(x) for x in qd[::step][:cols]]))
    label_h = 14
    fig = Image.new("RGB", (cols * (size + gap), len(rows) * (size + gap + label_h)), "white")
    d = ImageDraw.Draw(fig)
    for r, (name, tiles) in enumerate(rows):
        y = r * (size + gap + label_h)
        d.text((2, y + 1), name, fill="black")
        for c, t in enumerate(tiles[:cols]):
            fig.paste(t, (c * (size + gap), y + label_h))
            d.rectangle([c * (size + gap), y + label_h, c * (size + gap) + size - 1, y + label_h + size - 1], outline=(190, 190, 190))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.save(out)
    return out
