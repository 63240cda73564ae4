"""Geo-aware classification from location alone (a "geo prior", Mac Aodha et al. 2019).

A :class:`GeoPriorNet` is a registered location encoder (position encoding + head) followed
by a linear classifier: (lon, lat) degrees → class logits. It is trained with
:func:`geoseek.train.fit` using either cross-entropy (``loss="ce"``) or Sphere2Vec's
presence–absence loss with random negative locations uniform on the sphere (``loss="pa"``,
:mod:`geoseek.losses.presence_absence`).

Datasets (:func:`load_dataset`): ``inat`` (YFCC100M × iNat2017 species), the synthetic
von Mises–Fisher sets of :data:`geoseek.sources.occurrences.VMF_SETS`, and ``ariolimax``
(presence vs background, scored by ROC AUC). Each is split per class with
:func:`~geoseek.sources.occurrences.split_per_class` (70 / 10 / 20 %, ``split_seed``).

Metrics (:func:`classification_metrics`): top-1, top-3 accuracy and MRR of the true class
(:func:`geoseek.evaluate.classification_report`), plus ROC AUC for two-class sets.
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
from torch import Tensor, nn

from geoseek.encoders.registry import create_location_encoder, register_model
from geoseek.errors import InvalidInputError
from geoseek.evaluate import classification_report
from geoseek.losses.presence_absence import presence_absence_loss, random_sphere_lonlat
from geoseek.sources.occurrences import (
    ARIOLIMAX_FILE,
    INAT_FILE,
    VMF_SETS,
    Occurrences,
    load_ariolimax,
    load_inat_yfcc,
    vmf_mixture,
)

DATASETS = ("inat", *VMF_SETS, "ariolimax")


def load_dataset(name: str, data_dir: str | Path, seed: int = 0) -> Occurrences:
    """``inat`` | ``vmf-global`` | ``vmf-polar`` | ``vmf-polar-tight`` | ``ariolimax``.

    ``seed`` only affects the synthetic sets (their generator seed).
    """
    data_dir = Path(data_dir)
    if name == "inat":
        return load_inat_yfcc(data_dir / INAT_FILE)
    if name == "ariolimax":
        return load_ariolimax(data_dir / ARIOLIMAX_FILE)
    if name in VMF_SETS:
        return vmf_mixture(name, seed=seed)
    raise InvalidInputError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")


@register_model("geoprior", task="geoprior")
class GeoPriorNet(nn.Module):
    """Location encoder ``encoder`` (built with ``encoder_params``) + linear classifier → logits (N, C)."""

    def __init__(self, encoder: str = "sphereM", num_classes: int = 2, encoder_params: dict[str, Any] | None = None):
        super().__init__()
        if num_classes < 2:
            raise InvalidInputError(f"num_classes must be >= 2, got {num_classes}")
        self.encoder = create_location_encoder(encoder, **(encoder_params or {}))
        self.classifier = nn.Linear(self.encoder.out_dim, num_classes)

    def forward(self, lonlat: object) -> Tensor:
        return self.classifier(self.encoder(lonlat))

    def frozen_features(self, lonlat: object) -> Tensor:
        """Cacheable part of the forward pass (see ``LocationEncoder.frozen_features``)."""
        with torch.no_grad():
            return self.encoder.frozen_features(lonlat)

    def logits_from_frozen(self, features: Tensor) -> Tensor:
        return self.classifier(self.encoder.from_frozen(features))


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


def classification_metrics(logits: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """top1, top3, mrr of the true class; ``auc`` too for two classes (score = logit₁ − logit₀)."""
    logits = np.asarray(logits, dtype=np.float64)
    out = classification_report(logits, targets, ks=(1, 3))
    if logits.shape[1] == 2:
        from sklearn.metrics import roc_auc_score

        score = logits[:, 1] - logits[:, 0]
        out["auc"] = float(roc_auc_score(targets, score)) if len(np.unique(targets)) == 2 else float("nan")
    return out


def frequency_baseline(train_labels: np.ndarray, test_labels: np.ndarray, num_classes: int) -> dict[str, float]:
    """The no-prior baseline: every location gets the training class frequencies as scores.

    Ties between equally frequent classes are broken by class index (no credit for ties).
    """
    counts = np.bincount(train_labels, minlength=num_classes).astype(np.float64)
    scores = counts - 1e-6 * np.arange(num_classes) / num_classes
    logits = np.broadcast_to(scores, (len(test_labels), num_classes))
    return classification_metrics(logits, test_labels)


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


@torch.no_grad()
def predict_frozen(model: GeoPriorNet, features: Tensor, batch: int = 4096) -> np.ndarray:
    """Logits (N, C) from cached frozen features, in batches."""
    model.eval()
    return torch.cat([model.logits_from_frozen(features[i : i + batch]) for i in range(0, len(features), batch)]).numpy()


@torch.no_grad()
def predict(model: GeoPriorNet, lonlat: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Logits (N, C) for (N, 2) (lon, lat) degrees."""
    model.eval()
    return torch.cat([model(lonlat[i : i + batch]) for i in range(0, len(lonlat), batch)]).numpy()


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


def evaluate_geoprior(model: GeoPriorNet, data: Occurrences, idx: np.ndarray) -> dict[str, float]:
    """Metrics of ``model`` on the points ``idx`` of ``data``."""
    return classification_metrics(predict(model, data.lonlat[idx]), data.labels[idx])
