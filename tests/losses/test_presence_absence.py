"""Sphere2Vec's presence–absence loss (by hand) and its random negatives uniform on the sphere."""

from __future__ import annotations

import math

import torch

from geoseek.losses.presence_absence import presence_absence_loss, random_sphere_lonlat


def test_random_negatives_are_uniform_on_the_sphere():
    torch.manual_seed(0)
    p = random_sphere_lonlat(100_000)
    assert p.shape == (100_000, 2) and p[:, 0].abs().max() <= 180 and p[:, 1].abs().max() <= 90
    # area above |lat| = 30° is 1 − sin 30° = half of the sphere
    assert abs(float((p[:, 1].abs() > 30).float().mean()) - 0.5) < 0.01


def test_presence_absence_loss_by_hand():
    z = torch.zeros(1, 2)
    y = torch.tensor([0])
    log2 = math.log(2.0)
    # positive term λ·log 2 (λ = C = 2) and one negative term log 2, averaged over C = 2 entries
    assert math.isclose(float(presence_absence_loss(z, y)), 1.5 * log2, rel_tol=1e-6)
    assert math.isclose(float(presence_absence_loss(z, y, torch.zeros(3, 2))), 2.5 * log2, rel_tol=1e-6)
    logits = torch.tensor([[3.0, -1.0]])
    want = (1.0 * math.log1p(math.exp(-3.0)) + math.log1p(math.exp(-1.0))) / 2
    assert math.isclose(float(presence_absence_loss(logits, y, pos_weight=1.0)), want, rel_tol=1e-6)
