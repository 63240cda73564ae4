"""The tiles training task: Loc2Vec triplets for the shared loop (:func:`geoseek.train.fit`).

* :class:`TileTrainConfig` — what ``geoseek train tiles`` trains (the optimization is a FitConfig);
* :class:`TileTripletTask` — the :class:`geoseek.train.TrainTask`: Loc2Vec triplets
  (:mod:`geoseek.sources.tile_sampler`), triplet margin loss, optional hard negatives mined in
  the batch with the current model, optional masked land-use objective
  (:mod:`geoseek.capabilities.tiles.losses`); validation = triplet accuracy on a fixed set of
  triplets from the training area (and, optionally, land-use P@10 on its tiles);
* :func:`train_tiles` — the train entry point (one model, or an ensemble of several seeds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseek.capabilities.tiles.data import TASK, embed_tiles, load_features, make_sampler, training_block_tiles
from geoseek.capabilities.tiles.ensemble import ensemble_checkpoints, member_path
from geoseek.capabilities.tiles.evaluate import knn_report, raw_vectors
from geoseek.capabilities.tiles.losses import land_use_class_weights, land_use_loss
from geoseek.errors import InvalidInputError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from geoseek.sources.osm import OsmFeatures


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
    mix: str = "sqrt"
    """Several regions: how a batch's pairs are shared among them (:class:`geoseek.capabilities.common.regions.RegionMix`;
    "sqrt": each pair draws its region with probability ∝ sqrt(its non-empty z16 cells))."""


class TileTripletTask:
    """Loc2Vec training task for :func:`geoseek.train.fit`."""

    def __init__(
        self, features: OsmFeatures | list[OsmFeatures], cfg: TileTrainConfig, seed: int = 0,
        start: tuple[nn.Module, dict[str, Any]] | None = None,
    ) -> None:
        """``start``: (model, its config) to train from instead of a new ``cfg.model``. ``features``: one
        region, or several (a :class:`~geoseek.capabilities.tiles.multi.MixedSampler` shares each batch
        among them by ``cfg.mix``; validation sets are drawn from every region)."""
        import torch

        from geoseek.losses.triplet import TripletMarginLoss

        self.cfg = cfg
        self.model_name = cfg.model
        # new weights drawn from ``seed`` (not from whatever the global RNG held), so that one command
        # trains the same model twice; the global RNG is left as it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self._init_modules(cfg, start)
        feats = list(features) if isinstance(features, (list, tuple)) else [features]
        samplers = [make_sampler(f, cfg.sampler) for f in feats]
        if len(samplers) == 1:
            self.sampler = samplers[0]
        else:
            from geoseek.capabilities.tiles.multi import MixedSampler

            self.sampler = MixedSampler(samplers, cfg.mix)
        self.aux_weights: torch.Tensor | None = None
        if self.aux is not None and cfg.land_use_balance > 0:
            _, _, cover = self.sampler.sample_pairs(256, np.random.default_rng(30_000 + seed), land_use=True)
            self.aux_weights = land_use_class_weights(cover.reshape(-1, cover.shape[-1]), cfg.land_use_balance)
        self.loss_fn = TripletMarginLoss(margin=cfg.margin, average_nonzero=True)
        self.seed = seed
        rng = np.random.default_rng(10_000 + seed)
        self.val_tiles, self.val_centers = self.sampler.sample(cfg.val_triplets, rng) if cfg.val_triplets > 0 else (None, None)
        self._torch = torch
        self.val_set: tuple[np.ndarray, list[str], np.ndarray] | None = None
        self.val_raw: dict[str, float] = {}
        if cfg.val_retrieval > 0 and len(feats) == 1:
            self.val_set = training_block_tiles(feats[0], self.sampler.cfg.split, cfg.val_retrieval, seed)
        elif cfg.val_retrieval > 0:
            from geoseek.capabilities.tiles.multi import pooled_block_tiles

            self.val_set = pooled_block_tiles(feats, samplers, cfg.val_retrieval, seed)
        if self.val_set is not None:
            tiles, labels, centers = self.val_set
            self.val_raw = knn_report(raw_vectors(tiles), labels, centers, 1000.0, metric="l2", ks=(10,))

    def _init_modules(self, cfg: TileTrainConfig, start: tuple[nn.Module, dict[str, Any]] | None) -> None:
        """The encoder (new, or ``start``'s) and the land-use head, if any."""
        import torch

        from geoseek.encoders.registry import MODELS

        if start is not None:
            self.model, self.config = start[0], dict(start[1])
        else:
            self.config = {"dim": cfg.dim, **cfg.model_config}
            if cfg.model == "tile-efficientnet-lite0":
                self.config["pretrained"] = True
            self.model = MODELS.create(cfg.model, **self.config)
            if cfg.model == "tile-efficientnet-lite0":
                self.config["pretrained"] = False  # a checkpoint carries its own weights
        self.aux: nn.Module | None = None
        if cfg.land_use_aux > 0:
            from geoseek.sources.layers import LAND_USE_LAYERS

            self.aux = torch.nn.Linear(cfg.dim, len(LAND_USE_LAYERS) + 1)

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
        if self.val_tiles is None:
            return {"val": 0.0}
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


def train_tiles(
    region: str | Path | list[str | Path],
    out: str | Path,
    cfg: TileTrainConfig | None = None,
    fit_cfg: Any = None,
    *,
    resume: bool = True,
    progress: bool = True,
    init: str | Path | None = None,
    members: int = 1,
) -> dict[str, Any]:
    """Train a tile encoder on ``region`` (OSM file, or a list of them) with :func:`geoseek.train.fit`; returns fit's summary.

    Several regions: each batch's pairs are shared among them by ``cfg.mix`` (see
    :class:`~geoseek.capabilities.tiles.multi.MixedSampler`); windows are ``window_m`` ground
    metres wide in every region, whatever its latitude.

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
    regions = list(region) if isinstance(region, (list, tuple)) else [region]
    if not regions:
        raise InvalidInputError("train tiles needs at least one OSM file")
    feats = [load_features(r) for r in regions]
    features = feats[0] if len(feats) == 1 else feats
    if members > 1:
        out = Path(out)
        paths, runs = [], []
        for i in range(members):
            paths.append(member_path(out, i))
            runs.append(train_tiles(region, paths[-1], cfg, replace(fit_cfg, seed=fit_cfg.seed + i), resume=resume,
                                    progress=progress))
        info = ensemble_checkpoints(paths, out, features=feats[0] if len(feats) == 1 else None, seed=fit_cfg.seed)
        return {"best": info["metrics"], "history": [], "steps": fit_cfg.steps * members,
                "seconds": sum(r["seconds"] for r in runs), "members": [str(p) for p in paths]}
    task = TileTripletTask(features, cfg, seed=fit_cfg.seed, start=(start, payload["config"]) if start is not None else None)
    if len(regions) == 1:
        data = {"region": str(regions[0]), "source": Path(regions[0]).name, "split": task.sampler.cfg.to_dict()["split"],
                "task": asdict(cfg), **({"init": str(init)} if init is not None else {})}
    else:
        data = {"regions": [str(r) for r in regions], "source": "+".join(Path(r).name for r in regions),
                "sources": [Path(r).name for r in regions], "split": task.sampler.cfg.to_dict()["split"],
                "mix": task.sampler.mix.to_dict(), "task": asdict(cfg), **({"init": str(init)} if init is not None else {})}
    return fit(task, fit_cfg, out, data=data, resume=resume, progress=progress)
