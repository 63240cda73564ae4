"""GIMI's training task: the fusion heads over precomputed features, for :func:`geoseek.train.fit`.

The three trained methods share the batch sampler (P classes × K images), the miner, the
optimizer (:func:`geoseek.train.fit`) and the seed, so the only difference between Triplet and
DPT is the penalty term:

* **Softmax** — a classifier over the relevance labels (:class:`~geoseek.losses.softmax.SoftmaxLoss`,
  cosine logits), retrieval by the embedding;
* **Triplet** — :class:`~geoseek.losses.TripletMarginLoss` over semi-hard triplets;
* **DPT** — the same miner and margin with :class:`~geoseek.losses.dpt.DistancePenalizedTripletLoss`
  (the geographic penalty P).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from geoseek.capabilities.gimi.data import GeoImageFeatures
from geoseek.capabilities.gimi.evaluate import retrieval_metrics
from geoseek.errors import InvalidInputError

Method = Literal["softmax", "triplet", "dpt"]


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
