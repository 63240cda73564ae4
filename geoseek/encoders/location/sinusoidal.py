"""Sinusoidal location encoders: xyz, wrap, Space2Vec (grid, theory), NeRF and Sphere2Vec.

Notation: λ = longitude, φ = latitude, both in radians unless a formula says degrees;
``ω_s`` are the angular frequencies of the S scales (see
:func:`~geoseek.encoders.location.base.geometric_frequencies`), ascending. ``∪_s [t1, t2, ...]``
lists the terms; the output is laid out term by term (all S scales of t1, then of t2, ...),
which writes contiguous blocks and is several times faster than interleaving scale by scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geoseek.encoders.location.base import (
    EncoderConfig,
    LocationEncoder,
    cat_into,
    MultiScaleConfig,
    geometric_frequencies,
    lonlat_radians,
    snap_odd,
    unit_xyz,
)
from geoseek.encoders.registry import register_location_encoder
from geoseek.errors import InvalidInputError


def register(cls: type[LocationEncoder]) -> type[LocationEncoder]:
    """Register ``cls`` under ``cls.name``: ``create_location_encoder(name, **config fields)``."""

    def factory(**params: object) -> LocationEncoder:
        return cls(cls.Config.build(**params))

    factory.__doc__ = cls.__doc__
    register_location_encoder(cls.name, periodic_lon=cls.periodic_lon, pole_continuous=cls.pole_continuous)(factory)
    return cls


# --- xyz and wrap ---------------------------------------------------------------------------------


@register
class XYZEncoder(LocationEncoder):
    """xyz: the point on the unit sphere, ``[cos φ cos λ, cos φ sin λ, sin φ]`` (3 dims, unitless)."""

    name = "xyz"
    periodic_lon = True
    pole_continuous = True

    def _pos_dim(self) -> int:
        return 3

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        return unit_xyz(x)


@dataclass
class WrapConfig(EncoderConfig):
    """wrap defaults to Mac Aodha et al.'s residual net: 4 blocks of width 256."""

    head: str = "resmlp"
    num_layers: int = 4


@register
class WrapEncoder(LocationEncoder):
    """wrap (Mac Aodha et al. 2019): ``[sin λ, sin 2φ', cos λ, cos 2φ']`` with ``2φ' = π·lat/90``.

    In degrees: ``[sin(π lon/180), sin(π lat/90), cos(π lon/180), cos(π lat/90)]`` (4 dims).
    Default head: the residual FCNet ("wrap"); ``wrap_ffn`` uses a plain MLP.
    """

    Config = WrapConfig
    name = "wrap"
    periodic_lon = True
    pole_continuous = False

    def _pos_dim(self) -> int:
        return 4

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        a = x * torch.tensor([math.pi / 180.0, math.pi / 90.0], dtype=x.dtype, device=x.device)
        return cat_into([torch.sin(a), torch.cos(a)], out)


@register
class WrapFFNEncoder(WrapEncoder):
    """wrap_ffn: the wrap encoding followed by a plain MLP head (Sphere2Vec's "wrap + ffn")."""

    Config = EncoderConfig
    name = "wrap_ffn"


# --- Space2Vec (planar, degrees) ------------------------------------------------------------------


@dataclass
class GridConfig(MultiScaleConfig):
    """Space2Vec on (lon, lat) in degrees: radii in degrees."""

    frequency_num: int = 32
    min_radius: float = 0.5
    max_radius: float = 360.0


@register
class GridEncoder(LocationEncoder):
    """Space2Vec-grid (Mai et al. 2020) on degrees, a planar encoding.

    ``∪_s [sin(lon/r_s), cos(lon/r_s), sin(lat/r_s), cos(lat/r_s)]`` with lon, lat and the
    radii r_s in degrees (4·S dims). Not periodic in longitude: it treats the map as a plane.
    """

    Config = GridConfig
    name = "grid"
    periodic_lon = False
    pole_continuous = False

    def __init__(self, config: GridConfig) -> None:
        super().__init__(config)
        f = geometric_frequencies(config.frequency_num, config.min_radius, config.max_radius)
        self.register_buffer("freqs", torch.tensor(f, dtype=torch.float32), persistent=False)

    def _pos_dim(self) -> int:
        return 4 * self.config.frequency_num

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        a = (x[:, :, None] * self.freqs.to(x.dtype)).reshape(len(x), -1)  # (N, 2·S): lon block, lat block
        s, c = torch.sin(a), torch.cos(a)
        S = self.config.frequency_num
        return cat_into([s[:, :S], c[:, :S], s[:, S:], c[:, S:]], out)


@register
class TheoryEncoder(LocationEncoder):
    """Space2Vec-theory (Mai et al. 2020) on degrees: three directions 120° apart.

    With unit vectors ``a_1 = (1, 0)``, ``a_2 = (−1/2, √3/2)``, ``a_3 = (−1/2, −√3/2)`` and
    ``x = (lon, lat)`` in degrees: ``∪_s ∪_j [sin(a_j·x / r_s), cos(a_j·x / r_s)]`` (6·S dims).
    """

    Config = GridConfig
    name = "theory"
    periodic_lon = False
    pole_continuous = False

    def __init__(self, config: GridConfig) -> None:
        super().__init__(config)
        f = geometric_frequencies(config.frequency_num, config.min_radius, config.max_radius)
        self.register_buffer("freqs", torch.tensor(f, dtype=torch.float32), persistent=False)
        dirs = torch.tensor([[1.0, 0.0], [-0.5, math.sqrt(3) / 2], [-0.5, -math.sqrt(3) / 2]])
        self.register_buffer("dirs", dirs, persistent=False)

    def _pos_dim(self) -> int:
        return 6 * self.config.frequency_num

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        proj = x @ self.dirs.to(x.dtype).T  # (N, 3)
        a = (proj[:, :, None] * self.freqs.to(x.dtype)).reshape(len(x), -1)  # (N, 3·S)
        return cat_into([torch.sin(a), torch.cos(a)], out)


# --- NeRF on the unit sphere ----------------------------------------------------------------------


@dataclass
class NeRFConfig(EncoderConfig):
    """NeRF: ``frequency_num`` octaves ``2^l · π``, l = 0..L−1."""

    frequency_num: int = 8

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.frequency_num <= 30:
            raise InvalidInputError(f"frequency_num must be in [1, 30], got {self.frequency_num}")


@register
class NeRFEncoder(LocationEncoder):
    """NeRF positional encoding (Mildenhall et al. 2020) of the unit vector p = xyz.

    ``∪_l [sin(2^l π p), cos(2^l π p)]`` for l = 0..L−1, p ∈ R³ (6·L dims). A function of
    the 3D point, hence periodic and continuous on the sphere.
    """

    Config = NeRFConfig
    name = "nerf"
    periodic_lon = True
    pole_continuous = True

    def __init__(self, config: NeRFConfig) -> None:
        super().__init__(config)
        f = math.pi * 2.0 ** np.arange(config.frequency_num)
        self.register_buffer("freqs", torch.tensor(f, dtype=torch.float32), persistent=False)

    def _pos_dim(self) -> int:
        return 6 * self.config.frequency_num

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        a = (self.freqs.to(x.dtype)[None, :, None] * unit_xyz(x)[:, None, :]).reshape(len(x), -1)  # (N, L·3)
        return cat_into([torch.sin(a), torch.cos(a)], out)


# --- Sphere2Vec -----------------------------------------------------------------------------------


@dataclass
class SphereConfig(MultiScaleConfig):
    """Sphere2Vec scales, radii in radians: ``ω_s = 1 / r_s`` with r_s from ``min_radius`` to
    ``max_radius`` (defaults 0.01 to 1 rad: wavelengths 2π·r, 0.36° to 360°).

    ``snap=True`` (default) rounds each ω_s to a distinct odd integer (:func:`snap_odd`),
    which makes every term 2π-periodic in longitude and, for sphereC / sphereM, continuous
    at the poles; ``snap=False`` keeps the paper's real-valued frequencies.
    """

    frequency_num: int = 32
    min_radius: float = 0.01
    max_radius: float = 1.0
    snap: bool = True


class _SphereBase(LocationEncoder):
    """Shared frequency set-up of the Sphere2Vec encoders."""

    Config = SphereConfig

    PRECISE_ABOVE = 1000.0
    """Above this largest frequency the angles ω_s·λ are formed in float64 and reduced modulo
    2π before the float32 trig (float32 angles of ~10⁵ rad are off by ~10⁻² rad)."""

    def __init__(self, config: SphereConfig) -> None:
        super().__init__(config)
        f = geometric_frequencies(config.frequency_num, config.min_radius, config.max_radius)
        f = snap_odd(f) if config.snap else np.sort(f)
        self.precise = bool(f.max() > self.PRECISE_ABOVE)
        self.register_buffer("freqs", torch.tensor(f, dtype=torch.float64 if self.precise else torch.float32),
                             persistent=False)

    def _dtype(self) -> torch.dtype:
        return torch.float64 if self.precise else torch.float32

    def _angles(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(λ, φ) each (N, 1) and (ω_s λ, ω_s φ) each (N, S), radians, float32."""
        lam, phi = lonlat_radians(x)
        if self.precise:
            two_pi = 2.0 * math.pi
            wl = torch.remainder(lam * self.freqs, two_pi).float()
            wp = torch.remainder(phi * self.freqs, two_pi).float()
            return lam.float(), phi.float(), wl, wp
        w = self.freqs.to(x.dtype)
        return lam, phi, lam * w, phi * w


@register
class SphereCEncoder(_SphereBase):
    """Sphere2Vec-sphereC: ``∪_s [sin ω_sφ, cos ω_sφ · cos ω_sλ, cos ω_sφ · sin ω_sλ]`` (3·S dims).

    Each scale is the xyz of a point at (ω_s λ, ω_s φ); with ω_s = 1 it is exactly xyz.
    """

    name = "sphereC"
    periodic_lon = True
    pole_continuous = True

    def _pos_dim(self) -> int:
        return 3 * self.config.frequency_num

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        _, _, wl, wp = self._angles(x)
        cp = torch.cos(wp)
        return cat_into([torch.sin(wp), cp * torch.cos(wl), cp * torch.sin(wl)], out)


@register
class SphereCPlusEncoder(_SphereBase):
    """Sphere2Vec-sphereC+: sphereC plus Space2Vec-grid terms on radians.

    ``∪_s [sin ω_sφ, cos ω_sφ, sin ω_sλ, cos ω_sλ, cos ω_sφ cos ω_sλ, cos ω_sφ sin ω_sλ]`` (6·S dims).
    The pure longitude terms make it discontinuous at the poles.
    """

    name = "sphereC+"
    periodic_lon = True
    pole_continuous = False

    def _pos_dim(self) -> int:
        return 6 * self.config.frequency_num

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        _, _, wl, wp = self._angles(x)
        sp, cp, sl, cl = torch.sin(wp), torch.cos(wp), torch.sin(wl), torch.cos(wl)
        return cat_into([sp, cp, sl, cl, cp * cl, cp * sl], out)


@register
class SphereMEncoder(_SphereBase):
    """Sphere2Vec-sphereM: multi-scale in one angle, single-scale in the other.

    ``∪_s [sin ω_sφ, cos ω_sφ · cos λ, cos φ · cos ω_sλ, cos ω_sφ · sin λ, cos φ · sin ω_sλ]``
    (5·S dims, λ and φ in radians).
    """

    name = "sphereM"
    periodic_lon = True
    pole_continuous = True

    def _pos_dim(self) -> int:
        return 5 * self.config.frequency_num

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        lam, phi, wl, wp = self._angles(x)
        cp1 = torch.cos(phi)
        cpw = torch.cos(wp)
        return cat_into(
            [torch.sin(wp), cpw * torch.cos(lam), cp1 * torch.cos(wl), cpw * torch.sin(lam), cp1 * torch.sin(wl)], out
        )


@register
class SphereMPlusEncoder(_SphereBase):
    """Sphere2Vec-sphereM+: sphereM plus Space2Vec-grid terms on radians.

    ``∪_s [sin ω_sφ, cos ω_sφ, sin ω_sλ, cos ω_sλ, cos ω_sφ cos λ, cos φ cos ω_sλ,
    cos ω_sφ sin λ, cos φ sin ω_sλ]`` (8·S dims).
    """

    name = "sphereM+"
    periodic_lon = True
    pole_continuous = False

    def _pos_dim(self) -> int:
        return 8 * self.config.frequency_num

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        lam, phi, wl, wp = self._angles(x)
        cp1 = torch.cos(phi)
        sp, cp, sl, cl = torch.sin(wp), torch.cos(wp), torch.sin(wl), torch.cos(wl)
        return cat_into([sp, cp, sl, cl, cp * torch.cos(lam), cp1 * cl, cp * torch.sin(lam), cp1 * sl], out)


@dataclass
class DFSConfig(SphereConfig):
    """dfs has 4·S + 4·S² dims, hence fewer scales by default."""

    frequency_num: int = 16


@register
class DFSEncoder(_SphereBase):
    """Sphere2Vec-dfs, the double Fourier sphere basis (Orszag 1974; Merilees 1973).

    ``∪_n [sin ω_nφ, cos ω_nφ] ∪ ∪_m [sin ω_mλ, cos ω_mλ] ∪ ∪_{n,m} [cos ω_nφ cos ω_mλ,
    cos ω_nφ sin ω_mλ, sin ω_nφ cos ω_mλ, sin ω_nφ sin ω_mλ]`` (4·S + 4·S² dims).
    """

    Config = DFSConfig
    name = "dfs"
    periodic_lon = True
    pole_continuous = False

    def _pos_dim(self) -> int:
        s = self.config.frequency_num
        return 4 * s + 4 * s * s

    def _encode(self, x: Tensor, out: Tensor | None = None) -> Tensor:
        _, _, wl, wp = self._angles(x)
        n = len(x)
        p = torch.stack([torch.cos(wp), torch.sin(wp)], dim=1)  # (N, 2, S): cos block, sin block
        l = torch.stack([torch.cos(wl), torch.sin(wl)], dim=1)  # (N, 2, S)
        pair = p[:, :, None, :, None] * l[:, None, :, None, :]  # (N, 2, 2, S_φ, S_λ)
        return cat_into([p[:, 1], p[:, 0], l[:, 1], l[:, 0], pair.reshape(n, -1)], out)
