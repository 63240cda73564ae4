"""The OSM-tiles capability: Loc2Vec training, evaluation, collection builds and "places like this one".

* :class:`TileTripletTask` — the :class:`geoseek.train.TrainTask` for :func:`geoseek.train.fit`:
  Loc2Vec triplets (:mod:`geoseek.sources.tile_sampler`), triplet margin loss, optional hard
  negatives mined in the batch with the current model; validation = triplet accuracy on a
  fixed set of triplets from the training area.
* :func:`evaluate_tiles` — our protocol (Loc2Vec publishes no numbers): XYZ tiles labelled
  with their dominant OSM land use, kNN retrieval P@10 / mAP by the embedding vs raw-raster
  kNN, ImageNet EfficientNet-Lite0 features (no training) and random ranking; on held-out
  spatial blocks, with database tiles near the query excluded.
* :func:`build_osm_collection` — every non-empty XYZ tile of a region → a collection.
* :func:`similar`, :func:`arithmetic`, :func:`interpolate` — queries over such a collection.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.sources.layers import LABEL_MIN_FRACTION

if TYPE_CHECKING:
    import torch
    from torch import nn

    from geoseek.collection import Collection, Hit
    from geoseek.sources.osm import OsmFeatures

MODALITY = "osm-tiles"
TASK = "tiles"
DEFAULT_ZOOM = 17
TILE_PX = 128


# --- data ------------------------------------------------------------------------------------------

_FEATURE_CACHE: dict[tuple[str, float], OsmFeatures] = {}


def load_features(path: str | Path) -> OsmFeatures:
    """Read (and memoize by path and mtime) an OSM file's features."""
    from geoseek.sources.osm import read_osm

    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0)
    if key not in _FEATURE_CACHE:
        _FEATURE_CACHE.clear()
        _FEATURE_CACHE[key] = read_osm(p)
    return _FEATURE_CACHE[key]


def embed_tiles(model: nn.Module, tiles: np.ndarray, batch: int = 128) -> np.ndarray:
    """(N, C, H, W) uint8 tiles → (N, D) float32 embeddings (model in eval mode, no grad)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(tiles), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(tiles[i : i + batch]))).float().numpy())
    if not out:
        return np.zeros((0, getattr(model, "dim", 0)), np.float32)
    return np.concatenate(out).astype(np.float32)


# --- training --------------------------------------------------------------------------------------


@dataclass
class TileTrainConfig:
    """What ``geoseek train tiles`` trains (the optimization itself is a FitConfig)."""

    model: str = "tile-cnn"
    dim: int = 128
    model_config: dict[str, Any] = field(default_factory=dict)
    """More constructor arguments of the model (e.g. ``{"input_pool": 2}``)."""
    batch: int = 32
    margin: float = 0.3
    hard_negatives: bool = True
    hard_after: int = 200
    """Start mining hard negatives after this many steps (random valid negatives before)."""
    mining: str = "semihard"
    """After ``hard_after``: "semihard" (one negative per anchor: the nearest beyond the positive,
    else the hardest) or "all" (every valid in-batch negative of every anchor; the loss averages
    the triplets that still violate the margin)."""
    batch_negatives: bool = True
    """Negatives from the other pairs of the batch (>= d_neg away) instead of rendered ones."""
    val_triplets: int = 200
    val_retrieval: int = 0
    """If > 0: also validate with our evaluation protocol (land use hidden, P@10 of land-use kNN,
    1 km exclusion) on up to this many labelled z17 tiles of the *training* blocks (``val_p10``,
    and ``val_raw_p10`` for raw-raster kNN on the same tiles); the held-out blocks stay unseen."""
    land_use_aux: float = 0.0
    """Weight of the masked land-use objective (0: off, pure Loc2Vec). A linear head on the
    embedding predicts each training tile's land-use cover (the shares of its own land-use
    channels, plus "none"), measured before ``drop_land_use`` blanked them: self-supervised
    cross-channel prediction, so a tile seen without land use must still place itself by the
    land use its buildings, roads and points imply. The head is dropped after training."""
    land_use_balance: float = 0.0
    """Reweight the land-use objective's classes by (mean share)^-balance, measured on 512
    training windows at the start (0: unweighted; 0.5: inverse square root; 1: inverse), so
    rare land uses (forest, industrial, park) weigh more than farmland and "none"."""
    land_use_target: str = "cover"
    """What the land-use objective predicts: "cover" (the soft shares of every land-use channel
    plus "none") or "dominant" (the evaluation's own label: the land use covering the most
    pixels if >= 20 %, else "none"; hard cross-entropy)."""
    triplet_weight: float = 1.0
    """Weight of the Loc2Vec triplet loss (0 with ``land_use_aux`` > 0: the land-use objective
    alone, a supervised diagnostic rather than Loc2Vec)."""
    sampler: dict[str, Any] = field(default_factory=dict)
    """TripletConfig overrides: d_pos, d_neg, window_m, size, min_content; split_block_m, split_holdout."""


def make_sampler(features: OsmFeatures, sampler: dict[str, Any] | None = None):
    """A :class:`TileTripletSampler` from a plain dict of overrides."""
    from geoseek.sources.tile_sampler import SpatialSplit, TileTripletSampler, TripletConfig

    s = dict(sampler or {})
    split = None
    if s.pop("split", True):
        split = SpatialSplit(block_m=float(s.pop("split_block_m", 2000.0)), holdout=float(s.pop("split_holdout", 0.25)))
    else:
        s.pop("split_block_m", None)
        s.pop("split_holdout", None)
    for key in ("d_pos", "window_m"):
        if key in s:
            s[key] = tuple(float(v) for v in s[key])
    return TileTripletSampler(features, TripletConfig(split=split, **s))


class TileTripletTask:
    """Loc2Vec training task for :func:`geoseek.train.fit`."""

    def __init__(
        self, features: OsmFeatures, cfg: TileTrainConfig, seed: int = 0, start: tuple[nn.Module, dict[str, Any]] | None = None
    ) -> None:
        """``start``: (model, its config) to train from instead of a new ``cfg.model``."""
        import torch

        from geoseek.encoders.registry import MODELS
        from geoseek.losses.triplet import TripletMarginLoss

        self.cfg = cfg
        self.model_name = cfg.model
        if start is not None:
            self.model, self.config = start[0], dict(start[1])
        else:
            self.config = {"dim": cfg.dim, **cfg.model_config}
            if cfg.model == "tile-efficientnet-lite0":
                self.config["pretrained"] = True
            self.model = MODELS.create(cfg.model, **self.config)
            if cfg.model == "tile-efficientnet-lite0":
                self.config["pretrained"] = False  # a checkpoint carries its own weights
        self.sampler = make_sampler(features, cfg.sampler)
        self.aux: nn.Module | None = None
        if cfg.land_use_aux > 0:
            from geoseek.sources.layers import LAND_USE_LAYERS

            self.aux = torch.nn.Linear(cfg.dim, len(LAND_USE_LAYERS) + 1)
        self.aux_weights: torch.Tensor | None = None
        if self.aux is not None and cfg.land_use_balance > 0:
            _, _, cover = self.sampler.sample_pairs(256, np.random.default_rng(30_000 + seed), land_use=True)
            self.aux_weights = land_use_class_weights(cover.reshape(-1, cover.shape[-1]), cfg.land_use_balance)
        self.loss_fn = TripletMarginLoss(margin=cfg.margin, average_nonzero=True)
        self.seed = seed
        rng = np.random.default_rng(10_000 + seed)
        self.val_tiles, self.val_centers = self.sampler.sample(cfg.val_triplets, rng)
        self._torch = torch
        self.val_set: tuple[np.ndarray, list[str], np.ndarray] | None = None
        self.val_raw: dict[str, float] = {}
        if cfg.val_retrieval > 0:
            self.val_set = training_block_tiles(features, self.sampler.cfg.split, cfg.val_retrieval, seed)
            tiles, labels, centers = self.val_set
            self.val_raw = knn_report(_raw_vectors(tiles), labels, centers, 1000.0, metric="l2", ks=(10,))

    def loss(self, step: int):
        """One step: B (anchor, positive) pairs; each anchor's negative is another tile of the
        batch at least d_neg away: a random one before ``hard_after`` steps, then the semi-hard
        one (nearest in embedding beyond the positive; the hardest if none) — mined with the
        current model. With ``batch_negatives=False`` explicit far negatives are rendered."""
        from geoseek.losses.miners import Triplets
        from geoseek.sources.tile_sampler import far_enough

        torch = self._torch
        rng = np.random.default_rng((self.seed, step))
        b = self.cfg.batch
        draw = self.sampler.sample_pairs if self.cfg.batch_negatives else self.sampler.sample
        if self.aux is not None:
            tiles, centers, cover = draw(b, rng, land_use=True)
        else:
            tiles, centers = draw(b, rng)
        x = torch.from_numpy(tiles.reshape(-1, *tiles.shape[2:]))
        emb = self.model(x)
        aux_loss = None
        if self.aux is not None:
            aux_loss = self.cfg.land_use_aux * land_use_loss(
                self.aux(emb), torch.from_numpy(cover.reshape(len(emb), -1)), self.aux_weights, self.cfg.land_use_target)
        anchor = torch.arange(b)
        pos = anchor + b
        stats: dict[str, float] = {}
        ok = torch.from_numpy(far_enough(centers[0], centers.reshape(-1, 2), self.sampler.cfg.d_neg))
        if not self.cfg.batch_negatives:
            ok[:, : 2 * b] = False  # only the rendered negatives (and, when mining, other triplets' ones)
            ok[anchor, anchor + 2 * b] = True
        has = ok.any(1)
        with torch.no_grad():
            if self.cfg.hard_negatives and step >= self.cfg.hard_after:
                d = torch.cdist(emb[:b], emb)
                d_ap = d[anchor, pos]
                semi = ok & (d > d_ap[:, None])
                choice = torch.where(
                    semi.any(1), d.masked_fill(~semi, float("inf")).argmin(1), d.masked_fill(~ok, float("inf")).argmin(1)
                )
            else:
                choice = torch.multinomial(ok.float() + (~has)[:, None].float(), 1, generator=None).squeeze(1)
        keep = has.nonzero(as_tuple=True)[0]
        if self.cfg.hard_negatives and step >= self.cfg.hard_after and self.cfg.mining == "all":
            ai, ni = ok.nonzero(as_tuple=True)
            trip = Triplets(ai, ai + b, ni)
            loss = self.loss_fn(emb, None, trip)
            with torch.no_grad():  # the accuracy below is that of the semi-hard choice
                trip = Triplets(anchor[keep], pos[keep], choice[keep])
                d_ap = (emb[trip.anchor] - emb[trip.positive]).norm(dim=1)
                d_an = (emb[trip.anchor] - emb[trip.negative]).norm(dim=1)
                stats["acc"] = float((d_ap < d_an).float().mean()) if len(keep) else 0.0
                stats["triplets"] = float(len(ai))
            return self._with_aux(self.cfg.triplet_weight * loss, aux_loss, stats)
        trip = Triplets(anchor[keep], pos[keep], choice[keep])
        loss = self.loss_fn(emb, None, trip)
        with torch.no_grad():
            d_ap = (emb[trip.anchor] - emb[trip.positive]).norm(dim=1)
            d_an = (emb[trip.anchor] - emb[trip.negative]).norm(dim=1)
            stats["acc"] = float((d_ap < d_an).float().mean()) if len(keep) else 0.0
        return self._with_aux(self.cfg.triplet_weight * loss, aux_loss, stats)

    @staticmethod
    def _with_aux(loss, aux_loss, stats: dict[str, float]):
        if aux_loss is None:
            return loss, stats
        stats["aux"] = float(aux_loss.detach())
        return loss + aux_loss, stats

    def validate(self) -> dict[str, float]:
        n = self.val_tiles.shape[1]
        emb = embed_tiles(self.model, self.val_tiles.reshape(3 * n, *self.val_tiles.shape[2:]))
        a, p, ng = emb[:n], emb[n : 2 * n], emb[2 * n :]
        d_ap = np.linalg.norm(a - p, axis=1)
        d_an = np.linalg.norm(a - ng, axis=1)
        out = {"val": float((d_ap < d_an).mean()), "val_gap": float((d_an - d_ap).mean())}
        if self.val_set is not None:
            tiles, labels, centers = self.val_set
            r = knn_report(embed_tiles(self.model, tiles), labels, centers, 1000.0, ks=(10,))
            out["val_p10"] = r["p_at_10"]
            out["val_raw_p10"] = self.val_raw["p_at_10"]
        return out


def _cover_target(cover: torch.Tensor) -> torch.Tensor:
    """(N, L) cover → (N, L+1) shares with "none" (1 − Σ cover, at least 0) appended, summing to 1."""
    import torch

    none = (1 - cover.sum(1, keepdim=True)).clamp_min(0)
    target = torch.cat([cover, none], 1)
    return target / target.sum(1, keepdim=True).clamp_min(1e-6)


def dominant_class(cover: torch.Tensor, min_fraction: float = LABEL_MIN_FRACTION) -> torch.Tensor:
    """(N, L) cover → (N,) class index: the land use covering the most pixels if it covers at
    least ``min_fraction``, else L ("none"); the evaluation's labelling rule
    (:func:`geoseek.sources.render.dominant_land_use_batch`)."""
    import torch

    share, best = cover.max(1)
    return torch.where(share >= min_fraction, best, torch.full_like(best, cover.shape[1]))


def land_use_loss(
    logits: torch.Tensor, cover: torch.Tensor, weights: torch.Tensor | None = None, target: str = "cover",
) -> torch.Tensor:
    """Cross-entropy of predicted land-use logits (N, L+1) against measured cover (N, L) in
    [0, 1]. ``target="cover"``: soft targets, the cover with a "none" share appended,
    normalized to sum to 1; ``"dominant"``: the hard :func:`dominant_class`. ``weights`` (L+1,)
    scale each class's term (see :func:`land_use_class_weights`)."""
    import torch

    if target == "dominant":
        return torch.nn.functional.cross_entropy(logits, dominant_class(cover), weight=weights)
    if target != "cover":
        raise ValueError(f"land-use target must be 'cover' or 'dominant', not {target!r}")
    target = _cover_target(cover)
    if weights is not None:
        target = target * weights
    return -(target * torch.log_softmax(logits, 1)).sum(1).mean()


def land_use_class_weights(cover: np.ndarray, balance: float) -> torch.Tensor:
    """(L+1,) class weights (mean share)^-balance from sampled cover (N, L), scaled so that the
    mean target's weighted sum is 1 (the loss keeps its scale); shares floored at 1e-3."""
    import torch

    share = _cover_target(torch.as_tensor(np.asarray(cover), dtype=torch.float32)).mean(0).clamp_min(1e-3)
    w = share ** -balance
    return w / (share * w).sum()


def training_block_tiles(
    features: OsmFeatures, split: Any, n: int, seed: int = 0, zoom: int = DEFAULT_ZOOM, min_content: float = 0.01,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Up to ``n`` labelled z``zoom`` tiles lying wholly in training blocks, land use hidden.

    Returns (tiles (n, C, H, W) uint8, labels, centers (n, 2) lon/lat): the validation set of
    ``TileTrainConfig.val_retrieval``, drawn like the evaluation's test tiles but from the
    training side of the spatial split (the whole region when ``split`` is None).
    """
    from geoseek.sources.osm import mercator_to_lonlat
    from geoseek.sources.render import dominant_land_use_batch, nonempty_tiles, render_xyz, xyz_bounds_m
    from geoseek.sources.tile_sampler import hide_land_use

    xy = np.asarray(nonempty_tiles(features, zoom), np.int64).reshape(-1, 2)
    bounds = np.array([xyz_bounds_m(zoom, int(x), int(y)) for x, y in xy]).reshape(-1, 4)
    if split is not None:
        keep = split.split_of_bounds(bounds) == "train"
        xy, bounds = xy[keep], bounds[keep]
    order = np.random.default_rng(20_000 + seed).permutation(len(xy))[: 3 * n]
    xy, bounds = xy[order], bounds[order]
    tiles = np.stack([render_xyz(features, zoom, int(x), int(y), TILE_PX) for x, y in xy]) if len(xy) else \
        np.zeros((0, len(features.layers), TILE_PX, TILE_PX), np.uint8)
    labels = dominant_land_use_batch(tiles)
    hidden = hide_land_use(tiles)
    seen = hidden.any(1).reshape(len(hidden), -1).mean(1) >= min_content
    keep = np.array([l is not None for l in labels], bool) & seen
    idx = np.flatnonzero(keep)[:n]
    centers = mercator_to_lonlat(np.stack([(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2], 1))
    return hidden[idx], [labels[i] for i in idx], centers[idx]


def train_tiles(
    region: str | Path,
    out: str | Path,
    cfg: TileTrainConfig | None = None,
    fit_cfg: Any = None,
    *,
    resume: bool = True,
    progress: bool = True,
    init: str | Path | None = None,
    members: int = 1,
) -> dict[str, Any]:
    """Train a tile encoder on ``region`` (OSM file) with :func:`geoseek.train.fit`; returns fit's summary.

    ``init``: start from this checkpoint's weights (path, or "default"; its model name and
    config replace ``cfg.model`` and ``cfg.dim``), with a fresh optimizer and schedule.
    ``members`` > 1: train that many models with seeds ``seed``, ``seed + 1``, ... (each saved and
    resumable at :func:`member_path`) and save their :func:`ensemble_checkpoints` at ``out``.
    """
    from dataclasses import replace

    from geoseek.train import FitConfig, fit

    if members > 1 and init is not None:
        raise InvalidInputError("--init and --ensemble do not combine: an ensemble's members train from scratch")
    cfg = cfg or TileTrainConfig()
    fit_cfg = fit_cfg or FitConfig(steps=1500, lr=2e-3, validate_every=100, threads=1)
    if cfg.val_retrieval > 0:
        fit_cfg = replace(fit_cfg, monitor="val_p10")
    start = None
    if init is not None:
        from geoseek.checkpoint import load_model

        start, payload = load_model(init, TASK) if str(init) == "default" else load_model(init)
        cfg = replace(cfg, model=payload["model"], dim=int(payload["config"].get("dim", cfg.dim)))
    features = load_features(region)
    if members > 1:
        out = Path(out)
        paths, runs = [], []
        for i in range(members):
            paths.append(member_path(out, i))
            runs.append(train_tiles(region, paths[-1], cfg, replace(fit_cfg, seed=fit_cfg.seed + i), resume=resume,
                                    progress=progress))
        info = ensemble_checkpoints(paths, out, features=features, seed=fit_cfg.seed)
        return {"best": info["metrics"], "history": [], "steps": fit_cfg.steps * members,
                "seconds": sum(r["seconds"] for r in runs), "members": [str(p) for p in paths]}
    task = TileTripletTask(features, cfg, seed=fit_cfg.seed, start=(start, payload["config"]) if start is not None else None)
    data = {"region": str(region), "source": Path(region).name, "split": task.sampler.cfg.to_dict()["split"],
            "task": asdict(cfg), **({"init": str(init)} if init is not None else {})}
    return fit(task, fit_cfg, out, data=data, resume=resume, progress=progress)


def member_path(out: str | Path, i: int) -> Path:
    """Where member ``i`` of the ensemble saved at ``out`` is trained: ``<stem>.m<i><suffix>`` beside it."""
    out = Path(out)
    return out.with_name(f"{out.stem}.m{i}{out.suffix}")


def ensemble_checkpoints(
    paths: Sequence[str | Path], out: str | Path, *, features: OsmFeatures | None = None, seed: int | None = None,
) -> dict[str, Any]:
    """Combine trained tile checkpoints into one ``tile-ensemble`` checkpoint at ``out`` (atomic).

    The members must come from the same region and spatial split (the evaluation reads both from
    the checkpoint). With ``features`` (that region) and members trained with ``--val-retrieval``,
    the ensemble's ``val_p10`` is measured on the first member's validation tiles (training
    blocks, land use hidden; drawn with ``seed``, by default that member's training seed).
    Returns {"out", "metrics", "members"}.
    """
    from geoseek.checkpoint import file_checksum, read_checkpoint, save_checkpoint
    from geoseek.encoders.tiles import TileEnsemble

    loaded = [read_checkpoint(p) for p in paths]
    if not loaded:
        raise InvalidInputError("an ensemble needs at least one checkpoint")
    keys = {(pl.get("data", {}).get("source"), json.dumps(pl.get("data", {}).get("split"), sort_keys=True)) for pl in loaded}
    if len(keys) > 1:
        raise InvalidInputError(f"ensemble members come from different regions or spatial splits: {sorted(keys)}")
    config = {"members": [{"model": pl["model"], "config": pl["config"]} for pl in loaded]}
    ens = TileEnsemble(config["members"])
    for member, pl in zip(ens.members, loaded):
        member.load_state_dict(pl["state_dict"])
    ens.eval()
    first = loaded[0]
    metrics: dict[str, Any] = {"members": [pl.get("metrics", {}) for pl in loaded]}
    n_val = int(first.get("data", {}).get("task", {}).get("val_retrieval", 0))
    if features is not None and n_val > 0:
        split = make_sampler(features, first["data"]["task"].get("sampler")).cfg.split
        seed = int(first.get("train", {}).get("seed", 0)) if seed is None else seed
        tiles, labels, centers = training_block_tiles(features, split, n_val, seed)
        metrics["val_p10"] = knn_report(embed_tiles(ens, tiles), labels, centers, 1000.0, ks=(10,))["p_at_10"]
        metrics["val_raw_p10"] = knn_report(_raw_vectors(tiles), labels, centers, 1000.0, metric="l2", ks=(10,))["p_at_10"]
    data = {**first.get("data", {}), "members": [{"path": str(p), "checksum": file_checksum(p)} for p in paths]}
    save_checkpoint(out, model_name="tile-ensemble", config=config, model=ens, metrics=metrics, data=data)
    return {"out": str(out), "metrics": metrics, "members": [str(p) for p in paths]}


# --- evaluation --------------------------------------------------------------------------------------


@dataclass
class EvalTiles:
    """Rendered, labelled XYZ tiles of a region (one row each)."""

    xyz: np.ndarray  # (N, 3) z, x, y
    tiles: np.ndarray  # (N, C, H, W) uint8
    labels: list[str | None]
    centers: np.ndarray  # (N, 2) lon, lat


def region_tiles(
    features: OsmFeatures, zoom: int = DEFAULT_ZOOM, size: int = TILE_PX, split: str = "all", split_cfg: Any = None,
    progress: bool = False, min_fraction: float = LABEL_MIN_FRACTION,
) -> EvalTiles:
    """Every non-empty XYZ tile of the region (optionally only those of one spatial ``split``)."""
    from tqdm.auto import tqdm

    from geoseek.sources.render import dominant_land_use_batch, nonempty_tiles, render_xyz, xyz_bounds_m
    from geoseek.sources.osm import mercator_to_lonlat
    from geoseek.sources.tile_sampler import SpatialSplit

    xy = np.asarray(nonempty_tiles(features, zoom), np.int64).reshape(-1, 2)
    bounds = np.array([xyz_bounds_m(zoom, int(x), int(y)) for x, y in xy]).reshape(-1, 4)
    if split != "all":
        s = (split_cfg or SpatialSplit()).split_of_bounds(bounds)
        keep = s == split
        xy, bounds = xy[keep], bounds[keep]
    tiles = np.zeros((len(xy), len(features.layers), size, size), np.uint8)
    for i, (x, y) in enumerate(tqdm(xy, desc="render", disable=not progress, unit="tile")):
        tiles[i] = render_xyz(features, zoom, int(x), int(y), size)
    keep = tiles.reshape(len(xy), -1).any(1)
    xy, bounds, tiles = xy[keep], bounds[keep], tiles[keep]
    centers = mercator_to_lonlat(np.stack([(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2], 1))
    xyz = np.concatenate([np.full((len(xy), 1), zoom), xy], 1)
    return EvalTiles(xyz, tiles, dominant_land_use_batch(tiles, min_fraction), centers)


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


def _raw_vectors(tiles: np.ndarray, pool: int = 1) -> np.ndarray:
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
) -> dict[str, Any]:
    """Our land-use retrieval protocol; see docs/osm-tiles.md.

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
    protocols = list(protocols)
    net, payload = load_model(model, TASK) if str(model) == "default" else load_model(model)
    trained_on = payload.get("data", {}).get("source", "")
    has_split = bool(payload.get("data", {}).get("split"))
    if split is None:
        split = "test" if has_split and trained_on == Path(region).name else "all"
    if split != "all" and not has_split:
        raise InvalidInputError(f"the model was trained with no held-out blocks: there is no {split!r} split (use --split all)")
    split_cfg = None
    if payload.get("data", {}).get("split"):
        s = payload["data"]["split"]
        split_cfg = SpatialSplit(block_m=s["block_m"], holdout=s["holdout"], seed=s["seed"])
    features = load_features(region)
    et = region_tiles(features, zoom, TILE_PX, split, split_cfg, progress, min_fraction)
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
            for k, v in knn_report(_raw_vectors(p_tiles), p_labels, p_centers, exclude_m, metric="l2", by_label=True).items():
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
        if result.get(f"{pre}raw_p_at_10"):
            result[f"{pre}ratio_vs_raw"] = result[f"{pre}p_at_10"] / result[f"{pre}raw_p_at_10"]
    result["seconds"] = time.time() - t0
    if figures is not None:
        stem = Path(region).name.split(".")[0]
        fdir = Path(figures)
        fdir.mkdir(parents=True, exist_ok=True)
        tiles, emb, labels, centers, proto = figure_data
        title = f"{stem}: {payload['model']} ({split} tiles, z{zoom}, land use {proto})"
        result["figures"] = [
            str(plot_embedding_map(emb, labels, fdir / f"tiles-embedding-{stem}.png", title, seed)),
            str(plot_retrieval_grid(tiles, emb, labels, centers, exclude_m, fdir / f"tiles-retrieval-{stem}.png", title, seed)),
        ]
    return result


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


# --- collections -------------------------------------------------------------------------------------


def build_osm_collection(
    region: str | Path,
    out: str | Path,
    model: str | Path = "default",
    *,
    zoom: int = DEFAULT_ZOOM,
    batch: int = 256,
    thumb_px: int = 64,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Render every non-empty XYZ tile of ``region`` at ``zoom``, embed, and store as a collection.

    Items: id ``"z/x/y"``, footprint, dominant land-use label (None when no land use covers 20 %),
    RGB PNG thumbnail, metadata (z, x, y, land-use fractions). The OSM file and the model are
    copied into the collection (``osm.pbf``-like name, ``model.pt``) so it serves basemap tiles
    and renders new query tiles with no other file.
    """
    from tqdm.auto import tqdm

    from geoseek.checkpoint import load_model
    from geoseek.collection import Collection, Item
    from geoseek.geo import tile_bounds
    from geoseek.sources.render import (
        dominant_land_use, land_use_fractions, nonempty_tiles, png_bytes, render_xyz, to_rgb,
    )

    t0 = time.time()
    region = Path(region)
    net, payload = load_model(model, TASK) if str(model) == "default" else load_model(model)
    features = load_features(region)
    t_read = time.time() - t0
    xy = nonempty_tiles(features, zoom)
    dim = int(getattr(net, "dim", 0)) or int(embed_tiles(net, np.zeros((1, len(features.layers), TILE_PX, TILE_PX), np.uint8)).shape[1])
    osm_name = "source" + "".join(region.suffixes[-2:]) if region.suffixes else "source.osm.pbf"
    n_items = 0
    t_render = t_embed = 0.0
    with Collection.create(
        out, modality=MODALITY, model_id=f"tiles-{payload['model']}", model_checksum=payload["checksum"], dim=dim,
        metric="ip", backend="faiss", overwrite=overwrite,
        extra={"zoom": zoom, "tile_px": TILE_PX, "osm_file": osm_name, "source": region.name,
               "model_file": "model.pt", "model_name": payload["model"]},
    ) as builder:
        bar = tqdm(total=len(xy), desc="build osm", unit="tile", disable=not progress)
        for i in range(0, len(xy), batch):
            chunk = xy[i : i + batch]
            ts = time.time()
            tiles = np.stack([render_xyz(features, zoom, x, y, TILE_PX) for x, y in chunk])
            keep = tiles.reshape(len(chunk), -1).any(1)
            chunk = [c for c, k in zip(chunk, keep) if k]
            tiles = tiles[keep]
            t_render += time.time() - ts
            if len(chunk):
                te = time.time()
                vecs = embed_tiles(net, tiles)
                t_embed += time.time() - te
                items = []
                for (x, y), t in zip(chunk, tiles):
                    fr = land_use_fractions(t)
                    items.append(Item(
                        id=f"{zoom}/{x}/{y}", name=f"tile {zoom}/{x}/{y}", footprint=tile_bounds(x, y, zoom).as_tuple(),
                        label=dominant_land_use(t), source=region.name, thumbnail=png_bytes(to_rgb(t), thumb_px),
                        metadata={"z": zoom, "x": x, "y": y, "land_use": {k: round(v, 4) for k, v in fr.items() if v > 0}},
                    ))
                builder.add(items, vecs)
                n_items += len(items)
            bar.update(len(xy[i : i + batch]))
        bar.close()
        builder.put_file(osm_name, region)
        builder.put_file("model.pt", payload["path"])
    seconds = time.time() - t0
    return {"collection": str(out), "items": n_items, "candidate_tiles": len(xy), "zoom": zoom, "seconds": seconds,
            "read_seconds": t_read, "render_seconds": t_render, "embed_seconds": t_embed,
            "tiles_per_s": n_items / max(seconds, 1e-9)}


class _CollectionContext:
    """The model, features and zoom behind an osm-tiles collection (memoized per collection path)."""

    _cache: dict[str, _CollectionContext] = {}

    def __init__(self, col: Collection) -> None:
        extra = col.manifest.get("extra", {}) or {}
        self.zoom = int(extra.get("zoom", DEFAULT_ZOOM))
        self.tile_px = int(extra.get("tile_px", TILE_PX))
        self.col = col
        self._features = None
        self._model = None
        self.osm_path = col.file(extra.get("osm_file", "source.osm.pbf"))
        self.model_path = col.file(extra.get("model_file", "model.pt"))

    @classmethod
    def of(cls, col: Collection) -> _CollectionContext:
        key = str(col.path)
        if key not in cls._cache:
            cls._cache[key] = cls(col)
        return cls._cache[key]

    @property
    def features(self) -> OsmFeatures:
        if self._features is None:
            if not Path(self.osm_path).is_file():
                raise NotFoundError(f"collection {self.col.path} has no OSM data file")
            self._features = load_features(self.osm_path)
        return self._features

    @property
    def model(self):
        if self._model is None:
            from geoseek.checkpoint import load_model

            self._model = load_model(self.model_path)[0]
        return self._model


def check_collection(col: Collection) -> None:
    if col.manifest.get("modality") != MODALITY:
        raise InvalidInputError(f"{col.path} is a {col.manifest.get('modality')!r} collection, not {MODALITY!r}")


def tile_id_at(col: Collection, lon: float, lat: float) -> str:
    """Id ("z/x/y") of the collection's tile containing (lon, lat)."""
    from geoseek.geo import lonlat_to_tile

    z = _CollectionContext.of(col).zoom
    x, y = lonlat_to_tile(lon, lat, z)
    return f"{z}/{x}/{y}"


def vector_at(col: Collection, lon: float, lat: float) -> tuple[np.ndarray, str | None]:
    """The embedding of the place at (lon, lat): the stored vector of its tile, or a fresh render.

    Returns (vector (D,), item id or None when the tile is not in the collection).
    """
    from geoseek.geo import as_lonlat, lonlat_to_tile
    from geoseek.sources.render import render_xyz

    check_collection(col)
    as_lonlat([[lon, lat]])  # validates ranges
    tid = tile_id_at(col, lon, lat)
    try:
        return np.asarray(col.vector(tid), np.float32), tid
    except (KeyError, NotFoundError):
        pass
    ctx = _CollectionContext.of(col)
    x, y = lonlat_to_tile(lon, lat, ctx.zoom)
    tile = render_xyz(ctx.features, ctx.zoom, x, y, ctx.tile_px)
    if not tile.any():
        raise NotFoundError(f"nothing is mapped at {lon:.5f},{lat:.5f} in this collection's OSM data")
    return embed_tiles(ctx.model, tile[None])[0], None


def _resolve(col: Collection, ref: str | tuple[float, float] | Sequence[float]) -> tuple[np.ndarray, str | None]:
    """An item id ("z/x/y") or a (lon, lat) pair → (vector, id or None)."""
    if isinstance(ref, str):
        if "," in ref and ref.count("/") == 0:
            from geoseek.geo import parse_lonlat

            lon, lat = parse_lonlat(ref)
            return vector_at(col, lon, lat)
        try:
            return np.asarray(col.vector(ref), np.float32), ref
        except KeyError:
            raise NotFoundError(f"no tile {ref!r} in {col.path}") from None
    lon, lat = (float(v) for v in ref)
    return vector_at(col, lon, lat)


def _normalize(v: np.ndarray) -> np.ndarray:
    return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)


def _search(col: Collection, v: np.ndarray, k: int, exclude: set[str], filter: Any = None) -> list[Hit]:
    from dataclasses import replace

    # ``Collection.search`` gives one ``Hits`` sequence per query; ``Hit.id`` reads the id without
    # building the item, and ``replace`` re-ranks a copy (the Hit is a plain dataclass)
    hits = col.search(_normalize(v)[None], k=k + len(exclude), filter=filter)[0]
    kept = [h for h in hits if h.id not in exclude][:k]
    return [replace(h, rank=i + 1) for i, h in enumerate(kept)]


def similar(col: Collection, lon: float, lat: float, k: int = 10, filter: Any = None, include_self: bool = False) -> list[Hit]:
    """Tiles most like the place at (lon, lat) ("places like this one"), best first."""
    if k <= 0:
        raise InvalidInputError(f"k must be > 0, got {k}")
    v, tid = vector_at(col, lon, lat)
    return _search(col, v, k, set() if include_self or tid is None else {tid}, filter)


def arithmetic(col: Collection, a: Any, b: Any, c: Any, k: int = 10, filter: Any = None) -> list[Hit]:
    """Tiles nearest to a + b − c (each an item id "z/x/y", "LON,LAT" or a (lon, lat) pair)."""
    va, ia = _resolve(col, a)
    vb, ib = _resolve(col, b)
    vc, ic = _resolve(col, c)
    return _search(col, va + vb - vc, k, {i for i in (ia, ib, ic) if i}, filter)


def interpolate(col: Collection, a: Any, b: Any, steps: int = 5, k: int = 1, filter: Any = None) -> list[list[Hit]]:
    """Walk from a to b in ``steps`` points (spherical interpolation); the k nearest tiles of each."""
    if steps < 2 or steps > 100:
        raise InvalidInputError(f"steps must be in 2..100, got {steps}")
    va, _ = _resolve(col, a)
    vb, _ = _resolve(col, b)
    va, vb = _normalize(va), _normalize(vb)
    omega = math.acos(float(np.clip(va @ vb, -1.0, 1.0)))
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        if omega < 1e-6:
            v = va
        else:
            v = (math.sin((1 - t) * omega) * va + math.sin(t * omega) * vb) / math.sin(omega)
        out.append(_search(col, v, k, set(), filter))
    return out


def basemap_png(col: Collection, z: int, x: int, y: int) -> bytes:
    """The collection's offline basemap tile (z, x, y) as PNG bytes."""
    from geoseek.sources.render import render_basemap_png

    if not 0 <= z <= 22:
        raise InvalidInputError(f"zoom must be 0..22, got {z}")
    return render_basemap_png(_CollectionContext.of(col).features, z, x, y)


def save_json(obj: Any, path: str | Path) -> None:
    Path(path).write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")
