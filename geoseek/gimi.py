"""Location-explicit image-to-image search (GIMI): features, training tasks, evaluation, search.

Pipeline::

    geo-located images ──EfficientNet-Lite0 (ImageNet, frozen; computed once)──► (N, 1280)
        ──GeoImageEncoder heads (image head ⊕ location encoder, fusion)──► (N, 128) unit vectors
    search: cosine over the collection, optionally re-weighted by geographic proximity

Methods of the evaluation (GIMI's table):

* **Base** — no fine-tuning: ImageNet features ⊕ a fixed location code. The embedding is
  ``[√(1−β)·x̂_img ; √β·p̂(lon, lat)]`` with x̂ the L2-normalized backbone features and p̂ the
  L2-normalized parameter-free position encoding of the model's location encoder (sphereM,
  wavelengths 400 m … 40,000 km), so its cosine is ``(1−β)·cos_img + β·cos_loc`` (β = 0.5).
* **Softmax** — the fusion heads trained as a classifier over the relevance labels
  (:class:`~geoseek.losses.softmax.SoftmaxLoss`, cosine logits), retrieval by the embedding.
* **Triplet** — the heads trained with :class:`~geoseek.losses.TripletMarginLoss` over
  semi-hard triplets.
* **DPT** — the same miner and margin with
  :class:`~geoseek.losses.dpt.DistancePenalizedTripletLoss` (the geographic penalty P).

All three trained methods share the batch sampler (P classes × K images), the miner, the
optimizer (:func:`geoseek.train.fit`) and the seed, so the only difference between Triplet and
DPT is the penalty term.

Protocol: the test split of :mod:`geoseek.sources.geo_image_dataset` is both the query set and
the database; each test image queries all the others (itself excluded). Relevance is binary:
same label. Top-k% is the share of relevant items among the first ⌈k %·(N−1)⌉ results and
NDCG@k% the NDCG at that cut-off (:func:`geoseek.evaluate.top_k_percent`,
:func:`~geoseek.evaluate.ndcg_at_percent`), each reported as mean ± std over queries.

Search (:func:`combined_scores`): ``score = (1 − w)·cos(q, x) + w·exp(−d(q, x) / s)`` with
w the geo weight in [0, 1], d the great-circle distance in metres between the query location
and the item's centroid, and s the collection's ``geo_scale_m``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from geoseek.checkpoint import ModelCache
from geoseek.errors import InvalidInputError
from geoseek.evaluate import ndcg_at_percent, per_query, rank_by_scores, relevance_from_labels, top_k_percent

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit
    from geoseek.encoders.fusion import GeoImageEncoder
    from geoseek.index.base import Filter
    from geoseek.sources.geo_image_dataset import GeoImageDataset

TASK = "geo-image"
MODALITY = "geo-images"
METHODS = ("base", "softmax", "triplet", "dpt")
Method = Literal["softmax", "triplet", "dpt"]
DEFAULT_GEO_SCALE_M = 5_000.0
REPO = Path(__file__).resolve().parents[1]
DEFAULT_WORK_DIR = REPO / "runs" / "geo-image"


# -------------------------------------------------------------------------------- features
@torch.no_grad()
def backbone_features(model: GeoImageEncoder, images: np.ndarray, batch: int = 64, progress: bool = True) -> np.ndarray:
    """(N, H, W, 3) uint8 → (N, F) float32 frozen-backbone features."""
    from tqdm.auto import tqdm

    model.eval()
    out = []
    for i in tqdm(range(0, len(images), batch), disable=not progress, desc="image features"):
        x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch])).permute(0, 3, 1, 2).float() / 255.0
        out.append(model.image_features(x).numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, model.feature_dim), np.float32)


@dataclass
class GeoImageFeatures:
    """The dataset's metadata with its precomputed backbone features (row-aligned)."""

    dataset: GeoImageDataset
    features: np.ndarray

    @property
    def lonlat(self) -> np.ndarray:
        return self.dataset.lonlat

    @property
    def labels(self) -> np.ndarray:
        return self.dataset.labels


def cached_features_for(dataset: GeoImageDataset, data_dir: str | Path, work_dir: str | Path = DEFAULT_WORK_DIR,
                        seed: int = 0, **params: Any) -> np.ndarray | None:
    """Backbone features cached by :func:`load_features` for exactly these samples (same ids, same order), or None."""
    from geoseek.sources.geo_image_dataset import DEFAULT_OSM, DEFAULT_RASTERS

    params = {"osm": DEFAULT_OSM, "rasters": DEFAULT_RASTERS, "zoom": 16, "chip_px": 64, "image_size": 128, **params}
    cache = Path(work_dir) / f"data-{dataset_key({'data': str(Path(data_dir).resolve()), 'seed': seed, **params})}"
    try:
        meta = json.loads((cache / "meta.json").read_text())
        feats = np.load(cache / "features.npy")
    except (OSError, ValueError):
        return None
    if [r["id"] for r in meta["samples"]] != [s.id for s in dataset.samples]:
        return None
    return feats


def dataset_key(params: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def load_features(
    data_dir: str | Path, work_dir: str | Path = DEFAULT_WORK_DIR, seed: int = 0, progress: bool = True, **params: Any
) -> GeoImageFeatures:
    """Build (or reuse from ``work_dir``) the dataset and its backbone features.

    The cache is ``<work_dir>/data-<key>/{meta.json, features.npy}``, keyed by the data
    directory, the dataset parameters and the seed.
    """
    from geoseek.encoders.fusion import GeoImageEncoder
    from geoseek.sources.geo_image_dataset import DEFAULT_OSM, DEFAULT_RASTERS, GeoImageDataset, build_geo_image_dataset

    params = {"osm": DEFAULT_OSM, "rasters": DEFAULT_RASTERS, "zoom": 16, "chip_px": 64, "image_size": 128, **params}
    key = dataset_key({"data": str(Path(data_dir).resolve()), "seed": seed, **params})
    cache = Path(work_dir) / f"data-{key}"
    meta_f, feat_f = cache / "meta.json", cache / "features.npy"
    if meta_f.is_file() and feat_f.is_file():
        meta = json.loads(meta_f.read_text())
        ds = GeoImageDataset.from_meta(meta["samples"], meta["info"])
        return GeoImageFeatures(ds, np.load(feat_f))
    ds = build_geo_image_dataset(data_dir, seed=seed, progress=progress, **params)
    enc = GeoImageEncoder(image_size=ds.info["image_size"])
    feats = backbone_features(enc, ds.images, progress=progress)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = feat_f.with_suffix(".tmp.npy")
    np.save(tmp, feats)
    tmp.replace(feat_f)
    meta_f.write_text(json.dumps({"samples": ds.meta(), "info": ds.info}))
    ds.images = None
    return GeoImageFeatures(ds, feats)


# ---------------------------------------------------------------------------------- Base
def base_embeddings(features: np.ndarray, lonlat: np.ndarray, beta: float = 0.5, location_encoder: str | None = None,
                    location_params: dict[str, Any] | None = None) -> np.ndarray:
    """No-fine-tuning embedding ``[√(1−β)·x̂_img ; √β·p̂]`` (see the module docstring), (N, F + P)."""
    from geoseek.encoders.fusion import DEFAULT_LOCATION, DEFAULT_LOCATION_PARAMS
    from geoseek.encoders.registry import create_location_encoder

    if not 0.0 <= beta <= 1.0:
        raise InvalidInputError(f"beta must be in [0, 1], got {beta}")
    params = dict(DEFAULT_LOCATION_PARAMS if location_params is None else location_params)
    enc = create_location_encoder(location_encoder or DEFAULT_LOCATION, **params)
    with torch.no_grad():
        pos = F.normalize(enc.encode_position(torch.as_tensor(lonlat, dtype=torch.float32)), dim=1).numpy()
    img = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    return np.concatenate([math.sqrt(1 - beta) * img, math.sqrt(beta) * pos], axis=1).astype(np.float32)


# ------------------------------------------------------------------------------- metrics
def retrieval_metrics(
    emb: np.ndarray,
    labels: Sequence,
    lonlat: np.ndarray | None = None,
    geo_weight: float = 0.0,
    geo_scale_m: float = DEFAULT_GEO_SCALE_M,
    percents: Sequence[float] = (5, 10),
) -> dict[str, dict[str, float]]:
    """GIMI's figures, each ``{"mean", "std"}`` over queries: ``top5``, ``top10``, ``ndcg5``, ``ndcg10``.

    Every row of ``emb`` (L2-normalized, (N, D)) queries all the others (itself excluded);
    relevance is label equality. With ``geo_weight`` > 0 the scores are
    :func:`combined_scores` of the cosine and the geographic proximity.
    """
    emb = np.asarray(emb, dtype=np.float64)
    n = len(emb)
    if n < 2:
        raise InvalidInputError("the evaluation needs at least 2 items")
    scores = emb @ emb.T
    if geo_weight:
        if lonlat is None:
            raise InvalidInputError("geo_weight needs the items' locations")
        from geoseek.geo import pairwise_haversine_m

        scores = (1 - geo_weight) * scores + geo_weight * np.exp(-pairwise_haversine_m(lonlat, lonlat) / geo_scale_m)
    rel = relevance_from_labels(labels, labels).astype(np.float64)
    ranked = rank_by_scores(scores, rel, exclude=np.eye(n, dtype=bool))[:, : n - 1]
    out: dict[str, dict[str, float]] = {}
    for p in percents:
        pct = int(p) if float(p).is_integer() else p
        out[f"top{pct}"] = per_query(np.array([top_k_percent(ranked[i : i + 1], p) for i in range(n)]))
        out[f"ndcg{pct}"] = per_query(np.array([ndcg_at_percent(ranked[i : i + 1], p) for i in range(n)]))
    return out


def combined_scores(visual: np.ndarray, item_lonlat: np.ndarray, query_lonlat: Sequence[float] | None,
                    geo_weight: float, geo_scale_m: float = DEFAULT_GEO_SCALE_M) -> np.ndarray:
    """``(1 − w)·visual + w·exp(−d / s)`` for (N,) cosine scores and (N, 2) item centroids (degrees).

    Items without a location (NaN) get geographic similarity 0. ``w = 0`` returns ``visual``.
    """
    if not 0.0 <= geo_weight <= 1.0:
        raise InvalidInputError(f"geo weight must be in [0, 1], got {geo_weight}")
    if not (geo_scale_m > 0):
        raise InvalidInputError(f"geo scale must be > 0 metres, got {geo_scale_m}")
    visual = np.asarray(visual, dtype=np.float64)
    if geo_weight == 0:
        return visual
    if query_lonlat is None:
        raise InvalidInputError("a geo weight > 0 needs the query's location (lon, lat)")
    from geoseek.geo import haversine_m

    d = haversine_m(np.asarray(item_lonlat, dtype=np.float64).reshape(-1, 2), np.asarray(query_lonlat, dtype=np.float64))
    geo = np.where(np.isfinite(d), np.exp(-np.nan_to_num(d, nan=np.inf) / geo_scale_m), 0.0)
    return (1 - geo_weight) * visual + geo_weight * geo


# ------------------------------------------------------------------------------ training
@dataclass
class GimiTrainConfig:
    """Hyperparameters of one training run of the fusion heads.

    Attributes:
        method: ``softmax`` | ``triplet`` | ``dpt``.
        classes_per_batch, per_class: P × K batch sampler over training labels.
        margin: α of the triplet and DPT losses (Euclidean on unit vectors).
        penalty_kind, penalty_scale_m, penalty_weight: DPT's q (see :class:`~geoseek.losses.dpt.GeoPenalty`).
        temperature: softmax cosine-logit temperature.
        model: keyword arguments of :class:`~geoseek.encoders.fusion.GeoImageEncoder`.
    """

    method: Method = "dpt"
    classes_per_batch: int = 16
    per_class: int = 8
    margin: float = 0.2
    penalty_kind: str = "normalized"
    penalty_scale_m: float = 50_000.0
    penalty_weight: float = 0.1
    temperature: float = 0.05
    model_name: str = "gimi-fusion"
    model: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in ("softmax", "triplet", "dpt"):
            raise InvalidInputError(f"method must be softmax, triplet or dpt, got {self.method!r}")


class GimiTask:
    """A :class:`geoseek.train.TrainTask` over precomputed features (train split) with val-split validation."""

    def __init__(self, data: GeoImageFeatures, cfg: GimiTrainConfig, seed: int = 0) -> None:
        from geoseek.encoders.registry import create_model
        from geoseek.losses import SemiHardMiner, TripletMarginLoss
        from geoseek.losses.dpt import DistancePenalizedTripletLoss, GeoPenalty
        from geoseek.losses.softmax import SoftmaxLoss

        self.cfg = cfg
        self.model_name = cfg.model_name
        from geoseek.encoders.fusion import DEFAULT_LOCATION_PARAMS

        # the full constructor config is saved, so checkpoints do not depend on today's defaults
        self.config = {"image_size": data.dataset.info.get("image_size", 128), "embed_dim": 128, "hidden_dim": 512,
                       "location_params": dict(DEFAULT_LOCATION_PARAMS), **cfg.model}
        self.model = create_model(cfg.model_name, **self.config)
        ds = data.dataset
        tr, va = ds.indices("train"), ds.indices("val")
        if len(tr) < 2 or len(va) < 2:
            raise InvalidInputError("the train and val splits need at least 2 items each")
        self.x = torch.from_numpy(np.asarray(data.features[tr], np.float32))
        self.ll = torch.from_numpy(data.lonlat[tr].astype(np.float32))
        names = sorted(set(data.labels[tr]))
        self.class_names = names
        self.y = torch.tensor([names.index(v) for v in data.labels[tr]])
        self.by_class = [np.nonzero(self.y.numpy() == c)[0] for c in range(len(names))]
        self.usable = [c for c, ix in enumerate(self.by_class) if len(ix) >= 2]
        self.val = (torch.from_numpy(np.asarray(data.features[va], np.float32)), torch.from_numpy(data.lonlat[va].astype(np.float32)),
                    data.labels[va], data.lonlat[va])
        self.rng = np.random.default_rng(seed)
        self.miner = SemiHardMiner(margin=cfg.margin)
        self.loss_fn: torch.nn.Module
        if cfg.method == "softmax":
            self.loss_fn = SoftmaxLoss(self.model.embed_dim, len(names), temperature=cfg.temperature)
        elif cfg.method == "triplet":
            self.loss_fn = TripletMarginLoss(margin=cfg.margin)
        else:
            pen = GeoPenalty(cfg.penalty_kind, cfg.penalty_scale_m, cfg.penalty_weight)  # type: ignore[arg-type]
            self.loss_fn = DistancePenalizedTripletLoss(margin=cfg.margin, penalty=pen)

    def params(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad] + list(self.loss_fn.parameters())

    def batch(self) -> np.ndarray:
        classes = self.rng.choice(self.usable, size=min(self.cfg.classes_per_batch, len(self.usable)), replace=False)
        idx = [self.rng.choice(self.by_class[c], size=min(self.cfg.per_class, len(self.by_class[c])), replace=False) for c in classes]
        return np.concatenate(idx)

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        idx = torch.from_numpy(self.batch())
        ll, y = self.ll[idx], self.y[idx]
        emb = self.model.embed_features(self.x[idx], ll)
        if self.cfg.method == "softmax":
            return self.loss_fn(emb, y), {}
        t = self.miner(emb.detach(), y)
        if self.cfg.method == "triplet":
            loss = self.loss_fn(emb, y, t)
        else:
            loss = self.loss_fn(emb, y, t, ll)
        return loss, {"triplets": float(len(t.anchor))}

    def validate(self) -> dict[str, float]:
        x, ll, labels, lonlat = self.val
        emb = self.model.embed_features(x, ll).numpy()
        m = retrieval_metrics(emb, labels)
        return {k: v["mean"] for k, v in m.items()}


def train_gimi(
    data: GeoImageFeatures, cfg: GimiTrainConfig, out: str | Path, *, steps: int = 600, lr: float = 1e-3,
    seed: int = 0, threads: int | None = 1, progress: bool = True, resume: bool = False,
) -> dict[str, Any]:
    """Train the fusion heads with :func:`geoseek.train.fit`; the best (val ``top5``) checkpoint goes to ``out``."""
    from geoseek.train import FitConfig, fit, seed_everything

    if threads:
        torch.set_num_threads(threads)
    seed_everything(seed)
    task = GimiTask(data, cfg, seed)
    fc = FitConfig(steps=steps, lr=lr, warmup=min(100, steps // 10), validate_every=max(steps // 6, 1), monitor="top5",
                   seed=seed, threads=threads, extra={"gimi": asdict(cfg)})
    info = {**data.dataset.info, "n_train": int(len(task.y)), "classes": task.class_names}
    return fit(task, fc, out, data=info, resume=resume, progress=progress, params=task.params())


@torch.no_grad()
def embed_split(model: GeoImageEncoder, data: GeoImageFeatures, split: str, with_location: bool = True) -> np.ndarray:
    """(n, D) embeddings of one split's items (with or without their locations)."""
    idx = data.dataset.indices(split)
    model.eval()
    ll = torch.from_numpy(data.lonlat[idx].astype(np.float32)) if with_location else None
    return model.embed_features(torch.from_numpy(np.asarray(data.features[idx], np.float32)), ll).numpy()


def evaluate_gimi(
    data: GeoImageFeatures,
    work_dir: str | Path = DEFAULT_WORK_DIR,
    methods: Sequence[str] = METHODS,
    seeds: Sequence[int] = (0,),
    steps: int = 600,
    base_beta: float = 0.5,
    cfg: dict[str, Any] | None = None,
    retrain: bool = False,
    progress: bool = True,
    geo_weight: float = 0.0,
    geo_scale_m: float = DEFAULT_GEO_SCALE_M,
) -> dict[str, Any]:
    """Train (or reuse) and evaluate every method on the test split; returns the JSON report.

    Trained heads are cached in ``<work_dir>/models/<method>-s<seed>-<key>.pt``. Each method's
    figures are mean ± std over test queries for the first seed; with several seeds,
    ``seeds`` adds the mean and std over seeds of each figure's query mean. ``geo_weight`` > 0
    ranks by the search-time blend :func:`combined_scores` (queries at their true locations).
    """
    from geoseek.checkpoint import load_model

    test = data.dataset.indices("test")
    labels, lonlat = data.labels[test], data.lonlat[test]
    report: dict[str, Any] = {
        "protocol": "test split queries all other test items; relevance = same label; mean ± std over queries",
        "n_test": int(len(test)),
        "n_labels_test": int(len(set(labels))),
        "dataset": data.dataset.info,
        "geo_weight": geo_weight,
        "geo_scale_m": geo_scale_m,
        "methods": {},
    }
    cfg = dict(cfg or {})
    for method in methods:
        if method not in METHODS:
            raise InvalidInputError(f"unknown method {method!r}; methods: {', '.join(METHODS)}")
        runs = []
        for seed in seeds:
            t0 = time.time()
            if method == "base":
                emb = base_embeddings(data.features[test], lonlat, base_beta)
                m = retrieval_metrics(emb, labels, lonlat, geo_weight, geo_scale_m)
                extra = {"beta": base_beta}
            else:
                tc = GimiTrainConfig(method=method, **cfg)  # type: ignore[arg-type]
                key = dataset_key({"cfg": asdict(tc), "steps": steps, "seed": seed, "data": data.dataset.info})
                out = Path(work_dir) / "models" / f"{method}-s{seed}-{key}.pt"
                if retrain or not out.is_file():
                    out.parent.mkdir(parents=True, exist_ok=True)
                    train_gimi(data, tc, out, steps=steps, seed=seed, progress=progress)
                model, payload = load_model(out)
                emb = embed_split(model, data, "test")
                m = retrieval_metrics(emb, labels, lonlat, geo_weight, geo_scale_m)
                extra = {"checkpoint": str(out), "best_step": payload["metrics"].get("step")}
                if seed == seeds[0]:
                    m_img = retrieval_metrics(embed_split(model, data, "test", with_location=False), labels)
                    extra["without_location"] = {k: v["mean"] for k, v in m_img.items()}
            runs.append({"seed": seed, "seconds": round(time.time() - t0, 1), **m, **extra})
            if method == "base":
                break  # deterministic
        entry = dict(runs[0])
        if len(runs) > 1:
            keys = [k for k in runs[0] if isinstance(runs[0][k], dict) and "mean" in runs[0][k]]
            entry["seeds"] = {k: per_query(np.array([r[k]["mean"] for r in runs])) for k in keys}
            entry["runs"] = [{k: (r[k]["mean"] if isinstance(r[k], dict) and "mean" in r[k] else r[k]) for k in r
                              if k != "without_location"} for r in runs]
        report["methods"][method] = entry
    if "base" in methods:
        img = base_embeddings(data.features[test], lonlat, 0.0)
        report["base_image_only"] = retrieval_metrics(img, labels, lonlat, geo_weight, geo_scale_m)
    return report


# --------------------------------------------------------------------------------- search
_MODELS = ModelCache()
"""The models of the collections searched in this process."""


def collection_model(collection: Collection) -> GeoImageEncoder:
    """The model stored with a geo-images collection (``model.pt``), cached per file (see ModelCache)."""
    return _MODELS.get(collection.file("model.pt"))


def image_to_array(image: Any) -> np.ndarray:
    """A PIL image, a path or an (H, W, 3) uint8 array → (H, W, 3) uint8 RGB."""
    from PIL import Image

    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InvalidInputError(f"image arrays must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        return image
    if isinstance(image, (str, Path)):
        p = Path(image)
        if not p.is_file():
            from geoseek.errors import NotFoundError

            raise NotFoundError(f"no image file at {p}")
        try:
            with Image.open(p) as im:
                return np.asarray(im.convert("RGB"))
        except Exception as exc:  # PIL raises many kinds on bad files
            raise InvalidInputError(f"cannot read image {p}: {exc}") from None
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    raise InvalidInputError(f"unsupported image type {type(image).__name__}")


@torch.no_grad()
def embed_query(model: GeoImageEncoder, image: Any, lonlat: Sequence[float] | None = None) -> np.ndarray:
    """(D,) embedding of one query image (PIL, path or uint8 array), with or without (lon, lat) degrees."""
    from geoseek.geo import as_lonlat

    rgb = image_to_array(image)
    x = torch.from_numpy(np.array(rgb, dtype=np.float32, copy=True)).permute(2, 0, 1)[None] / 255.0
    ll = None
    if lonlat is not None:
        ll = torch.from_numpy(as_lonlat(lonlat, name="query location").astype(np.float32))
    model.eval()
    return model(x, ll)[0].numpy().astype(np.float32)


def search_image(
    collection: Collection,
    image: Any,
    lonlat: Sequence[float] | None = None,
    k: int = 10,
    geo_weight: float = 0.0,
    filter: Filter | None = None,
    geo_scale_m: float | None = None,
    candidates: int = 500,
) -> list[Hit]:
    """Items most similar to ``image`` (optionally located at ``lonlat``), best first.

    ``geo_weight`` w ∈ [0, 1] blends the embedding cosine with geographic proximity
    (:func:`combined_scores`, scale ``geo_scale_m`` or the collection's ``extra.geo_scale_m``);
    w > 0 needs ``lonlat``. With w > 0 the candidates are the ``candidates`` best by cosine plus
    the ``candidates`` best within 5 scales of the query, re-scored; ``filter`` (bbox, radius,
    labels) applies to both.
    """
    from geoseek.collection import Hit
    from geoseek.index.base import Filter as _Filter
    from geoseek.index.base import Radius

    if k < 1:
        raise InvalidInputError(f"k must be >= 1, got {k}")
    if not 0.0 <= geo_weight <= 1.0:
        raise InvalidInputError(f"geo weight must be in [0, 1], got {geo_weight}")
    if geo_weight > 0 and lonlat is None:
        raise InvalidInputError("a geo weight > 0 needs the query's location: give lon and lat")
    model = collection_model(collection)
    q = embed_query(model, image, lonlat)
    if geo_weight == 0:
        return collection.search(q, k=k, filter=filter)[0]
    scale = float(geo_scale_m or collection.manifest.get("extra", {}).get("geo_scale_m", DEFAULT_GEO_SCALE_M))
    n = max(candidates, k)
    # candidates by key, scored from the in-memory item columns: no Item is built for the
    # ~1,000 candidates, only for the k hits returned (when they are read)
    first = collection.search(q, k=n, filter=filter)[0]
    pool = dict(zip(first.keys, first.scores))
    if filter is None or filter.radius is None:
        near = _Filter(bbox=filter.bbox if filter else None, radius=Radius(lonlat[0], lonlat[1], 5 * scale),
                       labels=filter.labels if filter else None)
        second = collection.search(q, k=n, filter=near)[0]
        for key, score in zip(second.keys, second.scores):
            pool.setdefault(key, score)
    if not pool:
        return []
    keys = np.fromiter(pool, dtype=np.int64, count=len(pool))
    cache = collection.item_cache()
    scores = combined_scores(np.fromiter(pool.values(), dtype=np.float64, count=len(pool)), cache.geo[keys, 4:6],
                             lonlat, geo_weight, scale)
    order = np.argsort(-scores, kind="stable")[:k]
    return [Hit.lazy(r + 1, float(scores[i]), int(keys[i]), cache) for r, i in enumerate(order)]


# ---------------------------------------------------------------------------------- build
def build_collection(
    data: GeoImageDataset,
    model_path: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    geo_scale_m: float = DEFAULT_GEO_SCALE_M,
    backend: str = "faiss",
    progress: bool = True,
    features: np.ndarray | None = None,
) -> Collection:
    """Embed every image of ``data`` (images kept) with the checkpoint at ``model_path`` into a collection.

    ``features`` (N, F): precomputed backbone features of ``data.images`` (row-aligned), to skip
    the backbone pass.
    """
    from geoseek.checkpoint import load_model
    from geoseek.collection import Collection, Item
    from geoseek.sources.geo_image_dataset import png_thumbnail

    if data.images is None:
        raise InvalidInputError("the dataset was loaded without its images; rebuild it")
    model, payload = load_model(model_path)
    if features is not None and len(features) == len(data.images) and model.image_size == data.info.get("image_size"):
        feats = np.asarray(features, np.float32)
    else:
        feats = backbone_features(model, data.images, progress=progress)
    with torch.no_grad():
        vecs = model.embed_features(torch.from_numpy(feats), torch.from_numpy(data.lonlat.astype(np.float32))).numpy()
    items = [
        Item(id=s.id, name=s.id, footprint=s.footprint, centroid=s.lonlat, label=s.label, source=s.source,
             thumbnail=png_thumbnail(img), metadata={"kind": s.kind, "split": s.split, **s.metadata})
        for s, img in zip(data.samples, data.images)
    ]
    extra = {"task": TASK, "geo_scale_m": geo_scale_m, "dataset": data.info, "model_metrics": payload.get("metrics", {})}
    with Collection.create(out, modality=MODALITY, model_id=payload["model"], model_checksum=payload["checksum"],
                           dim=int(vecs.shape[1]), metric="ip", backend=backend, overwrite=overwrite, extra=extra) as b:
        b.add(items, vecs.astype(np.float32))
        b.put_file("model.pt", model_path)
    return Collection.open(out)
