"""The geo-prior training task for :func:`geoseek.train.fit` and its entry point :func:`train_geoprior`.

Losses: cross-entropy (``loss="ce"``) or Sphere2Vec's presence–absence loss with random
negative locations uniform on the sphere (``loss="pa"``, :mod:`geoseek.losses.presence_absence`).
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from geoseek.capabilities.geoprior.evaluate import classification_metrics
from geoseek.encoders.geoprior import GeoPriorNet, predict_frozen
from geoseek.errors import InvalidInputError
from geoseek.losses.presence_absence import presence_absence_loss, random_sphere_lonlat
from geoseek.sources.occurrences import Occurrences


@dataclass
class GeoPriorConfig:
    """Training settings of one geo-prior model (stored in its checkpoint)."""

    encoder: str = "sphereM"
    encoder_params: dict[str, Any] = field(default_factory=dict)
    loss: str = "ce"  # ce | pa
    batch_size: int = 512
    num_negatives: int | None = None  # pa: random locations per step (default batch_size)
    pos_weight: float | None = None  # pa: weight of the positive term (default: num_classes)
    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in ("ce", "pa"):
            raise InvalidInputError(f"loss must be 'ce' or 'pa', got {self.loss!r}")
        if self.batch_size < 1 or self.steps < 1:
            raise InvalidInputError("batch_size and steps must be >= 1")


class GeoPriorTask:
    """A :class:`geoseek.train.TrainTask` for :func:`geoseek.train.fit`.

    The frozen features of the training and validation points are computed once; each step
    draws a batch (global torch RNG, seeded and checkpointed by ``fit``) and, for the
    presence–absence loss, fresh random locations uniform on the sphere.
    """

    model_name = "geoprior"

    def __init__(self, data: Occurrences, split: dict[str, np.ndarray], cfg: GeoPriorConfig) -> None:
        self.cfg = cfg
        params = dict(cfg.encoder_params)
        if cfg.encoder == "rbf" and "anchors" not in params:  # Sphere2Vec: anchors from training data
            rng = np.random.default_rng(cfg.seed)
            tr = split["train"]
            pick = rng.choice(tr, size=min(params.get("num_anchors", 200), len(tr)), replace=False)
            params["anchors"] = data.lonlat[pick].round(6).tolist()
        self.config = {"encoder": cfg.encoder, "num_classes": data.num_classes, "encoder_params": params}
        self.model = GeoPriorNet(**self.config)
        self.num_classes = data.num_classes
        tr, va = split["train"], split["val"]
        self.train_x = self.model.frozen_features(data.lonlat[tr])
        self.train_y = torch.from_numpy(data.labels[tr])
        self.val_x = self.model.frozen_features(data.lonlat[va]) if len(va) else None
        self.val_y = data.labels[va]

    def loss(self, step: int) -> tuple[Tensor, dict[str, float]]:
        idx = torch.randint(len(self.train_y), (self.cfg.batch_size,))
        logits = self.model.logits_from_frozen(self.train_x[idx])
        y = self.train_y[idx]
        if self.cfg.loss == "ce":
            return F.cross_entropy(logits, y), {}
        neg = random_sphere_lonlat(self.cfg.num_negatives or self.cfg.batch_size)
        rand_logits = self.model.logits_from_frozen(self.model.frozen_features(neg))
        return presence_absence_loss(logits, y, rand_logits, self.cfg.pos_weight), {}

    def validate(self) -> dict[str, float]:
        if self.val_x is None:
            return {}
        return classification_metrics(predict_frozen(self.model, self.val_x), self.val_y)


def train_geoprior(
    data: Occurrences,
    split: dict[str, np.ndarray],
    cfg: GeoPriorConfig,
    out: str | Path | None = None,
    *,
    progress: bool = True,
    threads: int | None = None,
    data_info: dict[str, Any] | None = None,
) -> tuple[GeoPriorNet, dict[str, Any]]:
    """Train with :func:`geoseek.train.fit`; returns (best model in eval mode, fit result).

    With ``out=None`` the checkpoint goes to a temporary directory (benchmarks).
    """
    from geoseek.checkpoint import read_checkpoint
    from geoseek.train import FitConfig, fit

    task = GeoPriorTask(data, split, cfg)
    two = data.num_classes == 2
    fit_cfg = FitConfig(
        steps=cfg.steps,
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
        warmup=min(50, cfg.steps // 10),
        validate_every=max(cfg.steps // 2, 1),
        monitor="auc" if two else "mrr",
        seed=cfg.seed,
        threads=threads,
        extra={"geoprior": asdict(cfg)},
    )
    info = {"name": data.name, "n": len(data), "classes": data.num_classes, **(data_info or {})}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(out) if out is not None else Path(tmp) / "geoprior.pt"
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
        with quiet:  # fit reports each validation on stdout; benchmarks keep stdout for their table
            result = fit(task, fit_cfg, path, data=info, resume=out is not None, progress=progress)
        state = read_checkpoint(path)["state_dict"]
    task.model.load_state_dict(state)
    task.model.eval()
    return task.model, result
