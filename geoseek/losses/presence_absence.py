"""Sphere2Vec's presence–absence loss for location-only species classifiers.

The "full" loss of Mac Aodha et al. (2019), as Sphere2Vec trains its geo-aware classifiers:
with per-class presence probabilities ``p = σ(f(x))`` (N, C) at the observed locations ``x``
with labels ``y``, and ``p' = σ(f(x'))`` (M, C) at random locations ``x'`` drawn uniformly on
the sphere,

    L = mean_{i,c} [ λ·[c = y_i]·(−log p_ic) + [c ≠ y_i]·(−log(1 − p_ic)) ]
        + mean_{j,c} (−log(1 − p'_jc))

``λ`` (``pos_weight``) up-weights the single positive per row (default: the number of
classes C). The logs are computed as softplus of the logits (stable; the papers use
``−log(p + 1e−5)``, which differs only for saturated probabilities).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def random_sphere_lonlat(n: int, *, generator: torch.Generator | None = None, device=None) -> Tensor:
    """``n`` (lon, lat) degree points uniform on the sphere (lat = asin(U(−1, 1)))."""
    u = torch.rand(n, 2, generator=generator, device=device)
    lon = u[:, 0] * 360.0 - 180.0
    lat = torch.rad2deg(torch.asin(u[:, 1] * 2.0 - 1.0))
    return torch.stack([lon, lat], dim=1)


def presence_absence_loss(
    logits: Tensor, targets: Tensor, rand_logits: Tensor | None = None, pos_weight: float | None = None
) -> Tensor:
    """The loss above. ``logits`` (N, C), ``targets`` (N,) int64, ``rand_logits`` (M, C) or None."""
    n, c = logits.shape
    lam = float(c if pos_weight is None else pos_weight)
    neg = F.softplus(logits)  # −log(1 − σ(z))
    pos_mask = F.one_hot(targets, c).to(logits.dtype)
    pos = F.softplus(-logits)  # −log σ(z)
    loss = (neg * (1 - pos_mask) + lam * pos * pos_mask).mean()
    if rand_logits is not None and rand_logits.numel():
        loss = loss + F.softplus(rand_logits).mean()
    return loss


class PresenceAbsenceLoss(torch.nn.Module):
    """Module form of :func:`presence_absence_loss`."""

    def __init__(self, pos_weight: float | None = None) -> None:
        super().__init__()
        self.pos_weight = pos_weight

    def forward(self, logits: Tensor, targets: Tensor, rand_logits: Tensor | None = None) -> Tensor:
        return presence_absence_loss(logits, targets, rand_logits, self.pos_weight)


__all__ = ["presence_absence_loss", "PresenceAbsenceLoss", "random_sphere_lonlat"]
