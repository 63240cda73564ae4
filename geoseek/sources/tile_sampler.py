"""Loc2Vec triplets from OSM: anchor, a near positive and a far negative, rendered on the fly.

The anchor is a random location with content (at least ``min_content`` of its pixels drawn);
the positive lies ``d_pos`` = [100, 500] m away in a random direction, the negative at least
``d_neg`` = 2 km away (checked with the haversine distance, unlike Geobacter's random pool).
Each window is ``window_m`` ground metres wide (drawn per triplet from a range, a scale
jitter), rendered at ``size`` px, with a random 90° rotation / flip applied to each tile.

:class:`SpatialSplit` keeps training and evaluation apart: the plane is cut into square blocks
of ``block_m`` web-mercator metres and a fixed hash holds out a share of them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from geoseek.geo import haversine_m
from geoseek.sources.osm import OsmFeatures, mercator_to_lonlat
from geoseek.sources.render import HALF_WORLD, render_window, xyz_bounds_m

EARTH_R = 6_371_008.8


@dataclass
class SpatialSplit:
    """Square blocks of ``block_m`` mercator metres; a hash holds out ``holdout`` of them."""

    block_m: float = 2000.0
    holdout: float = 0.25
    seed: int = 0

    def held_out_xy(self, xy: np.ndarray) -> np.ndarray:
        """Boolean (N,) for (N, 2) mercator points: is the point's block held out?"""
        xy = np.asarray(xy, np.float64).reshape(-1, 2)
        b = np.floor(xy / self.block_m).astype(np.int64)
        h = (b[:, 0] * 73856093) ^ (b[:, 1] * 19349663) ^ (self.seed * 83492791 + 12345)
        h = (h * 2654435761) % (2**32)
        return (h % 10_000) < self.holdout * 10_000

    def split_of_bounds(self, bounds: np.ndarray) -> np.ndarray:
        """For (N, 4) mercator bounds: 'train' if all corners are in training blocks,
        'test' if all are held out, 'mixed' otherwise. Returns an object array (N,)."""
        bounds = np.asarray(bounds, np.float64).reshape(-1, 4)
        corners = np.stack(
            [bounds[:, [0, 1]], bounds[:, [0, 3]], bounds[:, [2, 1]], bounds[:, [2, 3]]], 1
        ).reshape(-1, 2)
        held = self.held_out_xy(corners).reshape(-1, 4)
        out = np.full(len(bounds), "mixed", dtype=object)
        out[~held.any(1)] = "train"
        out[held.all(1)] = "test"
        return out


@dataclass
class TripletConfig:
    """Loc2Vec sampling settings (distances in ground metres)."""

    d_pos: tuple[float, float] = (100.0, 500.0)
    d_neg: float = 2000.0
    window_m: tuple[float, float] = (200.0, 320.0)
    size: int = 128
    min_content: float = 0.05
    augment: bool = True
    drop_land_use: float = 0.0
    """Probability of blanking a tile's land-use channels (per tile): teaches the embedding to
    read a place's character from buildings, roads and points alone."""
    split: SpatialSplit | None = field(default_factory=SpatialSplit)
    """Windows must lie wholly in training blocks (None: use the whole region)."""

    def to_dict(self) -> dict:
        d = asdict(self)
        d["d_pos"], d["window_m"] = list(self.d_pos), list(self.window_m)
        return d


def offset_lonlat(lon: float, lat: float, distance_m: float, bearing_rad: float) -> tuple[float, float]:
    """The point ``distance_m`` from (lon, lat) at ``bearing_rad`` (0 = north), on the sphere."""
    phi1, lam1 = math.radians(lat), math.radians(lon)
    d = distance_m / EARTH_R
    phi2 = math.asin(math.sin(phi1) * math.cos(d) + math.cos(phi1) * math.sin(d) * math.cos(bearing_rad))
    lam2 = lam1 + math.atan2(math.sin(bearing_rad) * math.sin(d) * math.cos(phi1), math.cos(d) - math.sin(phi1) * math.sin(phi2))
    return math.degrees(lam2), math.degrees(phi2)


class TileTripletSampler:
    """Draw Loc2Vec triplets of rendered tiles from ``features``.

    ``sample(n, rng)`` returns ``(tiles, centers)``: tiles (3, n, C, size, size) uint8 for
    anchors, positives, negatives; centers (3, n, 2) (lon, lat) degrees.
    """

    def __init__(self, features: OsmFeatures, cfg: TripletConfig | None = None, zoom: int = 16) -> None:
        from geoseek.sources.render import nonempty_tiles

        self.features = features
        self.cfg = cfg or TripletConfig()
        cells = np.asarray(nonempty_tiles(features, zoom), dtype=np.int64).reshape(-1, 2)
        if len(cells) == 0:
            raise ValueError(f"{features.source}: no tile with content to sample from")
        if self.cfg.split is not None:
            b = np.array([xyz_bounds_m(zoom, int(x), int(y)) for x, y in cells])
            cells = cells[self.cfg.split.split_of_bounds(b) != "test"]
            if len(cells) == 0:
                raise ValueError("every tile is held out by the spatial split")
        self.cells, self.zoom = cells, zoom
        self.cell_size = 2 * HALF_WORLD / 2**zoom

    # --- locations -----------------------------------------------------------------------------
    def _window_ok(self, lon: float, lat: float, size_m: float) -> bool:
        if self.cfg.split is None:
            return True
        from geoseek.sources.render import window_bounds_m

        return self.cfg.split.split_of_bounds(np.array(window_bounds_m(lon, lat, size_m)))[0] == "train"

    def _random_location(self, rng: np.random.Generator) -> tuple[float, float]:
        x, y = self.cells[rng.integers(len(self.cells))]
        mx = -HALF_WORLD + (x + rng.random()) * self.cell_size
        my = HALF_WORLD - (y + rng.random()) * self.cell_size
        lon, lat = mercator_to_lonlat(np.array([[mx, my]]))[0]
        return float(lon), float(lat)

    def _render(self, lon: float, lat: float, size_m: float) -> np.ndarray:
        return render_window(self.features, lon, lat, size_m, self.cfg.size)

    def _content(self, tile: np.ndarray) -> float:
        return float(tile.any(0).mean())

    def anchor(self, rng: np.random.Generator, size_m: float, tries: int = 50) -> tuple[tuple[float, float], np.ndarray]:
        """A random location with content and its tile."""
        best = None
        for _ in range(tries):
            lon, lat = self._random_location(rng)
            if not self._window_ok(lon, lat, size_m):
                continue
            t = self._render(lon, lat, size_m)
            c = self._content(t)
            if c >= self.cfg.min_content:
                return (lon, lat), t
            if best is None or c > best[0]:
                best = (c, (lon, lat), t)
        if best is None:
            raise ValueError("could not find a training window with content")
        return best[1], best[2]

    def positive(self, rng: np.random.Generator, a: tuple[float, float], size_m: float, tries: int = 20):
        """A location d_pos away from ``a`` (content preferred) and its tile."""
        lo, hi = self.cfg.d_pos
        fallback = None
        for _ in range(tries):
            d = lo + (hi - lo) * rng.random()
            p = offset_lonlat(a[0], a[1], d, 2 * math.pi * rng.random())
            if not self._window_ok(p[0], p[1], size_m):
                continue
            t = self._render(p[0], p[1], size_m)
            if self._content(t) >= self.cfg.min_content:
                return p, t
            fallback = fallback or (p, t)
        if fallback is None:  # split boundaries all around: accept any direction
            d = lo + (hi - lo) * rng.random()
            p = offset_lonlat(a[0], a[1], d, 2 * math.pi * rng.random())
            fallback = (p, self._render(p[0], p[1], size_m))
        return fallback

    def negative(self, rng: np.random.Generator, a: tuple[float, float], size_m: float, tries: int = 50):
        """A location with content at least d_neg from ``a`` and its tile."""
        for _ in range(tries):
            n, t = self.anchor(rng, size_m)
            if float(np.ravel(haversine_m(np.array(a), np.array(n)))[0]) >= self.cfg.d_neg:
                return n, t
        raise ValueError(f"no location with content is {self.cfg.d_neg} m from {a}: region too small for d_neg")

    def _augment(self, t: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.cfg.drop_land_use > 0 and rng.random() < self.cfg.drop_land_use:
            t = hide_land_use(t)
        if not self.cfg.augment:
            return t
        t = np.rot90(t, int(rng.integers(4)), axes=(1, 2))
        if rng.random() < 0.5:
            t = t[:, :, ::-1]
        return np.ascontiguousarray(t)

    def sample_pairs(self, n: int, rng: np.random.Generator, *, land_use: bool = False):
        """``n`` (anchor, positive) pairs: tiles (2, n, C, H, W) uint8, centers (2, n, 2).

        Negatives are then taken from the other pairs of the batch that are at least ``d_neg``
        away (see :func:`far_enough`): a third fewer renders than :meth:`sample`. With
        ``land_use=True`` also returns each tile's land-use cover (2, n, L) float32, measured
        *before* augmentation blanks it (:func:`land_use_cover`; L = len(LAND_USE_LAYERS)).
        """
        return self._draw(n, rng, ("anchor", "positive"), land_use)

    def sample(self, n: int, rng: np.random.Generator, *, land_use: bool = False):
        """``n`` triplets: tiles (3, n, C, H, W) uint8 and centers (3, n, 2) (lon, lat)
        (and, with ``land_use=True``, their land-use cover (3, n, L) as in :meth:`sample_pairs`)."""
        return self._draw(n, rng, ("anchor", "positive", "negative"), land_use)

    def _draw(self, n: int, rng: np.random.Generator, roles: tuple[str, ...], land_use: bool):
        tiles, centers, cover = [], [], []
        for _ in range(n):
            lo, hi = self.cfg.window_m
            size_m = lo + (hi - lo) * rng.random()
            a, ta = self.anchor(rng, size_m)
            drawn = [(a, ta)]
            if "positive" in roles:
                drawn.append(self.positive(rng, a, size_m))
            if "negative" in roles:
                drawn.append(self.negative(rng, a, size_m))
            if land_use:
                cover.append(land_use_cover(np.stack([t for _, t in drawn])))
            tiles.append([self._augment(t, rng) for _, t in drawn])
            centers.append([c for c, _ in drawn])
        out = (np.stack(tiles, 1), np.asarray(centers, np.float64).transpose(1, 0, 2))
        return (*out, np.stack(cover, 1)) if land_use else out


def far_enough(centers_a: np.ndarray, centers_b: np.ndarray, d_neg: float) -> np.ndarray:
    """Boolean (A, B): is b at least ``d_neg`` metres from a? (valid negatives for mining)."""
    from geoseek.geo import pairwise_haversine_m

    return pairwise_haversine_m(centers_a, centers_b) >= d_neg


def land_use_cover(tiles: np.ndarray) -> np.ndarray:
    """Share of pixels (0–1) covered by each land-use layer: (..., C, H, W) → (..., L) float32,
    L = len(LAND_USE_LAYERS), in that order."""
    from geoseek.sources.layers import LAND_USE_LAYERS, LAYER_INDEX

    t = np.asarray(tiles)[..., [LAYER_INDEX[n] for n in LAND_USE_LAYERS], :, :] > 0
    return t.reshape(*t.shape[:-2], -1).mean(-1).astype(np.float32)


def hide_land_use(tiles: np.ndarray) -> np.ndarray:
    """A copy of (..., C, H, W) tiles with the land-use channels (LAND_USE_LAYERS) set to 0."""
    from geoseek.sources.layers import LAND_USE_LAYERS, LAYER_INDEX

    out = np.array(tiles, copy=True)
    out[..., [LAYER_INDEX[n] for n in LAND_USE_LAYERS], :, :] = 0
    return out
