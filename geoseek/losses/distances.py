"""Pairwise distances between embedding batches: (N, D) × (M, D) → (N, M)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class EuclideanDistance:
    """‖a − b‖₂ (``squared=False``) or ‖a − b‖₂² ; ``normalize`` L2-normalizes inputs first."""

    def __init__(self, normalize: bool = True, squared: bool = False) -> None:
        self.normalize = normalize
        self.squared = squared

    def __call__(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        b = a if b is None else b
        if self.normalize:
            a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        d2 = (a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1)[None, :] - 2 * a @ b.T).clamp_min(0)
        return d2 if self.squared else (d2 + 1e-12).sqrt()

    def pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Row-wise distance between aligned rows of a and b, shape (N,)."""
        if self.normalize:
            a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
        d2 = (a - b).pow(2).sum(-1)
        return d2 if self.squared else (d2 + 1e-12).sqrt()


class CosineDistance:
    """1 − cos(a, b), in [0, 2]."""

    def __call__(self, a: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
        b = a if b is None else b
        return 1 - F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T

    def pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return 1 - (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1)
