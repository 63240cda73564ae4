"""Multi-positive InfoNCE (NT-Xent / supervised-contrastive style) between two embedding batches.

Every anchor row is scored against every reference row by cosine / temperature; the loss is
the cross-entropy of picking its positives (rows with the same label) out of all references,
averaged over each anchor's positives (Khosla et al. 2020, "SupCon", L_out) and over anchors
that have at least one positive. With instance ids as labels it is plain InfoNCE / CLIP; with
class ids it is the supervised, class-aware variant. Unlike a hinge on mined triplets it keeps
a gradient on every pair, so it does not stall at a collapsed solution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def info_nce_logits(emb: torch.Tensor, ref_emb: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cosine logits (N, M) / temperature of L2-normalized rows."""
    return F.normalize(emb, dim=-1) @ F.normalize(ref_emb, dim=-1).T / temperature


def multi_positive_nce(logits: torch.Tensor, pos: torch.Tensor, exclude: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over anchors with a positive of −mean_{p ∈ pos} log softmax(logits)[p].

    Args:
        logits: (N, M) similarity logits.
        pos: (N, M) bool, the positives of each anchor.
        exclude: (N, M) bool, references left out of the softmax (e.g. the anchor itself).
    """
    if exclude is not None:
        logits = logits.masked_fill(exclude, float("-inf"))
        pos = pos & ~exclude
    logp = logits.log_softmax(1)
    n_pos = pos.sum(1)
    ok = n_pos > 0
    if not ok.any():
        return logits.sum() * 0.0
    per = -(logp.masked_fill(~pos, 0.0).sum(1)[ok] / n_pos[ok])
    return per.mean()


class MultiPositiveInfoNCE(nn.Module):
    """Cross-modal (or in-batch) multi-positive InfoNCE.

    ``forward(emb, labels, ref_emb=None, ref_labels=None)``: anchors ``emb`` (N, D) against
    references ``ref_emb`` (M, D) (``emb`` itself, without the diagonal, when None). Positives
    are equal labels; a negative label (< 0) never matches anything, so such rows only act as
    negatives. ``symmetric`` adds the reference → anchor direction (CLIP-style).
    """

    def __init__(self, temperature: float = 0.07, symmetric: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.symmetric = symmetric

    def forward(
        self,
        emb: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        same = ref_emb is None
        ref = emb if same else ref_emb
        ref_labels = labels if ref_labels is None else ref_labels
        pos = (labels[:, None] == ref_labels[None, :]) & (labels[:, None] >= 0)
        exclude = torch.eye(len(emb), dtype=torch.bool, device=emb.device) if same else None
        logits = info_nce_logits(emb, ref, self.temperature)
        loss = multi_positive_nce(logits, pos, exclude)
        if self.symmetric and not same:
            loss = 0.5 * (loss + multi_positive_nce(logits.T, pos.T))
        return loss
