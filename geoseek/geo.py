"""Geographic conventions and math.

Every coordinate in geoseek is ``(lon, lat)`` in degrees on WGS84 unless a name says
otherwise (``lonlat_rad``, ``xy_m``...). Footprints are ``(west, south, east, north)`` in
degrees. Arrays of points have shape ``(N, 2)`` with longitude in column 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius (IUGG), metres."""

WEB_MERCATOR_MAX_LAT = 85.05112878
"""Latitude limit of the web-mercator tile grid, degrees."""


class CoordinateError(ValueError):
    """A coordinate is out of range or malformed."""


def as_lonlat(points: object, *, name: str = "lonlat") -> np.ndarray:
    """Validate and return points as a float64 array of shape (N, 2), (lon, lat) in degrees.

    Accepts one point ``(lon, lat)`` or an array-like of shape (N, 2). Longitude must lie in
    [-180, 180] and latitude in [-90, 90]; NaN or infinite values are rejected.

    Raises:
        CoordinateError: on a wrong shape or out-of-range values, naming the first bad row.
    """
    arr = np.asarray(points, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise CoordinateError(f"{name} must have shape (N, 2) as (lon, lat) degrees, got {arr.shape}")
    bad = ~np.isfinite(arr).all(axis=1)
    bad |= (np.abs(arr[:, 0]) > 180.0) | (np.abs(arr[:, 1]) > 90.0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CoordinateError(
            f"{name}[{i}] = ({arr[i, 0]}, {arr[i, 1]}) is not a valid (lon, lat) in degrees: "
            "lon must be in [-180, 180] and lat in [-90, 90]"
        )
    return arr


def parse_lonlat(text: str) -> tuple[float, float]:
    """Parse ``"LON,LAT"`` (degrees) into a validated ``(lon, lat)`` tuple."""
    parts = text.replace(" ", "").split(",")
    if len(parts) != 2:
        raise CoordinateError(f"expected LON,LAT in degrees, got {text!r}")
    try:
        lon, lat = float(parts[0]), float(parts[1])
    except ValueError:
        raise CoordinateError(f"expected LON,LAT in degrees, got {text!r}") from None
    as_lonlat((lon, lat))
    return lon, lat


def haversine_m(a: object, b: object) -> np.ndarray:
    """Great-circle distance in metres between (lon, lat) degree points, broadcasting (N, 2) × (N, 2)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    lon1, lat1 = np.radians(a[..., 0]), np.radians(a[..., 1])
    lon2, lat2 = np.radians(b[..., 0]), np.radians(b[..., 1])
    h = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def pairwise_haversine_m(a: object, b: object) -> np.ndarray:
    """Great-circle distances in metres, shape (len(a), len(b)), for (lon, lat) degree arrays."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return haversine_m(a[:, None, :], b[None, :, :])


@dataclass(frozen=True)
class BBox:
    """A footprint ``(west, south, east, north)`` in degrees. ``west > east`` is not supported."""

    west: float
    south: float
    east: float
    north: float

    def __post_init__(self) -> None:
        as_lonlat([(self.west, self.south), (self.east, self.north)], name="bbox")
        if self.west > self.east or self.south > self.north:
            raise CoordinateError(
                f"bbox must be (west, south, east, north) with west <= east and south <= north, got {self.as_tuple()}"
            )

    @classmethod
    def parse(cls, text: str) -> BBox:
        """Parse ``"W,S,E,N"`` in degrees."""
        try:
            w, s, e, n = (float(v) for v in text.split(","))
        except ValueError:
            raise CoordinateError(f"expected W,S,E,N in degrees, got {text!r}") from None
        return cls(w, s, e, n)

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.west, self.south, self.east, self.north)

    @property
    def center(self) -> tuple[float, float]:
        """Centre ``(lon, lat)`` in degrees."""
        return ((self.west + self.east) / 2, (self.south + self.north) / 2)

    def contains(self, lonlat: object) -> np.ndarray:
        """Boolean mask of (N, 2) (lon, lat) points inside (edges included)."""
        p = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
        return (
            (p[:, 0] >= self.west) & (p[:, 0] <= self.east) & (p[:, 1] >= self.south) & (p[:, 1] <= self.north)
        )

    def intersects(self, other: BBox) -> bool:
        return not (
            other.west > self.east or other.east < self.west or other.south > self.north or other.north < self.south
        )

    def to_geojson(self) -> dict:
        """GeoJSON Polygon of this footprint, (lon, lat) order."""
        w, s, e, n = self.as_tuple()
        return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def radius_bbox(lon: float, lat: float, radius_m: float) -> BBox:
    """The smallest (lon, lat) bbox that contains the circle of ``radius_m`` metres around (lon, lat)."""
    dlat = math.degrees(radius_m / EARTH_RADIUS_M)
    south, north = max(lat - dlat, -90.0), min(lat + dlat, 90.0)
    if south <= -90.0 or north >= 90.0:
        return BBox(-180.0, south, 180.0, north)
    coslat = max(math.cos(math.radians(max(abs(south), abs(north)))), 1e-12)
    dlon = math.degrees(radius_m / (EARTH_RADIUS_M * coslat))
    if dlon >= 180.0:
        return BBox(-180.0, south, 180.0, north)
    return BBox(max(lon - dlon, -180.0), south, min(lon + dlon, 180.0), north)


# --- web-mercator tiles (XYZ / slippy-map scheme) -------------------------------------------------


def lonlat_to_tile(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    """XYZ tile ``(x, y)`` containing (lon, lat) degrees at ``zoom``."""
    lat = max(min(lat, WEB_MERCATOR_MAX_LAT), -WEB_MERCATOR_MAX_LAT)
    n = 2**zoom
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    return min(max(x, 0), n - 1), min(max(y, 0), n - 1)


def tile_bounds(x: int, y: int, zoom: int) -> BBox:
    """Footprint (west, south, east, north) in degrees of XYZ tile (x, y, zoom)."""
    n = 2**zoom
    if not (0 <= x < n and 0 <= y < n):
        raise CoordinateError(f"tile ({x}, {y}) does not exist at zoom {zoom}")

    def lat_of(yy: float) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * yy / n))))

    return BBox(x / n * 360.0 - 180.0, lat_of(y + 1), (x + 1) / n * 360.0 - 180.0, lat_of(y))


def lonlat_to_mercator_m(lonlat: object) -> np.ndarray:
    """(N, 2) (lon, lat) degrees → (N, 2) EPSG:3857 metres (x, y)."""
    p = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
    lat = np.clip(p[:, 1], -WEB_MERCATOR_MAX_LAT, WEB_MERCATOR_MAX_LAT)
    r = 6_378_137.0
    return np.stack([np.radians(p[:, 0]) * r, r * np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))], axis=1)


def metric_window(lon: float, lat: float, size_m: float) -> BBox:
    """Square window of ``size_m`` metres on a side centred at (lon, lat) degrees, as a (lon, lat) bbox.

    Uses a local equirectangular approximation, accurate to well under a pixel for windows of a
    few kilometres away from the poles.
    """
    half = size_m / 2.0
    dlat = math.degrees(half / EARTH_RADIUS_M)
    dlon = math.degrees(half / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
    return BBox(lon - dlon, lat - dlat, lon + dlon, lat + dlat)
