"""Shared pieces of the location encoders: input validation, typed configs, learnable heads.

Every location encoder maps (lon, lat) degrees, shape (N, 2), to vectors in two stages:

* ``encode_position(lonlat)`` — a fixed (parameter-free) position encoding, (N, ``pos_dim``);
* ``forward(lonlat)`` — the position encoding followed by the configured head, (N, ``out_dim``).

The head is ``"none"`` (identity), ``"mlp"`` (Linear–ReLU stack), ``"siren"`` (sine
activations, Sitzmann et al. 2020, as SatCLIP uses with spherical harmonics) or ``"resmlp"``
(the residual fully connected net of Mac Aodha et al. 2019, "wrap" in Sphere2Vec).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from geoseek.errors import InvalidInputError
from geoseek.geo import CoordinateError, as_lonlat

HEADS = ("none", "mlp", "siren", "resmlp")


def to_lonlat_tensor(lonlat: object, *, dtype: torch.dtype = torch.float32, name: str = "lonlat") -> Tensor:
    """Validate (lon, lat) degrees and return an (N, 2) tensor of ``dtype``.

    Accepts a tensor, an array or nested sequences of shape (N, 2) or (2,). Same semantics as
    :func:`geoseek.geo.as_lonlat`: lon in [-180, 180], lat in [-90, 90], finite.

    Raises:
        CoordinateError: wrong shape or an out-of-range / non-finite row (named in the message).
    """
    if not isinstance(lonlat, Tensor):
        return torch.from_numpy(as_lonlat(lonlat, name=name)).to(dtype)
    x = lonlat
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2 or x.shape[1] != 2:
        raise CoordinateError(f"{name} must have shape (N, 2) as (lon, lat) degrees, got {tuple(lonlat.shape)}")
    if not x.is_floating_point():
        x = x.to(dtype)
    with torch.no_grad():
        bad = ~torch.isfinite(x).all(dim=1) | (x[:, 0].abs() > 180.0) | (x[:, 1].abs() > 90.0)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            raise CoordinateError(
                f"{name}[{i}] = ({float(x[i, 0])}, {float(x[i, 1])}) is not a valid (lon, lat) in degrees: "
                "lon must be in [-180, 180] and lat in [-90, 90]"
            )
    return x if x.dtype == dtype else x.to(dtype)


@dataclass
class EncoderConfig:
    """Head settings shared by every encoder.

    Attributes:
        head: ``none`` | ``mlp`` | ``siren`` | ``resmlp``.
        hidden_dim: width of the head's hidden layers.
        num_layers: number of hidden layers (``resmlp``: residual blocks).
        out_dim: output width of the head (default ``hidden_dim``); ignored for ``head="none"``.
        dropout: dropout probability inside ``mlp`` / ``resmlp`` heads.
        siren_w0: frequency factor ω0 of the SIREN layers.
    """

    head: str = "mlp"
    hidden_dim: int = 256
    num_layers: int = 2
    out_dim: int | None = None
    dropout: float = 0.0
    siren_w0: float = 30.0

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise InvalidInputError(f"head must be one of {', '.join(HEADS)}, got {self.head!r}")
        if self.hidden_dim < 1 or self.num_layers < 0:
            raise InvalidInputError("hidden_dim must be >= 1 and num_layers >= 0")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidInputError(f"dropout must be in [0, 1), got {self.dropout}")

    @classmethod
    def build(cls, **params: Any) -> EncoderConfig:
        """Build from keyword arguments, with a clear error naming unknown ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidInputError(
                f"unknown parameter(s) {', '.join(unknown)} for {cls.__name__}; known: {', '.join(sorted(known))}"
            )
        return cls(**params)


@dataclass
class MultiScaleConfig(EncoderConfig):
    """Geometric scales ``r_s = min_radius · g^{s/(S-1)}``, ``g = max_radius / min_radius``,
    ``s = 0..S-1`` with ``S = frequency_num``; the angular frequency of scale s is ``1 / r_s``."""

    frequency_num: int = 32
    min_radius: float = 0.01
    max_radius: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.frequency_num < 1:
            raise InvalidInputError(f"frequency_num must be >= 1, got {self.frequency_num}")
        if not 0 < self.min_radius <= self.max_radius:
            raise InvalidInputError(
                f"need 0 < min_radius <= max_radius, got min_radius={self.min_radius}, max_radius={self.max_radius}"
            )


def geometric_frequencies(frequency_num: int, min_radius: float, max_radius: float) -> np.ndarray:
    """Angular frequencies ``1 / r_s`` for ``r_s = r_min · (r_max / r_min)^{s/(S-1)}``, highest first.

    Same series as Space2Vec / Sphere2Vec's ``_cal_freq_list(freq_init="geometric")``.
    """
    if frequency_num == 1:
        return np.array([1.0 / max_radius])
    s = np.arange(frequency_num, dtype=np.float64)
    radii = min_radius * np.exp(s * math.log(max_radius / min_radius) / (frequency_num - 1))
    return 1.0 / radii


def snap_odd(freqs: np.ndarray) -> np.ndarray:
    """Round frequencies to distinct odd integers (ascending), keeping their geometric spread.

    With an odd integer frequency ω, ``sin(ωλ), cos(ωλ)`` are 2π-periodic in longitude and
    ``cos(ωφ)`` vanishes at the poles (φ = ±π/2), so the Sphere2Vec terms become continuous
    functions on the sphere.
    """
    f = np.sort(np.asarray(freqs, dtype=np.float64))
    odd = 2.0 * np.round((f - 1.0) / 2.0) + 1.0
    odd = np.maximum(odd, 1.0)
    for i in range(1, len(odd)):  # a few dozen scales at most: make them distinct
        odd[i] = max(odd[i], odd[i - 1] + 2.0)
    return odd


# --- heads ----------------------------------------------------------------------------------------


class SineLayer(nn.Module):
    """``sin(ω0 · (W x + b))`` with SIREN's initialization (Sitzmann et al. 2020)."""

    def __init__(self, in_dim: int, out_dim: int, w0: float, first: bool) -> None:
        super().__init__()
        self.w0 = w0
        self.linear = nn.Linear(in_dim, out_dim)
        bound = 1.0 / in_dim if first else math.sqrt(6.0 / in_dim) / w0
        nn.init.uniform_(self.linear.weight, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.sin(self.w0 * self.linear(x))


class ResidualBlock(nn.Module):
    """``x + ReLU(W2 · Dropout(ReLU(W1 x)))`` — a block of Mac Aodha et al.'s FCNet."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(dim, dim), nn.ReLU(inplace=True)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


def build_head(cfg: EncoderConfig, in_dim: int) -> tuple[nn.Module, int]:
    """The head described by ``cfg`` for inputs of width ``in_dim``; returns (module, out_dim)."""
    if cfg.head == "none":
        return nn.Identity(), in_dim
    h, out = cfg.hidden_dim, cfg.out_dim or cfg.hidden_dim
    layers: list[nn.Module] = []
    if cfg.head == "mlp":
        d = in_dim
        for _ in range(cfg.num_layers):
            layers += [nn.Linear(d, h), nn.ReLU(inplace=True)]
            if cfg.dropout:
                layers.append(nn.Dropout(cfg.dropout))
            d = h
        layers.append(nn.Linear(d, out))
    elif cfg.head == "siren":
        d = in_dim
        for i in range(cfg.num_layers):
            layers.append(SineLayer(d, h, cfg.siren_w0, first=i == 0))
            d = h
        last = nn.Linear(d, out)
        bound = math.sqrt(6.0 / d) / cfg.siren_w0
        nn.init.uniform_(last.weight, -bound, bound)
        layers.append(last)
    else:  # resmlp
        layers += [nn.Linear(in_dim, h), nn.ReLU(inplace=True)]
        layers += [ResidualBlock(h, cfg.dropout) for _ in range(cfg.num_layers)]
        if out != h:
            layers.append(nn.Linear(h, out))
    return nn.Sequential(*layers), out


# --- base module ----------------------------------------------------------------------------------


class LocationEncoder(nn.Module):
    """Base class: validated (lon, lat) degrees → position encoding → head.

    Subclasses set ``Config`` and implement :meth:`_encode` on a validated float tensor and
    :meth:`_pos_dim`. Class attributes state two properties that tests verify in both
    directions: ``periodic_lon`` (the encoding at lon = −180 equals that at +180) and
    ``pole_continuous`` (a continuous function on the sphere, also across the poles).
    """

    Config: ClassVar[type[EncoderConfig]] = EncoderConfig
    name: ClassVar[str] = ""
    periodic_lon: ClassVar[bool] = True
    pole_continuous: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.writes_out = "out" in inspect.signature(cls._encode).parameters

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        self.pos_dim = self._pos_dim()
        self.head, self.out_dim = build_head(config, self.pos_dim)

    def _pos_dim(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encode(self, lonlat: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    writes_out: ClassVar[bool] = False
    """Whether :meth:`_encode` accepts ``out=`` (an (n, pos_dim) block to write into)."""
    chunk_size: ClassVar[int] = 2048
    """Points encoded per block when N is large: intermediates stay in cache (≈2–4× faster)."""

    def encode_position(self, lonlat: object, out: Tensor | None = None) -> Tensor:
        """Parameter-free position encoding, (N, ``pos_dim``) float32, of (N, 2) (lon, lat) degrees.

        Large inputs are encoded in blocks of :attr:`chunk_size` points (one vectorized call
        per block) unless gradients with respect to the input are needed. ``out``, a
        contiguous float32 (N, ``pos_dim``) tensor, receives the result (reuse it when
        streaming many batches: no fresh memory to fault in).
        """
        x = to_lonlat_tensor(lonlat, dtype=self._dtype()).to(self._device())
        n, cs = len(x), self.chunk_size
        needs_grad = x.requires_grad and torch.is_grad_enabled()
        if out is None:
            if n <= cs or needs_grad:
                return self._encode(x)
            out = torch.empty((n, self.pos_dim), dtype=torch.float32, device=x.device)
        elif needs_grad:
            raise InvalidInputError("out= cannot be used while gradients with respect to lonlat are needed")
        elif tuple(out.shape) != (n, self.pos_dim) or out.dtype != torch.float32 or not out.is_contiguous():
            raise InvalidInputError(
                f"out must be a contiguous float32 tensor of shape ({n}, {self.pos_dim}), got "
                f"{tuple(out.shape)} {out.dtype}"
            )
        def encode_range(start: int, stop: int) -> None:
            for i in range(start, stop, cs):  # cache blocking over chunks of points, each fully vectorized
                j = min(i + cs, stop)
                block = out[i:j]
                res = self._encode(x[i:j], out=block) if self.writes_out else self._encode(x[i:j])
                if res.data_ptr() != block.data_ptr():
                    block.copy_(res)

        if x.device.type == "cpu":
            # a few large chunks on worker threads with one intra-op thread each, instead of one
            # small parallel region per block whose barrier waits for any descheduled thread
            from geoseek.runtime.threads import parallel_chunks

            parallel_chunks(encode_range, n, min_chunk=8 * cs)
        else:
            encode_range(0, n)
        return out

    def forward(self, lonlat: object) -> Tensor:
        """Position encoding followed by the head, (N, ``out_dim``)."""
        return self.from_frozen(self.frozen_features(lonlat))

    def frozen_features(self, lonlat: object) -> Tensor:
        """The part of :meth:`forward` without trainable parameters (cacheable during training).

        ``forward(x) == from_frozen(frozen_features(x))``; by default the position encoding.
        """
        return self.encode_position(lonlat)

    def from_frozen(self, features: Tensor) -> Tensor:
        """The trainable rest of :meth:`forward` (by default the head)."""
        return self.head(features)

    def _dtype(self) -> torch.dtype:
        return torch.float32

    def _device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"pos_dim={self.pos_dim}, out_dim={self.out_dim}"


def lonlat_radians(x: Tensor) -> tuple[Tensor, Tensor]:
    """(N, 2) degrees → (lon, lat) in radians, each (N, 1)."""
    r = x * (math.pi / 180.0)
    return r[:, :1], r[:, 1:2]


def cat_into(parts: list[Tensor], out: Tensor | None) -> Tensor:
    """``torch.cat(parts, dim=1)``, written into ``out`` when given (no extra copy)."""
    if out is None:
        return torch.cat(parts, dim=1)
    return torch.cat(parts, dim=1, out=out)


def unit_xyz(x: Tensor) -> Tensor:
    """(N, 2) (lon, lat) degrees → (N, 3) unit vectors ``(cos φ cos λ, cos φ sin λ, sin φ)``."""
    lam, phi = lonlat_radians(x)
    c = torch.cos(phi)
    return torch.cat([c * torch.cos(lam), c * torch.sin(lam), torch.sin(phi)], dim=1)
