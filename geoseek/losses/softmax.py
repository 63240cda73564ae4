"""Softmax classification loss for metric learning: a linear classifier on the embeddings.

GIMI's "Softmax" baseline trains the embedding as the penultimate layer of a classifier
(cross-entropy over the relevance labels) and then retrieves with the embedding itself. The
classifier's weights live in this module, not in the encoder, so a retrieval checkpoint does
not carry them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class SoftmaxLoss(nn.Module):
    """Cross-entropy of a linear classifier over embeddings (N, D) → logits (N, C).

    Args:
        embedding_dim: D.
        num_classes: C.
        normalized: classify L2-normalized embeddings with L2-normalized class weights and a
            temperature (NormFace / cosine softmax), matching retrieval by cosine; otherwise a
            plain affine layer.
        temperature: divisor of the cosine logits when ``normalized`` (e.g. 0.05).
    """

    def __init__(self, embedding_dim: int, num_classes: int, normalized: bool = True, temperature: float = 0.05) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"a softmax loss needs at least 2 classes, got {num_classes}")
        self.normalized = normalized
        self.temperature = float(temperature)
        self.classifier = nn.Linear(embedding_dim, num_classes, bias=not normalized)

    def logits(self, emb: torch.Tensor) -> torch.Tensor:
        """Class scores (N, C)."""
        if self.normalized:
            return F.normalize(emb, dim=-1) @ F.normalize(self.classifier.weight, dim=-1).T / self.temperature
        return self.classifier(emb)

    def forward(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.logits(emb), labels)
