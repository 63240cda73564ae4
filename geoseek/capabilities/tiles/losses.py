"""The masked land-use objective of tile training (``TileTrainConfig.land_use_aux``).

A linear head on the embedding predicts each training tile's land-use cover (N, L) — the shares
of its own land-use channels, measured before they were blanked — as soft targets with a "none"
share appended (``target="cover"``), or as the evaluation's dominant label (``"dominant"``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from geoseek.sources.layers import LABEL_MIN_FRACTION

if TYPE_CHECKING:
    import torch


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
