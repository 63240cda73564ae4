"""Triplet margin loss: mean over triplets of [d(a, p) − d(a, n) + margin]₊."""

from __future__ import annotations

import torch
from torch import nn

from geoseek.losses.distances import EuclideanDistance
from geoseek.losses.miners import Triplets


def triplet_margin(d_ap: torch.Tensor, d_an: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-triplet hinge [d_ap − d_an + margin]₊, shape (T,)."""
    return torch.relu(d_ap - d_an + margin)


class TripletMarginLoss(nn.Module):
    """Triplet loss over mined index triplets.

    ``forward(emb, labels, triplets, ref_emb=None)`` scores anchors from ``emb`` against
    positives/negatives from ``ref_emb`` (``emb`` itself when None). The reduction averages
    over triplets with a positive loss when ``average_nonzero`` (PML's default reducer), else
    over all; an empty triplet set gives a zero loss that still has a graph.
    """

    def __init__(self, margin: float = 0.2, distance: EuclideanDistance | None = None, average_nonzero: bool = True):
        super().__init__()
        self.margin = margin
        self.distance = distance or EuclideanDistance()
        self.average_nonzero = average_nonzero

    def forward(
        self, emb: torch.Tensor, labels: torch.Tensor | None, triplets: Triplets, ref_emb: torch.Tensor | None = None
    ) -> torch.Tensor:
        ref = emb if ref_emb is None else ref_emb
        if len(triplets.anchor) == 0:
            return emb.sum() * 0.0
        a = emb[triplets.anchor]
        d_ap = self.distance.pair(a, ref[triplets.positive])
        d_an = self.distance.pair(a, ref[triplets.negative])
        losses = triplet_margin(d_ap, d_an, self.margin)
        if self.average_nonzero:
            nz = losses > 0
            return losses[nz].mean() if nz.any() else losses.sum() * 0.0
        return losses.mean()
