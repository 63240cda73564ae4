"""Distance-penalized triplet loss: hand-computed values, gradient, penalty functions."""

import math

import pytest
import torch

from geoseek.geo import EARTH_RADIUS_M
from geoseek.losses import AllTripletsMiner, EuclideanDistance, TripletMarginLoss, Triplets
from geoseek.losses.dpt import DistancePenalizedTripletLoss, GeoPenalty, haversine_m_torch
from geoseek.losses.softmax import SoftmaxLoss

ONE_DEG_M = EARTH_RADIUS_M * math.pi / 180  # one degree of longitude on the equator, metres


def test_haversine_on_the_equator():
    d = haversine_m_torch(torch.tensor([[0.0, 0.0]]), torch.tensor([[2.0, 0.0]]))
    assert d.item() == pytest.approx(2 * ONE_DEG_M, rel=1e-9)


def test_penalty_hand_computed():
    # a, p, n on the equator at lon 0, 1, 2; s = 2 degrees, λ = 1:
    # q(a,p) = 0.5, q(a,n) = 1, q(p,n) = 0.5  →  P = 1.0
    pen = GeoPenalty(kind="normalized", scale_m=2 * ONE_DEG_M, weight=1.0)
    xa, xp, xn = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[2.0, 0.0]])
    assert pen.penalty(xa, xp, xn).item() == pytest.approx(1.0, abs=1e-9)
    # anchor between positive and negative: q = 0.5 + 0.5 − 1 = 0
    assert pen.penalty(xa, xp, torch.tensor([[-1.0, 0.0]])).item() == pytest.approx(0.0, abs=1e-9)
    # truncation at the scale: everything 4° apart counts as 1
    assert pen.q(torch.tensor([4 * ONE_DEG_M])).item() == pytest.approx(1.0)


def test_gaussian_penalty_value():
    pen = GeoPenalty(kind="gaussian", scale_m=1000.0, weight=2.0)
    assert pen.q(torch.tensor([1000.0])).item() == pytest.approx(2.0 * (1 - math.exp(-0.5)))
    assert pen.q(torch.tensor([0.0])).item() == 0.0


def test_penalty_config_is_validated():
    with pytest.raises(ValueError):
        GeoPenalty(kind="cubic")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        GeoPenalty(scale_m=0)
    with pytest.raises(ValueError):
        GeoPenalty(weight=-1)


def test_dpt_value_and_gradient_on_a_hand_computed_triplet():
    emb = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    lonlat = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    loss_fn = DistancePenalizedTripletLoss(
        margin=0.5,
        penalty=GeoPenalty("normalized", scale_m=2 * ONE_DEG_M, weight=1.0),
        distance=EuclideanDistance(normalize=False),
        average_nonzero=False,
    )
    t = Triplets(torch.tensor([0]), torch.tensor([1]), torch.tensor([2]))
    loss = loss_fn(emb, None, t, lonlat)
    # ‖a−p‖ = 1, ‖a−n‖ = 2, P = 1.0, α = 0.5  →  1 − 2 + 1 + 0.5 = 0.5
    assert loss.item() == pytest.approx(0.5, abs=1e-5)
    loss.backward()
    # ∂/∂a = (a−p)/‖a−p‖ − (a−n)/‖a−n‖ = (−1, 0) − (0, −1) = (−1, 1); ∂/∂p = (1, 0); ∂/∂n = (0, −1)
    expected = torch.tensor([[-1.0, 1.0], [1.0, 0.0], [0.0, -1.0]])
    assert torch.allclose(emb.grad, expected, atol=1e-4)


def test_dpt_without_penalty_equals_triplet_and_penalty_only_adds():
    torch.manual_seed(0)
    emb, labels = torch.randn(12, 5), torch.randint(0, 3, (12,))
    lonlat = torch.rand(12, 2) * torch.tensor([2.0, 1.0])
    t = AllTripletsMiner()(emb, labels)
    plain = TripletMarginLoss(margin=0.3, average_nonzero=False)(emb, labels, t)
    none = DistancePenalizedTripletLoss(0.3, GeoPenalty(kind="none"), average_nonzero=False)(emb, labels, t, lonlat)
    assert torch.isclose(plain, none, atol=1e-6)
    with_pen = DistancePenalizedTripletLoss(0.3, GeoPenalty("normalized", 50_000, 0.5), average_nonzero=False)(
        emb, labels, t, lonlat
    )
    assert with_pen > plain  # normalized q is a metric: P >= 0, and > 0 for generic points


def test_dpt_empty_and_bad_shapes():
    emb = torch.randn(4, 3, requires_grad=True)
    e = torch.empty(0, dtype=torch.long)
    loss = DistancePenalizedTripletLoss()(emb, None, Triplets(e, e, e), torch.zeros(4, 2))
    assert loss.item() == 0.0 and loss.requires_grad
    with pytest.raises(ValueError, match="lonlat"):
        DistancePenalizedTripletLoss()(emb, None, Triplets(e, e, e), torch.zeros(3, 2))


def test_softmax_loss_trains_a_separable_problem():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(20, 4) + 3, torch.randn(20, 4) - 3])
    y = torch.cat([torch.zeros(20), torch.ones(20)]).long()
    loss_fn = SoftmaxLoss(4, 2)
    opt = torch.optim.SGD(loss_fn.parameters(), lr=0.1)
    first = loss_fn(x, y).item()
    for _ in range(50):
        opt.zero_grad()
        loss = loss_fn(x, y)
        loss.backward()
        opt.step()
    assert loss.item() < first * 0.5
    assert (loss_fn.logits(x).argmax(1) == y).float().mean() > 0.95
