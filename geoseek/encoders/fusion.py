"""Image ⊕ location fusion encoder (GIMI's location-explicit image embedding).

::

    image (N, 3, H, W) in [0, 1] ──backbone (frozen, ImageNet)──► (N, F) ──image head──► e_img (N, D)
    (lon, lat) (N, 2) degrees ──location encoder (registry)──► (N, L) ──location proj──► e_loc (N, D)
    fusion "concat":  f = W [e_img ; e_loc]                       (concatenation and projection)
    fusion "gated":   g = σ(W_g [e_img ; e_loc]);  f = g ⊙ e_img + (1 − g) ⊙ e_loc   (gated sum)
    fusion "image":   f = e_img                                    (ablation: location ignored)
    output: f / ‖f‖  (N, D), compared by inner product (cosine)

A missing location (``lonlat=None``, or NaN rows) uses a learned "unknown place" vector in
place of e_loc; ``location_dropout`` replaces known locations by it at random while training,
so one model embeds queries with and without a location.

The backbone is frozen and rebuilt from its installed ImageNet weights, so checkpoints hold
only the trained heads (a few MB): :meth:`GeoImageEncoder.state_dict` leaves the backbone out
while it is frozen. Training usually runs on precomputed backbone features through
:meth:`GeoImageEncoder.embed_features`.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geoseek.encoders.registry import create_location_encoder, register_model
from geoseek.errors import InvalidInputError

FusionKind = Literal["concat", "gated", "image"]
FUSIONS = ("concat", "gated", "image")
BACKBONES = {"efficientnet_lite0": 1280}

DEFAULT_LOCATION = "sphereM"
DEFAULT_LOCATION_PARAMS: dict[str, Any] = {
    # wavelengths from ~400 m (2π·1e-5 rad) to the whole globe: places a few km apart differ
    "frequency_num": 24,
    "min_radius": 1e-5,
    "max_radius": 1.0,
    "head": "mlp",
    "hidden_dim": 128,
    "num_layers": 1,
    "out_dim": 64,
}


_PRETRAINED: dict[str, dict[str, Tensor]] = {}


def build_backbone(name: str, pretrained: bool = True) -> nn.Module:
    """An image backbone: (N, 3, H, W) in [0, 1] → (N, F) pooled features.

    Pretrained weights are read from disk once per process and copied into each new backbone.
    """
    if name not in BACKBONES:
        raise InvalidInputError(f"unknown image backbone {name!r}; known: {', '.join(BACKBONES)}")
    from geoseek.encoders.backbones import efficientnet_lite0

    if not pretrained:
        return _Normalized(efficientnet_lite0(pretrained=False, num_classes=0))
    if name not in _PRETRAINED:
        _PRETRAINED[name] = {k: v.clone() for k, v in efficientnet_lite0(pretrained=True, num_classes=0).state_dict().items()}
    net = efficientnet_lite0(pretrained=False, num_classes=0)
    net.load_state_dict(_PRETRAINED[name])
    return _Normalized(net)


class _Normalized(nn.Module):
    """Wraps a backbone expecting (x − 0.5) / 0.5 inputs (EfficientNet-Lite)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> Tensor:
        return self.net((images - 0.5) / 0.5)


class GeoImageEncoder(nn.Module):
    """Image ⊕ location embedding; see the module docstring.

    Args:
        backbone: image backbone name (``efficientnet_lite0``), or None for a features-only
            model (``embed_features`` only).
        pretrained: load the backbone's ImageNet weights.
        freeze_backbone: keep the backbone fixed (and out of the state dict).
        image_size: side in pixels that images are resized to before the backbone.
        location_encoder: registered location encoder name (``create_location_encoder``).
        location_params: its configuration.
        fusion: ``concat`` | ``gated`` | ``image``.
        embed_dim: D, output width.
        hidden_dim: width of the image head's hidden layer.
        dropout: dropout in the image head.
        location_dropout: probability, while training, of replacing a known location by the
            learned unknown-place vector.
    """

    def __init__(
        self,
        backbone: str | None = "efficientnet_lite0",
        pretrained: bool = True,
        freeze_backbone: bool = True,
        image_size: int = 128,
        feature_dim: int | None = None,
        location_encoder: str = DEFAULT_LOCATION,
        location_params: dict[str, Any] | None = None,
        fusion: FusionKind = "concat",
        embed_dim: int = 128,
        hidden_dim: int = 512,
        dropout: float = 0.1,
        location_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS:
            raise InvalidInputError(f"fusion must be one of {', '.join(FUSIONS)}, got {fusion!r}")
        if embed_dim < 1 or hidden_dim < 1:
            raise InvalidInputError("embed_dim and hidden_dim must be >= 1")
        if not 0.0 <= location_dropout <= 1.0:
            raise InvalidInputError(f"location_dropout must be in [0, 1], got {location_dropout}")
        if backbone is None and feature_dim is None:
            raise InvalidInputError("a features-only model (backbone=None) needs feature_dim")
        self.fusion = fusion
        self.embed_dim = embed_dim
        self.image_size = image_size
        self.freeze_backbone = freeze_backbone
        self.location_dropout = location_dropout
        self.feature_dim = int(feature_dim or BACKBONES[backbone])  # type: ignore[index]
        self.backbone = build_backbone(backbone, pretrained) if backbone else None
        if self.backbone is not None and freeze_backbone:
            self.backbone.eval()
            for p in self.backbone.parameters():
                p.requires_grad_(False)
        self.image_head = nn.Sequential(
            nn.LayerNorm(self.feature_dim),
            nn.Linear(self.feature_dim, hidden_dim),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, embed_dim),
        )
        params = dict(DEFAULT_LOCATION_PARAMS if location_params is None else location_params)
        self.location = create_location_encoder(location_encoder, **params)
        self.location_proj = nn.Linear(int(self.location.out_dim), embed_dim)
        self.unknown_location = nn.Parameter(torch.zeros(embed_dim))
        if fusion == "concat":
            self.fuse = nn.Linear(2 * embed_dim, embed_dim)
        elif fusion == "gated":
            self.fuse = nn.Linear(2 * embed_dim, embed_dim)
            nn.init.zeros_(self.fuse.weight)
            nn.init.constant_(self.fuse.bias, 2.0)  # start close to the image embedding (σ(2) ≈ 0.88)
        else:
            self.fuse = nn.Identity()

    # ------------------------------------------------------------------ parts
    def train(self, mode: bool = True) -> GeoImageEncoder:
        super().train(mode)
        if self.backbone is not None and self.freeze_backbone:
            self.backbone.eval()  # frozen BatchNorm statistics stay as pretrained
        return self

    def image_features(self, images: Tensor) -> Tensor:
        """(N, 3, H, W) float in [0, 1] → (N, F) backbone features (resized to ``image_size``)."""
        if self.backbone is None:
            raise InvalidInputError("this model has no image backbone; pass precomputed features to embed_features")
        if images.ndim != 4 or images.shape[1] != 3:
            raise InvalidInputError(f"images must be (N, 3, H, W) RGB in [0, 1], got {tuple(images.shape)}")
        if images.shape[-2:] != (self.image_size, self.image_size):
            images = F.interpolate(images, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            return self.backbone(images)

    def location_embedding(self, lonlat: Tensor | None, n: int) -> Tensor:
        """(N, D) location embeddings; rows with no location (None / NaN) get the unknown-place vector."""
        unknown = self.unknown_location.expand(n, -1)
        if lonlat is None:
            return unknown
        lonlat = torch.as_tensor(lonlat, dtype=torch.float32)
        if lonlat.shape != (n, 2):
            raise InvalidInputError(f"lonlat must be ({n}, 2) (lon, lat) degrees, got {tuple(lonlat.shape)}")
        known = torch.isfinite(lonlat).all(1)
        if self.training and self.location_dropout > 0:
            known = known & (torch.rand(n) >= self.location_dropout)
        if not bool(known.any()):
            return unknown
        emb = torch.zeros(n, self.embed_dim, dtype=unknown.dtype)
        emb = torch.where(known[:, None], emb, unknown)
        idx = known.nonzero(as_tuple=True)[0]
        loc = self.location_proj(self.location(lonlat[idx]))
        return emb.index_put((idx,), loc)

    def embed_features(self, features: Tensor, lonlat: Tensor | None = None, normalize: bool = True) -> Tensor:
        """(N, F) backbone features (+ (N, 2) lon/lat degrees or None) → (N, D) embeddings."""
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise InvalidInputError(f"features must be (N, {self.feature_dim}), got {tuple(features.shape)}")
        e_img = self.image_head(features.float())
        if self.fusion == "image":
            f = e_img
        else:
            e_loc = self.location_embedding(lonlat, len(features))
            both = torch.cat([e_img, e_loc], dim=1)
            if self.fusion == "concat":
                f = self.fuse(both)
            else:
                g = torch.sigmoid(self.fuse(both))
                f = g * e_img + (1 - g) * e_loc
        return F.normalize(f, dim=-1) if normalize else f

    def forward(self, images: Tensor, lonlat: Tensor | None = None) -> Tensor:
        """(N, 3, H, W) images in [0, 1] and optional (N, 2) (lon, lat) degrees → (N, D) unit vectors."""
        return self.embed_features(self.image_features(images), lonlat)

    # ------------------------------------------------------- checkpoint hygiene
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Tensor]:  # type: ignore[override]
        """The state without the frozen backbone (rebuilt from its pretrained weights on load)."""
        sd = super().state_dict(*args, **kwargs)
        if self.backbone is not None and self.freeze_backbone:
            prefix = kwargs.get("prefix", "")
            sd = OrderedDict((k, v) for k, v in sd.items() if not k.startswith(prefix + "backbone."))
        return sd

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:  # type: ignore[override]
        if self.backbone is not None and self.freeze_backbone and not any(k.startswith("backbone.") for k in state_dict):
            state_dict = {**{f"backbone.{k}": v for k, v in self.backbone.state_dict().items()}, **state_dict}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


@register_model("gimi-fusion", task="geo-image")
def gimi_fusion(**kwargs: Any) -> GeoImageEncoder:
    """GIMI image ⊕ location encoder: EfficientNet-Lite0 (frozen) ⊕ sphereM, concat + projection, 128-d."""
    return GeoImageEncoder(**kwargs)


@register_model("gimi-fusion-gated", task="geo-image")
def gimi_fusion_gated(**kwargs: Any) -> GeoImageEncoder:
    """As ``gimi-fusion`` with a gated sum of the image and location embeddings."""
    return GeoImageEncoder(**{"fusion": "gated", **kwargs})
