"""Kernel location encoders: radial basis functions (rbf) and random Fourier features (rff)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geoseek.encoders.location.base import EncoderConfig, LocationEncoder, to_lonlat_tensor, unit_xyz
from geoseek.encoders.location.sinusoidal import register
from geoseek.errors import InvalidInputError


def uniform_sphere_lonlat(n: int, seed: int) -> np.ndarray:
    """``n`` points uniform on the sphere as (lon, lat) degrees, from a seeded generator."""
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180.0, 180.0, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))
    return np.stack([lon, lat], axis=1)


@dataclass
class RBFConfig(EncoderConfig):
    """rbf: ``num_anchors`` Gaussian kernels of width ``kernel_size`` degrees.

    ``anchors`` ((lon, lat) degrees) defaults to ``num_anchors`` points uniform on the sphere
    drawn with ``seed``; Sphere2Vec samples them from the training locations (pass them here).
    """

    num_anchors: int = 200
    kernel_size: float = 10.0
    anchors: list[list[float]] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kernel_size <= 0 or self.num_anchors < 1:
            raise InvalidInputError("rbf needs kernel_size > 0 and num_anchors >= 1")


@register
class RBFEncoder(LocationEncoder):
    """rbf: ``exp(−‖x − c_k‖² / (2σ²))`` for anchors c_k, with x, c_k (lon, lat) and σ in degrees.

    The distance is taken in the (lon, lat) plane, as in Sphere2Vec's baseline, so the
    encoding is neither periodic in longitude nor continuous at the poles.
    """

    Config = RBFConfig
    name = "rbf"
    periodic_lon = False
    pole_continuous = False

    def __init__(self, config: RBFConfig) -> None:
        if config.anchors is not None:
            anchors = to_lonlat_tensor(config.anchors, dtype=torch.float32, name="anchors")
        else:
            anchors = torch.tensor(uniform_sphere_lonlat(config.num_anchors, config.seed), dtype=torch.float32)
        self._n = len(anchors)
        super().__init__(config)
        self.register_buffer("anchors", anchors)

    def _pos_dim(self) -> int:
        return self._n

    def _encode(self, x: Tensor) -> Tensor:
        d2 = (x[:, None, :] - self.anchors.to(x.dtype)[None, :, :]).square().sum(-1)  # (N, K) deg²
        return torch.exp(d2 * (-0.5 / self.config.kernel_size**2))


@dataclass
class RFFConfig(EncoderConfig):
    """rff: ``num_features`` random features of a Gaussian kernel of bandwidth ``sigma``
    (chord length on the unit sphere; 0.1 ≈ 640 km), drawn with ``seed``."""

    num_features: int = 256
    sigma: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sigma <= 0 or self.num_features < 1:
            raise InvalidInputError("rff needs sigma > 0 and num_features >= 1")


@register
class RFFEncoder(LocationEncoder):
    """rff (Rahimi & Recht 2007) of the unit vector p = xyz: ``√(2/D) · cos(W p + b)``.

    ``W ~ N(0, σ⁻² I)`` (D×3), ``b ~ U(0, 2π)``; ⟨z(p), z(q)⟩ ≈ exp(−‖p − q‖² / (2σ²)).
    A function of the 3D point, so periodic and continuous on the sphere.
    """

    Config = RFFConfig
    name = "rff"
    periodic_lon = True
    pole_continuous = True

    def __init__(self, config: RFFConfig) -> None:
        super().__init__(config)
        g = torch.Generator().manual_seed(config.seed)
        self.register_buffer("weight", torch.randn(config.num_features, 3, generator=g) / config.sigma)
        self.register_buffer("bias", torch.rand(config.num_features, generator=g) * (2 * math.pi))

    def _pos_dim(self) -> int:
        return self.config.num_features

    def _encode(self, x: Tensor) -> Tensor:
        p = unit_xyz(x)
        return math.sqrt(2.0 / self.config.num_features) * torch.cos(p @ self.weight.to(x.dtype).T + self.bias.to(x.dtype))
