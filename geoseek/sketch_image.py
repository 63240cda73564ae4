"""Sketch → aerial image retrieval (MLAGT): data preparation, training task, build, search, evaluation.

Pipeline::

    images ──EfficientNet-Lite0 (frozen)──► 7×7×1280 features ──MLAGT image branch──► [RT] + filtered tokens
    sketch (PNG / strokes) ──ink map──► MLAGT sketch branch ──► [RT] + filtered tokens
    search: ANN over image [RT] vectors (collection) → top N → cross-attention rerank with stored tokens

Data protocol (our UC Merced + AID benchmark, :data:`geoseek.sources.datasets.UCM_AID_CLASSES`):
each class's images are split into *sketch sources* (20 %, turned into synthesized sketch queries)
and *gallery* images (80 %), disjointly, so a query never retrieves its own source image. In a
fold, seen classes are split again in halves: the training half feeds training, the other half
is the held-out seen test set; unseen classes are never seen in training. Real sketches are the
Quick, Draw! drawings of :data:`geoseek.sources.sketch.QUICKDRAW_TO_CLASS`.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from geoseek.checkpoint import ModelCache
from geoseek.encoders.sketch_image import IMAGE_SIZE, MLAGT, image_backbone_features
from geoseek.errors import InvalidInputError
from geoseek.sources.datasets import Fold, Sample, query_gallery_split, read_ucm_aid
from geoseek.sources.sketch import DEFAULT_SIZE, QUICKDRAW_TO_CLASS, augment_ink, quickdraw_sketches, synthesize_sketch

TASK = "sketch-image"
MODALITY = "aerial-image"


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


def thumbnail(path: str | Path, size: int = 96) -> bytes:
    img = Image.open(path).convert("RGB")
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def backbone_features(paths: Sequence[str | Path], batch: int = 32, progress: bool = True) -> np.ndarray:
    """(N, 1280, 7, 7) float16 EfficientNet-Lite0 features of image files."""
    out = []
    for i in tqdm(range(0, len(paths), batch), disable=not progress, desc="image features"):
        x = torch.from_numpy(np.stack([load_image(p) for p in paths[i : i + batch]])).permute(0, 3, 1, 2)
        out.append(image_backbone_features(x).half().numpy())
    return np.concatenate(out) if out else np.zeros((0, 1280, 7, 7), np.float16)


def _key(parts: Sequence[Any]) -> str:
    return hashlib.sha1("\n".join(map(str, parts)).encode()).hexdigest()[:16]


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
    key = _key(paths)
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
    tmp = f.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    f.with_suffix(".txt").write_text("\n".join(map(str, paths)) + "\n")
    tmp.replace(f)
    return feats


def cached_sketches(paths: Sequence[Path], variants: int, cache_dir: Path | None, size: int = DEFAULT_SIZE, progress: bool = True) -> np.ndarray:
    """(N, variants, size, size) uint8 synthesized sketches (variant v of image i seeded by (i, v))."""
    f = cache_dir / f"sketches-{_key([*paths, variants, size])}.npy" if cache_dir else None
    if f is not None and f.is_file():
        return np.load(f, mmap_mode="r")
    out = np.zeros((len(paths), variants, size, size), np.uint8)
    for i, p in enumerate(tqdm(paths, disable=not progress, desc="synthesize sketches")):
        for v in range(variants):
            rng = None if v == 0 else np.random.default_rng([i, v])
            out[i, v] = np.round(synthesize_sketch(p, size, rng) * 255)
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(f)
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
) -> SketchImageData:
    """Read UC Merced + AID, compute (cached) image features and synthesized sketches, load Quick, Draw!."""
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
    data = prepare_samples(samples, cache_dir, variants, seed, progress, real=(real, real_labels))
    data.info["data_dir"] = str(data_dir)
    return data


def prepare_samples(
    samples: Sequence[Sample],
    cache_dir: str | Path | None = None,
    variants: int = 1,
    seed: int = 0,
    progress: bool = True,
    real: tuple[list[np.ndarray], list[str]] | None = None,
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
    return SketchImageData(samples, feats, sk, role, half, real_arr, list(labels), info)


def cached_sketch_features(
    inks: np.ndarray, cache_dir: Path | None, progress: bool = True, batch: int = 64, dtype: str = "float32"
) -> np.ndarray:
    """(N, 1280, 7, 7) float16 :func:`sketch_backbone_features` of uint8 ink maps, the backbone run
    in ``dtype``; memoized by content and dtype."""
    from geoseek.encoders.sketch_image import sketch_backbone_features

    inks = np.asarray(inks)
    f = None
    if cache_dir is not None:
        tag = "" if dtype == "float32" else f"-{dtype}"
        f = Path(cache_dir) / f"sketch-features{tag}-{hashlib.sha1(inks.tobytes()).hexdigest()[:16]}.npy"
        if f.is_file():
            return np.load(f, mmap_mode="r")
    out = np.zeros((len(inks), 1280, IMAGE_SIZE // 32, IMAGE_SIZE // 32), np.float16)
    for i in tqdm(range(0, len(inks), batch), disable=not progress, desc="sketch features"):
        x = torch.from_numpy(np.asarray(inks[i : i + batch], np.float32) / 255.0)[:, None]
        out[i : i + batch] = sketch_backbone_features(x, dtype=dtype).half().numpy()
    if f is not None:
        f.parent.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(".tmp.npy")
        np.save(tmp, out)
        tmp.replace(f)
    return out


def ensure_sketch_features(data: SketchImageData, progress: bool = True, dtype: str = "float32") -> SketchImageData:
    """Fill ``data.sketch_features`` / ``real_features`` with the backbone run in ``dtype`` (cached
    in ``data.info["cache_dir"]``); features of another dtype are replaced."""
    cache = Path(data.info["cache_dir"]) if data.info.get("cache_dir") else None
    if data.sketch_features_dtype != dtype:
        data.sketch_features = data.real_features = None
    if data.sketch_features is None:
        data.sketch_features = cached_sketch_features(np.asarray(data.sketches[:, 0]), cache, progress, dtype=dtype)
    if data.real_features is None:
        data.real_features = cached_sketch_features(data.real, cache, progress, dtype=dtype)
    data.sketch_features_dtype = dtype
    return data


# -------------------------------------------------------------------------------- train task
@dataclass
class TaskConfig:
    """The training recipe. Defaults: the one behind the reported models (docs/sketch-image.md)."""

    classes_per_batch: int = 8
    per_class: int = 4
    margin: float = 0.2
    cross_weight: float = 1.0
    ce_weight: float = 0.0
    real_prob: float = 0.3
    val_queries: int = 300
    miner: str = "batchhard"
    """Triplet loss only: "batchhard" or "semihard" (FaceNet, with hard fallback)."""
    loss: str = "infonce"
    """"triplet": mined triplets on [RT] and on cross scores (the paper; collapses from scratch here);
    "infonce": class-aware multi-positive InfoNCE on [RT] and on the in-batch cross-score matrix."""
    temperature: float = 0.07
    instance_weight: float = 1.0
    """InfoNCE only: weight of an instance-level term pairing each synthesized sketch with its own source image."""
    instance_pairs: bool = True
    """Draw each synthesized sketch from the very image it is paired with (else from another image of the class)."""
    cross_anchors: int = 8
    """InfoNCE only: sketches per batch whose cross scores against every batch image are computed (cost ∝ anchors × batch)."""
    feature_aug: bool = True
    """Rotate / flip the 7×7 backbone feature grids with the same dihedral transform as the ink."""


def _dihedral(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate the last two axes by k·90° and optionally mirror the last one."""
    x = np.rot90(x, k, axes=(-2, -1))
    return x[..., ::-1] if flip else x


class SketchImageTask:
    """The :class:`geoseek.train.TrainTask` of MLAGT on one fold's seen classes."""

    model_name = "mlagt"

    def __init__(self, model: MLAGT, data: SketchImageData, fold: Fold, config: dict[str, Any], task_cfg: TaskConfig | None = None, model_name: str = "mlagt", seed: int = 0) -> None:
        from geoseek.losses import BatchHardMiner, CosineDistance, MultiPositiveInfoNCE, SemiHardMiner, TripletMarginLoss

        self.model, self.data, self.fold, self.config = model, data, fold, config
        self.model_name = model_name
        self.tc = task_cfg or TaskConfig()
        if self.tc.loss not in ("triplet", "infonce"):
            raise ValueError(f"loss must be 'triplet' or 'infonce', got {self.tc.loss!r}")
        self.rng = np.random.default_rng(seed)
        self.classes = list(fold.seen)
        self.class_id = {c: i for i, c in enumerate(self.classes)}
        labels = data.labels
        # fold 0 = the final model on every class: all images train (validation is then not held out)
        train_half = (data.half >= 0) if fold.index == 0 else (data.half == 0)
        self.train_idx = {c: np.nonzero((labels == c) & train_half)[0] for c in self.classes}
        self.real_idx = {c: [i for i, l in enumerate(data.real_labels) if l == c] for c in self.classes}
        self.miner = SemiHardMiner(self.tc.margin) if self.tc.miner == "semihard" else BatchHardMiner()
        self.triplet = TripletMarginLoss(self.tc.margin, distance=None)
        self.nce = MultiPositiveInfoNCE(self.tc.temperature)
        self.cos = CosineDistance()
        self.use_sketch_features = bool(getattr(model, "needs_sketch_features", False))
        if self.use_sketch_features:
            ensure_sketch_features(data, dtype=model.sketch_backbone_dtype)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sketches, sketch features or None, image features, class ids, instance ids (−1: real sketch))."""
        tc, d = self.tc, self.data
        classes = self.rng.choice(self.classes, size=min(tc.classes_per_batch, len(self.classes)), replace=False)
        sk, skf, feats, labels, inst = [], [], [], [], []
        for c in classes:
            pool = self.train_idx[c]
            img = self.rng.choice(pool, size=tc.per_class, replace=len(pool) < tc.per_class)
            src = img if tc.instance_pairs else self.rng.choice(pool, size=tc.per_class, replace=len(pool) < tc.per_class)
            for j in range(tc.per_class):
                k, flip = int(self.rng.integers(0, 4)), bool(self.rng.random() < 0.5)
                if self.real_idx[c] and self.rng.random() < tc.real_prob:
                    r = int(self.rng.choice(self.real_idx[c]))
                    ink, f, iid = d.real[r], (d.real_features[r] if self.use_sketch_features else None), -1
                else:
                    v = int(self.rng.integers(0, d.sketches.shape[1]))
                    ink = d.sketches[src[j], v]
                    f = d.sketch_features[src[j]] if self.use_sketch_features else None
                    iid = int(src[j])
                ink = _dihedral(np.asarray(ink, np.float32) / 255.0, k, flip)
                shift = self.rng.integers(-4, 5, size=2)
                sk.append(np.roll(ink, (int(shift[0]), int(shift[1])), axis=(0, 1)))
                if f is not None:
                    skf.append(_dihedral(np.asarray(f, np.float32), k, flip) if tc.feature_aug else np.asarray(f, np.float32))
                g = np.asarray(d.features[img[j]], np.float32)
                if tc.feature_aug:
                    g = _dihedral(g, int(self.rng.integers(0, 4)), bool(self.rng.random() < 0.5))
                feats.append(np.ascontiguousarray(g))
                labels.append(self.class_id[c])
                inst.append(iid if int(img[j]) == iid else -1)
        return (
            torch.from_numpy(np.ascontiguousarray(np.stack(sk)[:, None])),
            torch.from_numpy(np.ascontiguousarray(np.stack(skf))) if skf else None,
            torch.from_numpy(np.stack(feats)),
            torch.tensor(labels),
            torch.tensor(inst),
        )

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        sk, skf, feats, y, inst = self._batch()
        m = self.model
        s_tok = m.sketch_tokens(sk, skf) if skf is not None else m.sketch_tokens(sk)
        i_tok = m.image_tokens_from(feats)
        es, ei = m.embed(s_tok), m.embed(i_tok)
        with torch.no_grad():  # collapse watch: mean off-diagonal cosine among sketch / image [RT] vectors
            n = len(es)
            off = ~torch.eye(n, dtype=torch.bool)
            scalars = {"s_cos": float((es @ es.T)[off].mean()), "i_cos": float((ei @ ei.T)[off].mean())}
        if self.tc.loss == "infonce":
            l_rt = self.nce(es, y, ei, y)
            loss = l_rt
            scalars["rt"] = float(l_rt.detach())
            if self.tc.instance_weight > 0 and bool((inst >= 0).any()):
                l_in = self.nce(es, inst, ei, inst)
                loss = loss + self.tc.instance_weight * l_in
                scalars["inst"] = float(l_in.detach())
            if self.tc.cross_weight > 0:
                from geoseek.losses import multi_positive_nce

                b = len(es)
                anchors = torch.from_numpy(self.rng.permutation(b)[: max(1, min(self.tc.cross_anchors, b))])
                na = len(anchors)
                ai = anchors.repeat_interleave(b)
                bi = torch.arange(b).repeat(na)
                cs = m.cross_score(s_tok[ai], i_tok[bi]).view(na, b) / self.tc.temperature
                l_x = multi_positive_nce(cs, y[anchors][:, None] == y[None, :])
                loss = loss + self.tc.cross_weight * l_x
                scalars["cross"] = float(l_x.detach())
        else:
            t1 = self.miner(es, y, ei, y)
            t2 = self.miner(ei, y, es, y)
            l_rt = self.triplet(es, y, t1, ref_emb=ei) + self.triplet(ei, y, t2, ref_emb=es)
            scalars["rt"] = float(l_rt.detach())
            loss = l_rt
            if self.tc.cross_weight > 0 and len(t1.anchor):
                sp = m.cross_score(s_tok[t1.anchor], i_tok[t1.positive])
                sn = m.cross_score(s_tok[t1.anchor], i_tok[t1.negative])
                l_x = F.relu(self.tc.margin - sp + sn).mean()
                loss = loss + self.tc.cross_weight * l_x
                scalars["cross"] = float(l_x.detach())
        if self.tc.ce_weight > 0 and m.classifier is not None:
            l_ce = F.cross_entropy(m.classify(s_tok), y) + F.cross_entropy(m.classify(i_tok), y)
            loss = loss + self.tc.ce_weight * l_ce
            scalars["ce"] = float(l_ce.detach())
        return loss, scalars

    def validate(self) -> dict[str, float]:
        """mAP@all of held-out *seen* sketches against the held-out seen gallery (no unseen peeking)."""
        d = self.data
        q = d.select(self.fold.seen, "query", 1)[: self.tc.val_queries]
        g = d.select(self.fold.seen, "gallery", 1)
        if len(q) == 0 or len(g) == 0:
            return {"val_map": 0.0, "val_p10": 0.0}
        r = evaluate_split(self.model, d, q, g, rerank=0)
        return {"val_map": r["map"], "val_p10": r["p@10"]}


# -------------------------------------------------------------------------------- inference
def _eval(model: torch.nn.Module) -> None:
    """Switch to eval mode only if needed (``eval()`` walks every submodule: ~0.7 ms a query)."""
    if any(m.training for m in model.modules()):
        model.eval()


@torch.no_grad()
def encode_sketches(model: MLAGT, inks: np.ndarray, batch: int = 128, features: np.ndarray | None = None) -> tuple[np.ndarray, torch.Tensor]:
    """Ink maps (N, S, S) uint8 or float → ([RT] vectors (N, D) float32, tokens (N, L, D)).

    ``features``: precomputed sketch backbone features (N, 1280, 7, 7) for models that use
    them (computed from the inks when None).
    """
    _eval(model)
    toks = []
    use_f = features is not None and getattr(model, "needs_sketch_features", False)
    for i in range(0, len(inks), batch):
        x = torch.from_numpy(np.asarray(inks[i : i + batch], np.float32))
        if x.max() > 1.5:
            x = x / 255.0
        if use_f:
            toks.append(model.sketch_tokens(x[:, None], torch.from_numpy(np.asarray(features[i : i + batch], np.float32))))
        else:
            toks.append(model.sketch_tokens(x[:, None]))
    t = torch.cat(toks)
    return model.embed(t).numpy(), t


@torch.no_grad()
def encode_images(model: MLAGT, feats: np.ndarray, batch: int = 256, progress: bool = False) -> tuple[np.ndarray, torch.Tensor]:
    """Backbone features (N, 1280, 7, 7) → ([RT] vectors (N, D) float32, tokens (N, L, D))."""
    _eval(model)
    toks = []
    for i in tqdm(range(0, len(feats), batch), disable=not progress, desc="image tokens"):
        toks.append(model.image_tokens_from(torch.from_numpy(np.asarray(feats[i : i + batch], np.float32))))
    t = torch.cat(toks)
    return model.embed(t).numpy(), t


@torch.no_grad()
def rerank(model: MLAGT, s_tokens: torch.Tensor, scores: np.ndarray, i_tokens: torch.Tensor, top: int) -> np.ndarray:
    """Replace the top ``top`` scores of each query row with cross-attention scores (+2 so they stay on top)."""
    scores = scores.copy()
    order = np.argsort(-scores, axis=1)[:, :top]
    cs = model.cross_score_candidates(s_tokens, i_tokens.float(), torch.from_numpy(order)).numpy()
    np.put_along_axis(scores, order, 2.0 + cs, axis=1)
    return scores


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
    have = data.sketch_features_dtype == model.sketch_backbone_dtype  # precomputed in the model's precision
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


rerank_fn = rerank


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
        if data.sketch_features_dtype != "float32":
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


# ---------------------------------------------------------------------------------- training
DEFAULT_MODEL_CONFIG: dict[str, Any] = {"sketch_backbone_dtype": "bfloat16"}
"""Model arguments new training runs add: the sketch backbone runs in bf16 (twice as fast per
query as float32 on a CPU with native bf16; the model learns on the features it will see)."""


def train_fold(
    data: SketchImageData,
    fold: Fold,
    out: str | Path,
    steps: int = 1500,
    lr: float = 5e-4,
    model_name: str = "mlagt-fused",
    model_config: dict[str, Any] | None = None,
    task_cfg: TaskConfig | None = None,
    seed: int = 0,
    threads: int | None = 1,
    progress: bool = True,
    validate_every: int = 250,
) -> tuple[MLAGT, dict[str, Any]]:
    """Train MLAGT on ``fold.seen`` with :func:`geoseek.train.fit`; returns (best model, fit result)."""
    from geoseek.checkpoint import load_model
    from geoseek.encoders.registry import create_model
    from geoseek.train import FitConfig, fit, seed_everything

    if threads:
        torch.set_num_threads(threads)
    seed_everything(seed)
    config = dict(DEFAULT_MODEL_CONFIG, **(model_config or {}))
    model = create_model(model_name, **config)
    task = SketchImageTask(model, data, fold, config, task_cfg, model_name=model_name, seed=seed)
    cfg = FitConfig(steps=steps, lr=lr, warmup=min(100, steps // 10), validate_every=min(validate_every, steps), monitor="val_map", seed=seed,
                    threads=threads, extra={"task": asdict(task.tc)})
    result = fit(
        task,
        cfg,
        out,
        data={"dataset": "ucm-aid", "fold": fold.index, "seen": fold.seen, "unseen": fold.unseen, **data.info},
        progress=progress,
    )
    best, _ = load_model(out)
    return best, result


def evaluate_fold(model: MLAGT, data: SketchImageData, fold: Fold, rerank: int = 100, ablations: bool = True, baselines: bool = True) -> dict[str, Any]:
    """The paper's protocol on one fold: seen / unseen metrics, ablations and baselines."""
    out: dict[str, Any] = {"fold": fold.index, "unseen_classes": fold.unseen}
    if getattr(model, "needs_sketch_features", False):
        ensure_sketch_features(data, dtype=model.sketch_backbone_dtype)
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


# ------------------------------------------------------------------------------ build / search
def build_image_collection(
    folder: str | Path | Sequence[str | Path],
    out: str | Path,
    model: str | Path = "default",
    overwrite: bool = False,
    batch: int = 32,
    thumbnails: bool = True,
    progress: bool = True,
    backend: str = "faiss",
    features_cache: str | Path | None = None,
) -> dict[str, Any]:
    """Build a sketch-searchable collection from image folders (``FOLDER/<class>/*.jpg``).

    Item ids are ``<class>/<file stem>`` (prefixed by the folder name when several are given);
    items carry their class folder as ``label``; vectors are the images' [RT] embeddings; the
    filtered token sets are stored float16 as array ``tokens`` (row i ↔ key i) and the model
    as file ``model.pt``. ``features_cache`` reuses backbone features cached there (they do not
    depend on the trained model). Returns counts and timings (seconds).
    """
    from geoseek.checkpoint import file_checksum, load_model, resolve_checkpoint
    from geoseek.collection import Collection, Item
    from geoseek.sources.datasets import read_class_folders

    t0 = time.perf_counter()
    ckpt = resolve_checkpoint(model, TASK)
    net, payload = load_model(ckpt)
    folders = [Path(folder)] if isinstance(folder, (str, Path)) else [Path(f) for f in folder]
    if not folders:
        raise InvalidInputError("give at least one image folder")
    samples, roots = [], []
    for f in folders:
        got = read_class_folders(f)
        samples += got
        roots += [f] * len(got)
    cached = cached_features([s.path for s in samples], Path(features_cache), progress) if features_cache else None
    vecs, toks, items = [], [], []
    t_feat = 0.0
    for i in tqdm(range(0, len(samples), batch), disable=not progress, desc="build"):
        chunk = samples[i : i + batch]
        chunk_roots = roots[i : i + batch]
        t = time.perf_counter()
        with torch.no_grad():
            if cached is not None:
                feats = torch.from_numpy(np.asarray(cached[i : i + batch], np.float32))
            else:
                x = torch.from_numpy(np.stack([load_image(s.path) for s in chunk])).permute(0, 3, 1, 2)
                feats = image_backbone_features(x)
            tok = net.image_tokens_from(feats)
        t_feat += time.perf_counter() - t
        vecs.append(net.embed(tok).numpy())
        toks.append(tok.half().numpy())
        for s, root in zip(chunk, chunk_roots):
            rel = str(s.path.relative_to(root).with_suffix("")).replace("\\", "/")
            items.append(Item(
                id=f"{root.name}/{rel}" if len(folders) > 1 else rel,
                name=s.path.name,
                label=s.label,
                source=str(s.path),
                thumbnail=thumbnail(s.path) if thumbnails else None,
            ))
    vectors = np.concatenate(vecs).astype(np.float32)
    tokens = np.concatenate(toks)
    with Collection.create(
        out,
        modality=MODALITY,
        dim=vectors.shape[1],
        model_id=f"{payload['model']}:{Path(ckpt).name}",
        model_checksum=file_checksum(ckpt),
        metric="ip",
        backend=backend,
        overwrite=overwrite,
        extra={"task": TASK, "tokens": list(tokens.shape[1:]), "sources": [str(f) for f in folders]},
    ) as b:
        b.add(items, vectors)
        b.put_array("tokens", tokens)
        b.put_file("model.pt", ckpt)
    return {"items": len(items), "seconds": time.perf_counter() - t0, "encode_seconds": t_feat, "tokens_bytes": int(tokens.nbytes)}


_MODELS = ModelCache()
"""The models of the collections searched in this process."""


def collection_model(collection) -> MLAGT:
    """The MLAGT stored in a collection (``files/model.pt``), cached per file (see ModelCache)."""
    return _MODELS.get(collection.file("model.pt"))


@torch.no_grad()
def search_sketches(collection, inks: np.ndarray, k: int = 10, filter=None, rerank: int = 100) -> list[list]:
    """Two-stage search for a batch of ink maps (Q, S, S): ANN over [RT] vectors, then rerank.

    The top ``max(k, rerank)`` ANN candidates of each query are re-scored by the cross-attention
    layer against their stored token sets (``rerank=0`` skips the second stage). Hit scores are
    cross-attention cosines for reranked hits, [RT] cosines otherwise.
    """
    from geoseek.collection import Hit

    if collection.manifest.get("extra", {}).get("task") != TASK:
        raise InvalidInputError(f"collection {collection.name} was not built for sketch search (geoseek build images)")
    if k <= 0:
        raise InvalidInputError(f"k must be > 0, got {k}")
    net = collection_model(collection)
    es, st = encode_sketches(net, np.asarray(inks))
    n = max(k, rerank)
    scores, keys = collection.index.search(es.astype(np.float32), n, filter)
    scores, keys = np.asarray(scores, np.float32), np.asarray(keys)
    if rerank > 0:
        valid = keys >= 0
        uniq = np.unique(keys[valid])
        if len(uniq):
            tokens = collection.array("tokens")
            it = torch.from_numpy(np.asarray(tokens[uniq], np.float32))
            pos = np.searchsorted(uniq, np.where(valid, keys, uniq[0]))
            cs = net.cross_score_candidates(st, it, torch.from_numpy(pos)).numpy()
            scores = np.where(valid, cs, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")
            scores = np.take_along_axis(scores, order, 1)
            keys = np.take_along_axis(keys, order, 1)
    flat = np.unique(keys[keys >= 0])
    found = collection.store.items_by_keys(flat.tolist()) if len(flat) else {}
    out = []
    for qi in range(len(keys)):
        hits = []
        for s, key in zip(scores[qi].tolist(), keys[qi].tolist()):
            item = found.get(key)
            if item is None:
                continue
            hits.append(Hit(rank=len(hits) + 1, score=float(s), item=item))
            if len(hits) == k:
                break
        out.append(hits)
    return out


def search_sketch(collection, sketch: np.ndarray | bytes | str | Path, k: int = 10, filter=None, rerank: int = 100, filename: str | None = None) -> list:
    """Search by one sketch: an ink map (S, S), or PNG/JPG/strokes-JSON bytes or a file path."""
    from geoseek.sources.sketch import load_sketch

    if not isinstance(sketch, np.ndarray):
        net = collection_model(collection)
        sketch = load_sketch(sketch, size=net.sketch_size, filename=filename)
    return search_sketches(collection, sketch[None], k, filter, rerank)[0]


# ----------------------------------------------------------------------------------------- figure
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
