"""Distances, miners and the triplet loss."""

import torch

from geoseek.losses import (
    AllTripletsMiner,
    BatchHardMiner,
    EuclideanDistance,
    SemiHardMiner,
    TripletMarginLoss,
)


def test_euclidean_distance_matches_cdist():
    a, b = torch.randn(5, 8), torch.randn(7, 8)
    d = EuclideanDistance(normalize=False)(a, b)
    assert torch.allclose(d, torch.cdist(a, b), atol=1e-4)


def test_all_triplets_are_valid():
    labels = torch.tensor([0, 0, 1, 1, 2])
    t = AllTripletsMiner()(torch.randn(5, 4), labels)
    assert len(t.anchor) == 2 * 1 * 3 * 2  # 4 anchors with a positive, 3 negatives each
    assert (labels[t.anchor] == labels[t.positive]).all()
    assert (labels[t.anchor] != labels[t.negative]).all()
    assert (t.anchor != t.positive).all()


def test_batch_hard_picks_extremes():
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [0.5, 0.0], [10.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1, 1])
    t = BatchHardMiner(EuclideanDistance(normalize=False))(emb, labels)
    i = (t.anchor == 0).nonzero()[0, 0]
    assert t.positive[i] == 2 and t.negative[i] == 3


def test_semi_hard_negatives_lie_in_the_margin_band():
    torch.manual_seed(0)
    emb, labels = torch.randn(32, 6), torch.randint(0, 4, (32,))
    dist = EuclideanDistance()
    t = SemiHardMiner(margin=0.3, distance=dist, fallback_hard=False)(emb, labels)
    d = dist(emb)
    dap, dan = d[t.anchor, t.positive], d[t.anchor, t.negative]
    assert len(t.anchor) > 0
    assert (dan > dap).all() and (dan < dap + 0.3).all()


def test_triplet_loss_value_and_gradient():
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]], requires_grad=True)
    loss_fn = TripletMarginLoss(margin=1.5, distance=EuclideanDistance(normalize=False), average_nonzero=False)
    t = AllTripletsMiner()(emb, torch.tensor([0, 0, 1]))
    loss = loss_fn(emb, None, t)
    # triplets: (0,1,2): 1 - 2 + 1.5 = 0.5 ; (1,0,2): 1 - 1 + 1.5 = 1.5
    assert torch.isclose(loss, torch.tensor(1.0))
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


def test_cross_modal_reference_batch():
    sketches, images = torch.randn(4, 3), torch.randn(6, 3)
    sl, il = torch.tensor([0, 1, 0, 1]), torch.tensor([0, 0, 1, 1, 2, 2])
    t = BatchHardMiner()(sketches, sl, images, il)
    assert (sl[t.anchor] == il[t.positive]).all() and (sl[t.anchor] != il[t.negative]).all()
    loss = TripletMarginLoss()(sketches, sl, t, ref_emb=images)
    assert loss.ndim == 0
