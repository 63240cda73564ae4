"""Fine-tuning the last EfficientNet-Lite0 stages on the sketch side of MLAGT.

The sketch backbone is frozen and its features are cached for training. To fine-tune its last
``N`` stages without running the whole backbone every step, the backbone is cut in two:

* the **front** (stem + stages ``0 .. 6-N``) stays frozen; its output is cached once per sketch
  (:func:`sketch_front_features`, run in the model's backbone precision like the full backbone);
* the **tail** (stages ``7-N .. 6`` + the 1280-channel head conv, :class:`SketchTail`) is a
  trainable float32 copy initialised from the ImageNet weights, owned by the model (saved in its
  checkpoint) and run live on the cached front features.

Batch norm in the tail keeps its ImageNet statistics (always in eval mode): batches of a few
dozen sketches would make poor running statistics. The image side keeps the frozen backbone.

Shapes at 224 px: front output (N, C, H, W) = (N, 192, 7, 7) for N=1, (N, 112, 14, 14) for N=2,
(N, 80, 14, 14) for N=3; tail output (N, 1280, 7, 7).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

MAX_STAGES = 3
"""The most stages that can be fine-tuned (the front output stays at stride 16 or 32)."""


def _stage_start(stages: int) -> int:
    """Index of the first backbone block of the last ``stages`` stages."""
    from geoseek.encoders.backbones import _LITE0_STAGES

    if not 1 <= stages <= MAX_STAGES:
        raise ValueError(f"finetune stages must be in 1..{MAX_STAGES}, got {stages}")
    repeats = [r for r, *_ in _LITE0_STAGES]
    return sum(repeats[: len(repeats) - stages])


class SketchTail(nn.Module):
    """The trainable last ``stages`` stages + head conv of EfficientNet-Lite0: front features → (N, 1280, 7, 7)."""

    def __init__(self, stages: int) -> None:
        super().__init__()
        from geoseek.encoders.sketch_image import image_backbone

        self.stages = int(stages)
        start = _stage_start(self.stages)
        bb = image_backbone()
        self.blocks = nn.ModuleList(copy.deepcopy(b) for b in bb._blocks[start:])
        self.conv_head = copy.deepcopy(bb._conv_head)
        self.bn = copy.deepcopy(bb._bn1)
        for p in self.parameters():
            p.requires_grad_(True)
        self.train(False)

    def train(self, mode: bool = True) -> SketchTail:  # noqa: ARG002 - batch norm keeps ImageNet statistics
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        for b in self.blocks:
            x = b(x)
        return F.relu6(self.bn(self.conv_head(x)))


@torch.no_grad()
def sketch_front_features(sketches: torch.Tensor, stages: int, dtype: str = "float32", batch: int = 64) -> torch.Tensor:
    """(N, 1, S, S) ink maps in [0, 1] → float32 frozen front features (see the module doc) of the
    sketch drawn black on white at 224 px, the front run in ``dtype`` as the full backbone would."""
    from geoseek.encoders.sketch_image import IMAGE_SIZE, _backbone_in, _torch_dtype
    from geoseek.runtime.precision import effective_dtype

    start = _stage_start(stages)
    dtype = effective_dtype(dtype)
    m = _backbone_in(dtype)
    td = _torch_dtype(dtype)
    out = []
    for i in range(0, len(sketches), batch):
        x = F.interpolate(1 - sketches[i : i + batch].float(), size=(IMAGE_SIZE, IMAGE_SIZE), mode="bilinear", align_corners=False)
        x = ((x.expand(-1, 3, -1, -1) - 0.5) / 0.5).to(td)
        x = m._stem(x)
        for b in m._blocks[:start]:
            x = b(x)
        out.append(x.float())
    return torch.cat(out)
