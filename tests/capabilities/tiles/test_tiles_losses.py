"""geoseek.capabilities.tiles.losses: the masked land-use objective."""

from __future__ import annotations

import numpy as np
import pytest


def test_land_use_loss_is_minimal_at_the_measured_cover():
    import torch

    from geoseek.capabilities.tiles.losses import land_use_loss

    cover = torch.tensor([[0.5, 0, 0, 0, 0, 0, 0], [0, 0, 0, 0.25, 0, 0, 0.75]])
    target = torch.cat([cover, (1 - cover.sum(1, keepdim=True)).clamp_min(0)], 1)
    best = land_use_loss(torch.log(target + 1e-9), cover)
    worse = land_use_loss(torch.zeros(2, 8), cover)
    assert best < worse
    logits = torch.zeros(2, 8, requires_grad=True)
    land_use_loss(logits, cover).backward()
    assert torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_land_use_class_weights_favour_rare_classes_and_keep_the_loss_scale():
    import torch

    from geoseek.capabilities.tiles.losses import _cover_target, land_use_class_weights, land_use_loss

    rng = np.random.default_rng(0)
    cover = np.zeros((200, 7), np.float32)
    cover[:, 3] = rng.uniform(0.3, 1.0, 200)  # farmland everywhere
    cover[:10, 2] = 0.5  # a little forest
    w = land_use_class_weights(cover, 0.5)
    share = _cover_target(torch.from_numpy(cover)).mean(0).clamp_min(1e-3)
    assert w.shape == (8,) and w[2] > w[3] and abs(float((share * w).sum()) - 1) < 1e-5
    assert torch.allclose(land_use_class_weights(cover, 0.0), torch.ones(8) / share.sum())
    logits = torch.zeros(4, 8)
    c = torch.from_numpy(cover[:4])
    assert torch.isclose(land_use_loss(logits, c, torch.ones(8)), land_use_loss(logits, c))
    assert land_use_loss(logits, c, w) != land_use_loss(logits, c)


def test_dominant_land_use_target_follows_the_evaluation_label_rule():
    import torch

    from geoseek.capabilities.tiles.losses import dominant_class, land_use_loss

    cover = torch.tensor([[0.0, 0.0, 0.1, 0.6, 0.0, 0.0, 0.0],    # farmland
                          [0.0, 0.15, 0.0, 0.0, 0.1, 0.0, 0.0],   # nothing >= 20 %: none
                          [0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.25]])  # water
    assert dominant_class(cover).tolist() == [3, 7, 0]
    logits = torch.full((3, 8), -5.0)
    logits[torch.arange(3), torch.tensor([3, 7, 0])] = 5.0
    good = land_use_loss(logits, cover, target="dominant")
    assert good < 0.01 and land_use_loss(logits.flip(1), cover, target="dominant") > 5
    with pytest.raises(ValueError, match="cover' or 'dominant"):
        land_use_loss(logits, cover, target="argmax")
