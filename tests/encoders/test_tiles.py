"""Tile encoders: shapes, unit length, and the ensemble's similarity being the members' mean."""

from __future__ import annotations

import pytest
import torch

from geoseek.encoders.registry import create_model
from geoseek.sources.layers import NUM_LAYERS


def test_tile_ensemble_concatenates_members_and_averages_their_cosines():
    torch.manual_seed(0)
    members = [{"model": "tile-cnn", "config": {"dim": 16, "widths": [8, 8]}},
               {"model": "tile-cnn", "config": {"dim": 8, "widths": [4, 8, 8]}}]
    ens = create_model("tile-ensemble", members=members).eval()
    x = torch.randint(0, 256, (5, NUM_LAYERS, 32, 32), dtype=torch.uint8)
    with torch.no_grad():
        v = ens(x)
        parts = [m(x) for m in ens.members]
    assert ens.dim == 24 and v.shape == (5, 24)
    assert torch.allclose(v.norm(dim=1), torch.ones(5), atol=1e-5)
    mean_cos = sum(p @ p.T for p in parts) / len(parts)
    assert torch.allclose(v @ v.T, mean_cos, atol=1e-5)


def test_tile_ensemble_needs_members():
    with pytest.raises(ValueError, match="at least one member"):
        create_model("tile-ensemble", members=[])
