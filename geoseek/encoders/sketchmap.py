"""Sketch-map / scene encoders (task ``"sketchmap"``): (N, C, H, W) layer rasters → (N, 128) unit vectors.

One encoder embeds both real OSM scenes and sketch maps (a siamese network, as DeepSSN), so
a sketch's nearest scene vectors are its matches. Inputs are the OSM layer channels of
:mod:`geoseek.sources.layers` as float in [0, 1] (uint8 rasters / 255).

* ``sketchmap-sppcnn`` — DeepSSN's SPP-CNN: a plain conv stack (first conv 5×5, stride 2), spatial pyramid (max) pooling
  at levels 4/2/1 (so any input size works), dense layers to a 128-d embedding.
* ``sketchmap-resnet`` — stronger: residual stages with batch norm, a fixed blur of the input
  (tolerance to displaced objects), SPP at 4/2/1 with both max and mean pooling, and the same
  dense head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from geoseek.encoders.registry import register_model
from geoseek.sources.layers import NUM_LAYERS


class SpatialPyramidPool(nn.Module):
    """Pool (N, C, H, W) at each level L into L×L bins and concatenate: (N, C·ΣL²·len(modes))."""

    def __init__(self, levels: tuple[int, ...] = (4, 2, 1), modes: tuple[str, ...] = ("max",)) -> None:
        super().__init__()
        self.levels = tuple(levels)
        self.modes = tuple(modes)

    def out_features(self, channels: int) -> int:
        return channels * sum(level * level for level in self.levels) * len(self.modes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for level in self.levels:
            for mode in self.modes:
                pool = F.adaptive_max_pool2d if mode == "max" else F.adaptive_avg_pool2d
                outs.append(pool(x, level).flatten(1))
        return torch.cat(outs, 1)


def _to_float(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


class SppCnn(nn.Module):
    """DeepSSN's SPP-CNN: conv stack → SPP(4, 2, 1) → dense → ``dim``-d L2-normalized embedding."""

    def __init__(self, in_chans: int = NUM_LAYERS, dim: int = 128, widths: tuple[int, ...] = (32, 64, 128), hidden: int = 512, stem_stride: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = in_chans
        for i, w in enumerate(widths):
            k = 5 if i == 0 else 3
            stride = stem_stride if i == 0 else 1
            layers += [nn.Conv2d(c, w, k, stride=stride, padding=k // 2), nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c = w
        self.features = nn.Sequential(*layers)
        self.spp = SpatialPyramidPool((4, 2, 1), ("max",))
        self.head = nn.Sequential(
            nn.Linear(self.spp.out_features(c), hidden), nn.ReLU(inplace=True), nn.Dropout(0.1), nn.Linear(hidden, dim)
        )
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) uint8 or float in [0, 1] → (N, dim) unit vectors."""
        return F.normalize(self.head(self.spp(self.features(_to_float(x)))), dim=1)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (
            nn.Identity() if stride == 1 and cin == cout else nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x), inplace=True)


class SketchMapResNet(nn.Module):
    """Residual encoder: input blur ⊕ raw → stride-2 stem + max-pool → residual stages → SPP(4, 2, 1; max+mean) → dense → ``dim``."""

    def __init__(self, in_chans: int = NUM_LAYERS, dim: int = 128, widths: tuple[int, ...] = (32, 64, 96), hidden: int = 256, blur: int = 5, stem_stride: int = 2, stem_pool: bool = True) -> None:
        super().__init__()
        self.blur = blur
        cin = in_chans * (2 if blur else 1)
        self.stem = nn.Sequential(nn.Conv2d(cin, widths[0], 3, stem_stride, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True),
            *([nn.MaxPool2d(2)] if stem_pool else []),
        )
        blocks: list[nn.Module] = []
        c = widths[0]
        for i, w in enumerate(widths):
            blocks.append(_Block(c, w, 1 if i == 0 else 2))
            c = w
        self.stages = nn.Sequential(*blocks)
        self.spp = SpatialPyramidPool((4, 2, 1), ("max", "mean"))
        self.head = nn.Sequential(
            nn.Linear(self.spp.out_features(c), hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), nn.Linear(hidden, dim)
        )
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) uint8 or float in [0, 1] → (N, dim) unit vectors."""
        x = _to_float(x)
        if self.blur:
            x = torch.cat([x, F.avg_pool2d(x, self.blur, 1, self.blur // 2, count_include_pad=False)], 1)
        return F.normalize(self.head(self.spp(self.stages(self.stem(x)))), dim=1)


@register_model("sketchmap-sppcnn", task="sketchmap")
def sketchmap_sppcnn(**kwargs) -> SppCnn:
    """DeepSSN's SPP-CNN (conv stack, SPP 4/2/1, dense to 128-d)."""
    return SppCnn(**kwargs)


@register_model("sketchmap-resnet", task="sketchmap")
def sketchmap_resnet(**kwargs) -> SketchMapResNet:
    """The stronger residual SPP encoder."""
    return SketchMapResNet(**kwargs)
