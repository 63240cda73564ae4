"""Real spherical harmonics as a location encoding (as in SatCLIP, Rußwurm et al. 2024).

With colatitude θ = 90° − lat and azimuth φ = lon (radians), the orthonormal real
harmonics of degree l = 0..L−1 and order m = −l..l are

* ``Y_l^0 = P̄_l^0(cos θ)``
* ``Y_l^m = √2 · P̄_l^m(cos θ) · cos(mφ)`` for m > 0
* ``Y_l^{−m} = √2 · P̄_l^m(cos θ) · sin(mφ)`` for m > 0

where P̄_l^m are the associated Legendre functions normalized so that ∫ Y² dΩ = 1 over the
unit sphere, without the Condon–Shortley phase (so Y_1^1 ∝ x, Y_1^{−1} ∝ y, Y_1^0 ∝ z).
They are computed with the standard stable recurrences (e.g. Holmes & Featherstone 2002):

* sectoral: ``P̄_m^m = √(1/4π) · Π_{k=1..m} √((2k+1)/(2k)) · sin^m θ``
* ``P̄_l^m = a_lm (cos θ · P̄_{l−1}^m − b_lm · P̄_{l−2}^m)``,
  ``a_lm = √((4l²−1)/(l²−m²))``, ``b_lm = √(((l−1)²−m²)/(4(l−1)²−1))``,

iterated over the degree l and vectorized over points and orders, in float64. The output
has L² dims, ordered by l then m = −l..l (index l² + l + m).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geoseek.encoders.location.base import EncoderConfig, LocationEncoder, lonlat_radians
from geoseek.encoders.location.sinusoidal import register
from geoseek.errors import InvalidInputError


@dataclass
class SHConfig(EncoderConfig):
    """Spherical harmonics up to degree ``legendre_polys − 1`` (L² dims); SatCLIP's defaults
    pair them with a SIREN head."""

    legendre_polys: int = 10
    head: str = "siren"

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.legendre_polys <= 200:
            raise InvalidInputError(f"legendre_polys must be in [1, 200], got {self.legendre_polys}")


def _recurrence_tables(L: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sectoral constants c_m (m = 0..L−1) and a_lm, b_lm tables (L, L), zero where l ≤ m."""
    k = np.arange(1, L, dtype=np.float64)
    c = np.concatenate([[1.0], np.cumprod(np.sqrt((2 * k + 1) / (2 * k)))]) * math.sqrt(1 / (4 * math.pi))
    a = np.zeros((L, L))
    b = np.zeros((L, L))
    for l in range(1, L):  # tiny constant tables, built once
        m = np.arange(0, l)
        a[l, m] = np.sqrt((4.0 * l * l - 1) / (l * l - m * m))
        if l >= 2:
            b[l, m] = np.sqrt(((l - 1.0) ** 2 - m * m) / (4.0 * (l - 1.0) ** 2 - 1))
    return c, a, b


def legendre_normalized(z: Tensor, s: Tensor, L: int) -> Tensor:
    """Orthonormal associated Legendre P̄_l^m(z) for l, m < L: (N, L, L), [:, l, m], 0 for m > l.

    ``z = cos θ`` and ``s = sin θ ≥ 0`` (passed separately so that gradients stay finite at
    the poles, where √(1 − z²) has an infinite derivative); computed in their dtype (use float64).
    """
    c, a, b = (torch.tensor(t, dtype=z.dtype, device=z.device) for t in _recurrence_tables(L))
    s_pow = torch.cat([torch.ones_like(s)[:, None], s[:, None].expand(-1, L - 1)], dim=1).cumprod(dim=1)
    sectoral = c * s_pow  # (N, L): P̄_m^m = c_m sin^m θ
    rows = [None] * L
    eye = torch.eye(L, dtype=z.dtype, device=z.device)
    prev2 = torch.zeros_like(sectoral)
    prev = sectoral * eye[0]  # degree 0: only P̄_0^0
    rows[0] = prev
    zc = z[:, None]
    for l in range(1, L):  # recurrence over the degree, vectorized over points and orders
        cur = a[l] * (zc * prev - b[l] * prev2) + sectoral * eye[l]
        rows[l] = cur
        prev2, prev = prev, cur
    return torch.stack(rows, dim=1)


@register
class SphericalHarmonicsEncoder(LocationEncoder):
    """Real orthonormal spherical harmonics Y_l^m(lon, lat), l < ``legendre_polys`` (L² dims)."""

    Config = SHConfig
    name = "spherical_harmonics"
    periodic_lon = True
    pole_continuous = True

    def __init__(self, config: SHConfig) -> None:
        super().__init__(config)
        L = config.legendre_polys
        ls, ms = [], []
        for l in range(L):
            ls += [l] * (2 * l + 1)
            ms += list(range(-l, l + 1))
        ls_t, ms_t = torch.tensor(ls), torch.tensor(ms)
        m_abs = ms_t.abs()
        # flat gather indices into P (N, L·L) and into the trig table [cos mλ | sin mλ] (N, 2L)
        self.register_buffer("_p_idx", ls_t * L + m_abs, persistent=False)
        self.register_buffer("_t_idx", torch.where(ms_t < 0, L + m_abs, m_abs), persistent=False)
        self.register_buffer("_scale", torch.where(ms_t == 0, 1.0, math.sqrt(2.0)).double(), persistent=False)

    def _pos_dim(self) -> int:
        return self.config.legendre_polys**2

    def _encode(self, x: Tensor) -> Tensor:
        L = self.config.legendre_polys
        lam, phi = lonlat_radians(x.double())
        # colatitude θ = π/2 − lat: cos θ = sin(lat), sin θ = cos(lat) ≥ 0
        P = legendre_normalized(torch.sin(phi[:, 0]), torch.cos(phi[:, 0]), L).reshape(len(x), L * L)
        mlam = lam * torch.arange(L, dtype=lam.dtype, device=lam.device)  # (N, L)
        trig = torch.cat([torch.cos(mlam), torch.sin(mlam)], dim=1)  # (N, 2L)
        y = P.index_select(1, self._p_idx) * trig.index_select(1, self._t_idx) * self._scale
        return y.to(x.dtype)
