"""Triplet miners: pick (anchor, positive, negative) indices from a labelled batch.

Labels are integer class ids (N,); two rows are positives when their labels are equal.
Miners never return a triplet with anchor == positive. A miner may be given a separate
reference batch (``ref_emb``, ``ref_labels``) to draw positives/negatives from another
modality (e.g. sketch anchors, image positives and negatives).
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from geoseek.losses.distances import EuclideanDistance


class Triplets(NamedTuple):
    """Index tensors (T,): rows of the anchor batch and of the reference batch."""

    anchor: torch.Tensor
    positive: torch.Tensor
    negative: torch.Tensor


def _masks(labels: torch.Tensor, ref_labels: torch.Tensor, same_batch: bool) -> tuple[torch.Tensor, torch.Tensor]:
    pos = labels[:, None] == ref_labels[None, :]
    if same_batch:
        pos.fill_diagonal_(False)
    neg = labels[:, None] != ref_labels[None, :]
    return pos, neg


class AllTripletsMiner:
    """Every valid (a, p, n) triplet (O(N³) memory: for small batches)."""

    def __call__(self, emb, labels, ref_emb=None, ref_labels=None) -> Triplets:
        same = ref_labels is None
        ref_labels = labels if same else ref_labels
        pos, neg = _masks(labels, ref_labels, same)
        valid = pos[:, :, None] & neg[:, None, :]
        a, p, n = valid.nonzero(as_tuple=True)
        return Triplets(a, p, n)


class BatchHardMiner:
    """For each anchor: the farthest positive and the nearest negative (Hermans et al. 2017)."""

    def __init__(self, distance: EuclideanDistance | None = None) -> None:
        self.distance = distance or EuclideanDistance()

    @torch.no_grad()
    def __call__(self, emb, labels, ref_emb=None, ref_labels=None) -> Triplets:
        same = ref_emb is None
        ref_emb = emb if same else ref_emb
        ref_labels = labels if same else ref_labels
        d = self.distance(emb, ref_emb)
        pos, neg = _masks(labels, ref_labels, same)
        ok = pos.any(1) & neg.any(1)
        hardest_pos = d.masked_fill(~pos, float("-inf")).argmax(1)
        hardest_neg = d.masked_fill(~neg, float("inf")).argmin(1)
        idx = ok.nonzero(as_tuple=True)[0]
        return Triplets(idx, hardest_pos[idx], hardest_neg[idx])


class SemiHardMiner:
    """Triplets whose negative is farther than the positive but within ``margin`` (FaceNet).

    For each (anchor, positive) pair, the nearest negative with d(a, n) > d(a, p); pairs with
    no semi-hard negative fall back to the hardest negative when ``fallback_hard`` is set.
    """

    def __init__(self, margin: float = 0.2, distance: EuclideanDistance | None = None, fallback_hard: bool = True):
        self.margin = margin
        self.distance = distance or EuclideanDistance()
        self.fallback_hard = fallback_hard

    @torch.no_grad()
    def __call__(self, emb, labels, ref_emb=None, ref_labels=None) -> Triplets:
        same = ref_emb is None
        ref_emb = emb if same else ref_emb
        ref_labels = labels if same else ref_labels
        d = self.distance(emb, ref_emb)
        pos, neg = _masks(labels, ref_labels, same)
        a, p = pos.nonzero(as_tuple=True)
        if len(a) == 0:
            e = torch.empty(0, dtype=torch.long)
            return Triplets(e, e, e)
        dap = d[a, p]
        dan = d[a]  # (P, M)
        semi = neg[a] & (dan > dap[:, None]) & (dan < dap[:, None] + self.margin)
        semi_choice = dan.masked_fill(~semi, float("inf")).argmin(1)
        has_semi = semi.any(1)
        hard_choice = dan.masked_fill(~neg[a], float("inf")).argmin(1)
        has_neg = neg[a].any(1)
        n = torch.where(has_semi, semi_choice, hard_choice)
        keep = has_semi | (has_neg & self.fallback_hard)
        return Triplets(a[keep], p[keep], n[keep])
