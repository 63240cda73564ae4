"""Distance-penalized triplet loss (DPT, GIMI) and the geographic penalty it adds.

For an (anchor, positive, negative) triplet with embeddings f(·) and locations x (lon, lat)::

    L_DPT = [ ‖f(a) − f(p)‖ − ‖f(a) − f(n)‖ + P(x_a, x_p, x_n) + α ]₊
    P(x_a, x_p, x_n) = q(x_a, x_p) + q(x_a, x_n) − q(x_p, x_n)

``q`` is a bounded function of the great-circle distance d (metres) between two locations,
chosen by :class:`GeoPenalty`:

* ``"normalized"``: q(d) = λ · min(d / s, 1) — distance normalized by a scale s (metres) and
  truncated at 1. A truncated metric is still a metric, so by the triangle inequality
  P ∈ [0, 2λ].
* ``"gaussian"``: q(d) = λ · (1 − exp(−d² / (2 s²))) — a kernelized distance (one minus an RBF
  kernel of bandwidth s metres), smooth near 0 and saturating at λ. P lies in [−λ, 2λ].
* ``"none"``: q = 0, which reduces DPT to the plain triplet margin loss.

P is twice the Gromov product (x_p | x_n) at x_a under q: it is ~0 when the anchor lies
between (or next to) the positive and the negative, and grows when positive and negative lie
together far from the anchor, i.e. when geography does not tell them apart as seen from the
anchor; DPT then asks the embedding for a larger margin on that triplet.

Locations never receive gradients; the loss is differentiable in the embeddings.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from geoseek.geo import EARTH_RADIUS_M
from geoseek.losses.distances import EuclideanDistance
from geoseek.losses.miners import Triplets

PenaltyKind = Literal["normalized", "gaussian", "none"]


def haversine_m_torch(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Great-circle distance in metres between (…, 2) (lon, lat) degree tensors (broadcasting), float64."""
    a = a.to(torch.float64)
    b = b.to(torch.float64)
    lon1, lat1 = torch.deg2rad(a[..., 0]), torch.deg2rad(a[..., 1])
    lon2, lat2 = torch.deg2rad(b[..., 0]), torch.deg2rad(b[..., 1])
    h = torch.sin((lat2 - lat1) / 2) ** 2 + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * torch.arcsin(torch.sqrt(h.clamp(0.0, 1.0)))


@dataclass(frozen=True)
class GeoPenalty:
    """The function q of great-circle distance used by DPT.

    Attributes:
        kind: ``"normalized"`` (λ·min(d/s, 1)), ``"gaussian"`` (λ·(1 − exp(−d²/2s²))) or ``"none"``.
        scale_m: s, metres: the normalizing distance or the kernel bandwidth (> 0).
        weight: λ ≥ 0, in embedding-distance units (compare with the margin α).
    """

    kind: PenaltyKind = "normalized"
    scale_m: float = 50_000.0
    weight: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in ("normalized", "gaussian", "none"):
            raise ValueError(f"GeoPenalty.kind must be 'normalized', 'gaussian' or 'none', got {self.kind!r}")
        if not (math.isfinite(self.scale_m) and self.scale_m > 0):
            raise ValueError(f"GeoPenalty.scale_m must be a positive number of metres, got {self.scale_m}")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ValueError(f"GeoPenalty.weight must be >= 0, got {self.weight}")

    def q(self, d_m: torch.Tensor) -> torch.Tensor:
        """q(d) for distances ``d_m`` in metres (any shape), same shape, float64."""
        d = d_m.to(torch.float64)
        if self.kind == "none" or self.weight == 0:
            return torch.zeros_like(d)
        if self.kind == "normalized":
            return self.weight * (d / self.scale_m).clamp(max=1.0)
        return self.weight * (1.0 - torch.exp(-(d**2) / (2.0 * self.scale_m**2)))

    def penalty(self, x_a: torch.Tensor, x_p: torch.Tensor, x_n: torch.Tensor) -> torch.Tensor:
        """P = q(x_a, x_p) + q(x_a, x_n) − q(x_p, x_n) for (T, 2) (lon, lat) degrees → (T,) float64."""
        return (
            self.q(haversine_m_torch(x_a, x_p)) + self.q(haversine_m_torch(x_a, x_n)) - self.q(haversine_m_torch(x_p, x_n))
        )

    def to_dict(self) -> dict:
        return asdict(self)


def dpt_margin(d_ap: torch.Tensor, d_an: torch.Tensor, penalty: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-triplet DPT hinge [d_ap − d_an + P + α]₊, shape (T,)."""
    return torch.relu(d_ap - d_an + penalty.to(d_ap.dtype) + margin)


class DistancePenalizedTripletLoss(nn.Module):
    """DPT over mined index triplets (same calling convention as :class:`~geoseek.losses.TripletMarginLoss`).

    ``forward(emb, labels, triplets, lonlat, ref_emb=None, ref_lonlat=None)``: anchors are rows of
    ``emb`` (N, D) located at ``lonlat`` (N, 2) degrees; positives and negatives are rows of
    ``ref_emb`` / ``ref_lonlat`` (``emb`` / ``lonlat`` when None). Reduction: the mean over
    triplets with a positive loss when ``average_nonzero`` (else over all); an empty triplet set
    gives a zero loss that keeps the graph.

    Args:
        margin: α, in embedding-distance units.
        penalty: the geographic penalty q (default :class:`GeoPenalty` ()).
        distance: embedding distance (default Euclidean on L2-normalized embeddings).
    """

    def __init__(
        self,
        margin: float = 0.2,
        penalty: GeoPenalty | None = None,
        distance: EuclideanDistance | None = None,
        average_nonzero: bool = True,
    ) -> None:
        super().__init__()
        self.margin = float(margin)
        self.penalty = penalty or GeoPenalty()
        self.distance = distance or EuclideanDistance()
        self.average_nonzero = average_nonzero

    def forward(
        self,
        emb: torch.Tensor,
        labels: torch.Tensor | None,
        triplets: Triplets,
        lonlat: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_lonlat: torch.Tensor | None = None,
    ) -> torch.Tensor:
        ref = emb if ref_emb is None else ref_emb
        ref_ll = lonlat if ref_lonlat is None else ref_lonlat
        if lonlat.shape != (emb.shape[0], 2) or ref_ll.shape != (ref.shape[0], 2):
            raise ValueError(
                f"lonlat must be (N, 2) (lon, lat) degrees aligned with the embeddings, got {tuple(lonlat.shape)} "
                f"for {emb.shape[0]} anchors and {tuple(ref_ll.shape)} for {ref.shape[0]} references"
            )
        if len(triplets.anchor) == 0:
            return emb.sum() * 0.0
        a, p, n = triplets
        e_a = emb[a]
        d_ap = self.distance.pair(e_a, ref[p])
        d_an = self.distance.pair(e_a, ref[n])
        pen = self.penalty.penalty(lonlat[a], ref_ll[p], ref_ll[n])
        losses = dpt_margin(d_ap, d_an, pen, self.margin)
        if self.average_nonzero:
            nz = losses > 0
            return losses[nz].mean() if nz.any() else losses.sum() * 0.0
        return losses.mean()
