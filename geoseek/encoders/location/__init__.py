"""Location encoders: (lon, lat) degrees, shape (N, 2) → vectors, registered by name.

``create_location_encoder(name, **params)`` (from :mod:`geoseek.encoders.registry`) builds
any of: xyz, wrap, wrap_ffn, rbf, rff, grid, theory, nerf, sphereC, sphereC+, sphereM,
sphereM+, dfs, spherical_harmonics, geoclip. Every module has ``encode_position(lonlat)``
(fixed position encoding, N × ``pos_dim``) and ``forward(lonlat)`` (encoding + head,
N × ``out_dim``). See docs/location-encoders.md for formulas, defaults and benchmarks.
"""

from geoseek.encoders.location import geoclip, harmonics, kernels, sinusoidal  # noqa: F401  (register)
from geoseek.encoders.location.base import EncoderConfig, LocationEncoder, to_lonlat_tensor
from geoseek.encoders.registry import create_location_encoder, list_location_encoders

__all__ = ["EncoderConfig", "LocationEncoder", "create_location_encoder", "list_location_encoders", "to_lonlat_tensor"]
