"""What sketch → image retrieval reads, samples and caches.

Data protocol (our UC Merced + AID benchmark, :data:`geoseek.sources.datasets.UCM_AID_CLASSES`):
each class's images are split into *sketch sources* (20 %, turned into synthesized sketch queries)
and *gallery* images (80 %), disjointly, so a query never retrieves its own source image. In a
fold, seen classes are split again in halves: the training half feeds training, the other half
is the held-out seen test set; unseen classes are never seen in training. Real sketches are the
Quick, Draw! drawings of :data:`geoseek.sources.sketch.QUICKDRAW_TO_CLASS`.

Feature caches (file names and keys unchanged, so existing caches are found): image backbone
features ``features-<key>.npy`` (+ ``.txt`` path list), synthesized sketches
``sketches-<key>.npy`` and sketch backbone features ``sketch-features[-<dtype>]-<key>.npy``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from geoseek.capabilities.common import atomic_save_npy, cache_key
from geoseek.encoders.sketch_image import IMAGE_SIZE, image_backbone_features
from geoseek.errors import InvalidInputError
from geoseek.sources.datasets import Sample, query_gallery_split, read_ucm_aid
from geoseek.sources.sketch import DEFAULT_SIZE, QUICKDRAW_TO_CLASS, quickdraw_sketches, synthesize_sketch

TASK = "sketch-image"
"""The checkpoint task name of MLAGT models, and the ``extra.task`` of sketch-searchable collections."""
MODALITY = "aerial-image"
"""The modality of sketch-searchable collections."""


# ------------------------------------------------------------------------------------ images
def load_image(path: str | Path, size: int = IMAGE_SIZE) -> np.ndarray:
    """(size, size, 3) float32 RGB in [0, 1]."""
    try:
        img = Image.open(path).convert("RGB")
    except FileNotFoundError:
        raise
    except Exception as exc:
        raise InvalidInputError(f"cannot read image {path}: {exc}") from None
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR), np.float32) / 255.0


def backbone_features(paths: Sequence[str | Path], batch: int = 32, progress: bool = True) -> np.ndarray:
    """(N, 1280, 7, 7) float16 EfficientNet-Lite0 features of image files."""
    out = []
    for i in tqdm(range(0, len(paths), batch), disable=not progress, desc="image features"):
        x = torch.from_numpy(np.stack([load_image(p) for p in paths[i : i + batch]])).permute(0, 3, 1, 2)
        out.append(image_backbone_features(x).half().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1280, 7, 7), np.float16)


def cached_features(paths: Sequence[Path], cache_dir: Path | None, progress: bool = True) -> np.ndarray:
    """:func:`backbone_features`, memoized in ``cache_dir``.

    Each cached array ``features-<key>.npy`` has its path list beside it (``.txt``); rows of
    images already cached under any key are reused (paths compared resolved), only the
    missing ones are computed.
    """
    if cache_dir is None:
        return backbone_features(paths, progress=progress)
    paths = [Path(p).resolve() for p in paths]
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = cache_key(paths)
    f = cache_dir / f"features-{key}.npy"
    if f.is_file():
        return np.load(f, mmap_mode="r")
    known: dict[str, tuple[Path, int]] = {}
    for txt in cache_dir.glob("features-*.txt"):
        npy = txt.with_suffix(".npy")
        if npy.is_file():
            for row, p in enumerate(txt.read_text().splitlines()):
                known.setdefault(p, (npy, row))
    missing = [p for p in paths if str(p) not in known]
    new = backbone_features(missing, progress=progress) if missing else None
    feats = np.zeros((len(paths), 1280, 7, 7), np.float16)
    arrays: dict[Path, np.ndarray] = {}
    mi = 0
    for i, p in enumerate(paths):
        if str(p) in known:
            src, row = known[str(p)]
            arr = arrays.setdefault(src, np.load(src, mmap_mode="r"))
            feats[i] = arr[row]
        else:
            feats[i] = new[mi]
            mi += 1
    f.with_suffix(".txt").write_text("\n".join(map(str, paths)) + "\n")
    atomic_save_npy(f, feats)
    return feats


def cached_drawn_sketches(paths: Sequence[Path], variants: int, cache_dir: Path | None, size: int = DEFAULT_SIZE, progress: bool = True) -> np.ndarray:
    """(N, variants, size, size) uint8 drawn-style sketches (:func:`~geoseek.sources.drawn_sketch.drawn_sketch`;
    variant v of image i seeded by (i, v), v = 0 the default style), cached as ``drawn-<key>.npy``."""
    from geoseek.sources.drawn_sketch import drawn_sketch

    f = cache_dir / f"drawn-{cache_key([*paths, variants, size])}.npy" if cache_dir else None
    if f is not None and f.is_file():
        return np.load(f, mmap_mode="r")
    out = np.zeros((len(paths), variants, size, size), np.uint8)
    for i, p in enumerate(tqdm(paths, disable=not progress, desc="drawn-style sketches")):
        for v in range(variants):
            out[i, v] = np.round(drawn_sketch(p, size, None if v == 0 else np.random.default_rng([i, v])) * 255)
    if f is not None:
        atomic_save_npy(f, out)
    return out


def cached_sketches(paths: Sequence[Path], variants: int, cache_dir: Path | None, size: int = DEFAULT_SIZE, progress: bool = True) -> np.ndarray:
    """(N, variants, size, size) uint8 synthesized sketches (variant v of image i seeded by (i, v))."""
    f = cache_dir / f"sketches-{cache_key([*paths, variants, size])}.npy" if cache_dir else None
    if f is not None and f.is_file():
        return np.load(f, mmap_mode="r")
    out = np.zeros((len(paths), variants, size, size), np.uint8)
    for i, p in enumerate(tqdm(paths, disable=not progress, desc="synthesize sketches")):
        for v in range(variants):
            rng = None if v == 0 else np.random.default_rng([i, v])
            out[i, v] = np.round(synthesize_sketch(p, size, rng) * 255)
    if f is not None:
        atomic_save_npy(f, out)
    return out


# ----------------------------------------------------------------------------------- dataset
@dataclass
class SketchImageData:
    """Everything the training/eval protocol needs, held in memory.

    ``features[i]`` and ``sketches[i]`` belong to ``samples[i]``; ``role[i]`` is "query"
    (sketch source) or "gallery"; ``half[i]`` is 0/1 (train / held-out for seen classes).
    ``real`` holds Quick, Draw! ink maps (uint8) with their class labels.
    """

    samples: list[Sample]
    features: np.ndarray
    sketches: np.ndarray
    role: np.ndarray
    half: np.ndarray
    real: np.ndarray
    real_labels: list[str]
    info: dict[str, Any] = field(default_factory=dict)
    sketch_features: np.ndarray | None = None
    """(N, 1280, 7, 7) float16 backbone features of ``sketches[:, 0]`` (see :func:`ensure_sketch_features`)."""
    real_features: np.ndarray | None = None
    """(R, 1280, 7, 7) float16 backbone features of ``real``."""
    sketch_features_dtype: str | None = None
    """The precision the backbone ran in for ``sketch_features`` / ``real_features``."""
    sketch_features_stages: int = 0
    """0: the features are the full frozen backbone's; N > 0: the frozen front's before the last N
    stages (models fine-tuning those stages, :mod:`geoseek.encoders.sketch_tail`)."""
    drawn: np.ndarray | None = None
    """(N, V, S, S) uint8 drawn-style sketches of ``samples`` (:func:`cached_drawn_sketches`), if prepared."""
    drawn_features: np.ndarray | None = None
    """Backbone (or front) features of ``drawn[:, 0]``, like ``sketch_features``."""

    def features_match(self, model: Any) -> bool:
        """Whether the cached sketch features are those ``model`` takes (precision and backbone cut)."""
        return (self.sketch_features_dtype == getattr(model, "sketch_backbone_dtype", None)
                and self.sketch_features_stages == getattr(model, "sketch_finetune_stages", 0))

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples], dtype=object)

    def select(self, classes: Sequence[str], role: str | None = None, half: int | None = None) -> np.ndarray:
        m = np.isin(self.labels, list(classes))
        if role is not None:
            m &= self.role == role
        if half is not None:
            m &= self.half == half
        return np.nonzero(m)[0]


def prepare_data(
    data_dir: str | Path,
    cache_dir: str | Path | None = None,
    classes: Sequence[str] | None = None,
    per_class: int | None = None,
    variants: int = 1,
    seed: int = 0,
    progress: bool = True,
    drawn_variants: int = 0,
) -> SketchImageData:
    """Read UC Merced + AID, compute (cached) image features and synthesized sketches, load Quick, Draw!.

    ``drawn_variants`` > 0 also synthesizes that many drawn-style sketches per image (``data.drawn``)."""
    data_dir = Path(data_dir).resolve()  # cache keys hold image paths: one spelling per file
    samples = read_ucm_aid(data_dir / "imagery", list(classes) if classes else None)
    if per_class:
        by: dict[str, list[Sample]] = {}
        for s in samples:
            by.setdefault(s.label, []).append(s)
        samples = [s for c in sorted(by) for s in by[c][:per_class]]
    real, real_labels = [], []
    qd = data_dir / "sketches" / "quickdraw" / "strokes"
    if qd.is_dir():
        wanted = {w: c for w, c in QUICKDRAW_TO_CLASS.items() if classes is None or c in classes}
        for ink, cls, _ in quickdraw_sketches(qd, wanted):
            real.append(np.round(ink * 255).astype(np.uint8))
            real_labels.append(cls)
    data = prepare_samples(samples, cache_dir, variants, seed, progress, real=(real, real_labels), drawn_variants=drawn_variants)
    data.info["data_dir"] = str(data_dir)
    return data


def prepare_samples(
    samples: Sequence[Sample],
    cache_dir: str | Path | None = None,
    variants: int = 1,
    seed: int = 0,
    progress: bool = True,
    real: tuple[list[np.ndarray], list[str]] | None = None,
    drawn_variants: int = 0,
) -> SketchImageData:
    """:class:`SketchImageData` of any labelled images (e.g. from ``read_class_folders``)."""
    cache = Path(cache_dir) if cache_dir else None
    queries, gallery = query_gallery_split(list(samples), 0.2, seed)
    samples = queries + gallery
    role = np.array(["query"] * len(queries) + ["gallery"] * len(gallery))
    # seen-class halves (train 0 / held-out 1), alternating within each class and role
    half = np.zeros(len(samples), np.int64)
    count: dict[tuple[str, str], int] = {}
    for i, s in enumerate(samples):
        key = (s.label, str(role[i]))
        half[i] = count.get(key, 0) % 2
        count[key] = count.get(key, 0) + 1
    paths = [s.path for s in samples]
    feats = cached_features(paths, cache, progress)
    sk = cached_sketches(paths, variants, cache, progress=progress)
    inks, labels = real if real else ([], [])
    real_arr = np.stack(inks) if inks else np.zeros((0, DEFAULT_SIZE, DEFAULT_SIZE), np.uint8)
    info = {"seed": seed, "images": len(samples), "cache_dir": str(cache) if cache else None}
    data = SketchImageData(samples, feats, sk, role, half, real_arr, list(labels), info)
    if drawn_variants > 0:
        data.drawn = cached_drawn_sketches(paths, drawn_variants, cache, progress=progress)
    return data


def cached_sketch_features(
    inks: np.ndarray, cache_dir: Path | None, progress: bool = True, batch: int = 64, dtype: str = "float32",
    stages: int = 0,
) -> np.ndarray:
    """(N, 1280, 7, 7) float16 :func:`sketch_backbone_features` of uint8 ink maps, the backbone run
    in ``dtype``; memoized by content and dtype. ``stages`` N > 0: the frozen front's features
    before the last N stages instead (:func:`geoseek.encoders.sketch_tail.sketch_front_features`)."""
    from geoseek.encoders.sketch_image import sketch_backbone_features

    inks = np.asarray(inks)
    f = None
    if cache_dir is not None:
        tag = ("" if dtype == "float32" else f"-{dtype}") + (f"-front{stages}" if stages else "")
        # keyed by the arrays' bytes (cache_key keys text parts): the key of existing caches, unchanged
        f = Path(cache_dir) / f"sketch-features{tag}-{hashlib.sha1(inks.tobytes()).hexdigest()[:16]}.npy"
        if f.is_file():
            return np.load(f, mmap_mode="r")
    out = None
    for i in tqdm(range(0, len(inks), batch), disable=not progress, desc="sketch features"):
        x = torch.from_numpy(np.asarray(inks[i : i + batch], np.float32) / 255.0)[:, None]
        if stages:
            from geoseek.encoders.sketch_tail import sketch_front_features

            y = sketch_front_features(x, stages, dtype=dtype).half().numpy()
        else:
            y = sketch_backbone_features(x, dtype=dtype).half().numpy()
        if out is None:
            out = np.zeros((len(inks), *y.shape[1:]), np.float16)
        out[i : i + batch] = y
    if out is None:
        out = np.zeros((0, 1280, IMAGE_SIZE // 32, IMAGE_SIZE // 32), np.float16)
    if f is not None:
        atomic_save_npy(f, out)
    return out


def ensure_sketch_features(data: SketchImageData, progress: bool = True, dtype: str = "float32", stages: int = 0) -> SketchImageData:
    """Fill ``data.sketch_features`` / ``real_features`` (and ``drawn_features`` when drawn-style
    sketches are prepared) with the backbone run in ``dtype`` — or its front before the last
    ``stages`` stages — cached in ``data.info["cache_dir"]``; features of another kind are replaced."""
    cache = Path(data.info["cache_dir"]) if data.info.get("cache_dir") else None
    if data.sketch_features_dtype != dtype or data.sketch_features_stages != stages:
        data.sketch_features = data.real_features = data.drawn_features = None
    if data.sketch_features is None:
        data.sketch_features = cached_sketch_features(np.asarray(data.sketches[:, 0]), cache, progress, dtype=dtype, stages=stages)
    if data.real_features is None:
        data.real_features = cached_sketch_features(data.real, cache, progress, dtype=dtype, stages=stages)
    if data.drawn is not None and data.drawn_features is None:
        data.drawn_features = cached_sketch_features(np.asarray(data.drawn[:, 0]), cache, progress, dtype=dtype, stages=stages)
    data.sketch_features_dtype = dtype
    data.sketch_features_stages = stages
    return data

