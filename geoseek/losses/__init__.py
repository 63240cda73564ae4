"""Metric-learning pieces in the style of pytorch-metric-learning: distances, miners, losses.

A *distance* turns embeddings into a pairwise matrix; a *miner* picks (anchor, positive,
negative) index triplets from a batch; a *loss* scores triplets. They compose::

    miner = SemiHardMiner(margin=0.2)
    loss_fn = TripletMarginLoss(margin=0.2)
    loss = loss_fn(emb, labels, miner(emb, labels))
"""

from geoseek.losses.contrastive import MultiPositiveInfoNCE, multi_positive_nce
from geoseek.losses.distances import CosineDistance, EuclideanDistance
from geoseek.losses.dpt import DistancePenalizedTripletLoss, GeoPenalty
from geoseek.losses.miners import AllTripletsMiner, BatchHardMiner, SemiHardMiner, Triplets
from geoseek.losses.presence_absence import PresenceAbsenceLoss
from geoseek.losses.softmax import SoftmaxLoss
from geoseek.losses.triplet import TripletMarginLoss, triplet_margin

__all__ = [
    "CosineDistance",
    "EuclideanDistance",
    "AllTripletsMiner",
    "BatchHardMiner",
    "SemiHardMiner",
    "Triplets",
    "TripletMarginLoss",
    "DistancePenalizedTripletLoss",
    "GeoPenalty",
    "SoftmaxLoss",
    "PresenceAbsenceLoss",
    "MultiPositiveInfoNCE",
    "multi_positive_nce",
    "triplet_margin",
]
