"""GeoCLIP's pretrained location encoder (Vivanco Cepeda et al. 2023) in plain torch.

The architecture is re-implemented here (GeoCLIP's package imports transformers) and the
weights are read from the file shipped in the ``geoclip`` 1.3.0 wheel
(``geoclip/model/weights/location_encoder_weights.pth``; ``pip install --no-deps
geoclip==1.3.0``). Nothing is downloaded.

Pipeline for a point (lon, lat) in degrees:

1. Equal Earth projection (Šavrič et al. 2018) of (lat, lon), scaled as GeoCLIP does:
   ``sin θ = (√3/2) sin φ``, ``x = 2√3 λ cos θ / (3 (9 A4 θ⁸ + 7 A3 θ⁶ + 3 A2 θ² + A1))``,
   ``y = A4 θ⁹ + A3 θ⁷ + A2 θ³ + A1 θ``, then ``(x, y) · 66.50336 / 180``.
2. Three branches (σ = 2⁰, 2⁴, 2⁸), each random Fourier features
   ``[cos 2π B v, sin 2π B v]`` (B: 256×2 from the weights file, 512 dims), an MLP
   512→1024→1024→1024 (ReLU) and a linear 1024→512.
3. The three branch outputs are summed: a 512-d embedding.

``encode_position`` returns the concatenated Fourier features of step 2 (3×512 dims; fixed,
no trainable parameters); ``forward`` runs the pretrained branches and then the optional head.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from geoseek.encoders.location.base import EncoderConfig, LocationEncoder, build_head, to_lonlat_tensor
from geoseek.encoders.location.sinusoidal import register
from geoseek.errors import NotFoundError

A1, A2, A3, A4 = 1.340264, -0.081106, 0.000893, 0.003796
SCALE = 66.50336
SIGMAS = (2.0**0, 2.0**4, 2.0**8)
WEIGHTS_IN_WHEEL = ("model", "weights", "location_encoder_weights.pth")


def geoclip_weights_path() -> Path:
    """Path of GeoCLIP's location-encoder weights in the installed ``geoclip`` package.

    Finds the package without importing it (its ``__init__`` needs transformers).
    """
    spec = importlib.util.find_spec("geoclip")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("GeoCLIP weights not found: install them with `pip install --no-deps geoclip==1.3.0`")
    path = Path(next(iter(spec.submodule_search_locations))).joinpath(*WEIGHTS_IN_WHEEL)
    if not path.is_file():
        raise NotFoundError(f"GeoCLIP weights not found at {path}: reinstall `pip install --no-deps geoclip==1.3.0`")
    return path


def equal_earth(lonlat: Tensor) -> Tensor:
    """(N, 2) (lon, lat) degrees → (N, 2) GeoCLIP-scaled Equal Earth (x, y) (unitless, |x| ≤ ~1)."""
    lam = torch.deg2rad(lonlat[:, 0])
    theta = torch.asin((math.sqrt(3.0) / 2.0) * torch.sin(torch.deg2rad(lonlat[:, 1])))
    t2 = theta * theta
    t6 = t2 * t2 * t2
    denom = 3.0 * (9.0 * A4 * t6 * t2 + 7.0 * A3 * t6 + 3.0 * A2 * t2 + A1)
    x = 2.0 * math.sqrt(3.0) * lam * torch.cos(theta) / denom
    y = A4 * t6 * t2 * theta + A3 * t6 * theta + A2 * t2 * theta + A1 * theta
    return torch.stack([x, y], dim=1) * (SCALE / 180.0)


class GaussianFourier(nn.Module):
    """``[cos 2π B v, sin 2π B v]`` with a fixed B (encoded×2); state key ``b`` as in GeoCLIP's rff."""

    def __init__(self, encoded: int = 256) -> None:
        super().__init__()
        self.register_buffer("b", torch.zeros(encoded, 2))

    def forward(self, v: Tensor) -> Tensor:
        vp = (2.0 * math.pi) * (v @ self.b.T)
        return torch.cat([torch.cos(vp), torch.sin(vp)], dim=-1)


class Capsule(nn.Module):
    """One GeoCLIP branch: Fourier features → 3 ReLU layers of 1024 → linear 512."""

    def __init__(self) -> None:
        super().__init__()
        self.capsule = nn.Sequential(
            GaussianFourier(256),
            nn.Linear(512, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
            nn.Linear(1024, 1024),
            nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Linear(1024, 512))

    def forward(self, v: Tensor) -> Tensor:
        return self.head(self.capsule(v))


class GeoCLIPLocationNet(nn.Module):
    """The three GeoCLIP branches; its state-dict keys equal those of the released weights."""

    def __init__(self) -> None:
        super().__init__()
        for i in range(len(SIGMAS)):
            self.add_module(f"LocEnc{i}", Capsule())

    def branches(self) -> list[Capsule]:
        return [getattr(self, f"LocEnc{i}") for i in range(len(SIGMAS))]

    def fourier(self, lonlat: Tensor) -> Tensor:
        v = equal_earth(lonlat)
        return torch.cat([c.capsule[0](v) for c in self.branches()], dim=1)

    def forward(self, lonlat: Tensor) -> Tensor:
        v = equal_earth(lonlat)
        return torch.stack([c(v) for c in self.branches()], dim=0).sum(0)


@dataclass
class GeoCLIPConfig(EncoderConfig):
    """GeoCLIP: pretrained 512-d embedding, frozen unless ``trainable``; no extra head by default.

    ``weights``: path of ``location_encoder_weights.pth`` (default: the installed wheel's).
    """

    head: str = "none"
    trainable: bool = False
    weights: str | None = None


@register
class GeoCLIPEncoder(LocationEncoder):
    """GeoCLIP's location encoder with its pretrained weights; input (lon, lat) degrees.

    The Equal Earth map has edges at lon = ±180 and a pole *line*, so the encoding is
    neither periodic in longitude nor continuous at the poles.
    """

    Config = GeoCLIPConfig
    name = "geoclip"
    periodic_lon = False
    pole_continuous = False

    def __init__(self, config: GeoCLIPConfig) -> None:
        self._net_dim = 512
        super().__init__(config)
        self.net = GeoCLIPLocationNet()
        path = Path(config.weights) if config.weights else geoclip_weights_path()
        if not path.is_file():
            raise NotFoundError(f"GeoCLIP weights not found at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.net.load_state_dict(state, strict=True)
        self.net.requires_grad_(config.trainable)
        # rebuild the head on the 512-d embedding (the base built it on pos_dim)
        self.head, self.out_dim = build_head(config, 512)

    def _pos_dim(self) -> int:
        return 3 * 512

    def _encode(self, x: Tensor) -> Tensor:
        return self.net.fourier(x)

    def embed(self, lonlat: object) -> Tensor:
        """The pretrained 512-d GeoCLIP embedding (before the optional head)."""
        return self.net(to_lonlat_tensor(lonlat).to(self._device()))

    def frozen_features(self, lonlat: object) -> Tensor:
        """The 512-d embedding when the pretrained net is frozen, else the Fourier features."""
        if self.config.trainable:
            return self.encode_position(lonlat)
        with torch.no_grad():
            return self.embed(lonlat)

    def from_frozen(self, features: Tensor) -> Tensor:
        if self.config.trainable:  # Fourier features (N, 3·512) → the three branch MLPs, summed
            parts = features.split(512, dim=1)
            emb = sum(c.head(c.capsule[1:](p)) for c, p in zip(self.net.branches(), parts))
            return self.head(emb)
        return self.head(features)
