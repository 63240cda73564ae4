"""What the tiles capability reads and samples: OSM features, triplet samplers, labelled XYZ tiles.

* :func:`load_features` — an OSM file's features, memoized by resolved path and mtime;
* :func:`render_tile` — the model input of XYZ tile (z, x, y): a window of ``ground_m`` ground
  metres centred on the tile (:data:`TILE_GROUND_M`), or the XYZ tile itself (``ground_m`` None);
* :func:`make_sampler` — a Loc2Vec :class:`~geoseek.sources.tile_sampler.TileTripletSampler`
  from a plain dict of overrides;
* :func:`training_block_tiles` — labelled tiles of the training blocks (training's retrieval validation);
* :func:`region_tiles` — every non-empty labelled tile of a region (the evaluation's tiles);
* :func:`embed_tiles` — (N, C, H, W) uint8 tiles → (N, D) embeddings with a tile encoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseek.sources.layers import LABEL_MIN_FRACTION

if TYPE_CHECKING:
    from torch import nn

    from geoseek.sources.osm import OsmFeatures

MODALITY = "osm-tiles"
"""The modality of the collections this capability builds."""
TASK = "tiles"
"""The task name of its checkpoints (``load_model(..., TASK)`` for "default")."""
DEFAULT_ZOOM = 17
TILE_PX = 128
TILE_GROUND_M = 250.0
"""Ground metres across a tile's model input (:func:`render_tile`): the middle of the training
windows (``TripletConfig.window_m``, 200–320 m), ≈ a z17 tile at Malta's latitude (36° N). A z17
XYZ tile is 306 m × cos(lat) wide (153 m at Helsinki, 60° N), so rendering the XYZ tile itself
would feed high-latitude tiles at a scale the model never saw in training."""


def as_ground_m(ground_m: float | None) -> float | None:
    """``ground_m`` as a positive float, or None for the XYZ render (None or 0)."""
    import math

    from geoseek.errors import InvalidInputError

    if ground_m is None or float(ground_m) == 0.0:
        return None
    g = float(ground_m)
    if not (math.isfinite(g) and g > 0):
        raise InvalidInputError(f"tile ground metres must be > 0 (0: the XYZ tile itself), got {ground_m}")
    return g


def tile_center_lonlat(zoom: int, x: int, y: int) -> tuple[float, float]:
    """(lon, lat) degrees WGS84 of the centre of XYZ tile (zoom, x, y) (the centre of its web-mercator square)."""
    import math

    from geoseek.geo import tile_bounds

    b = tile_bounds(int(x), int(y), int(zoom))  # validates the tile
    n = 2**zoom
    lat = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * (y + 0.5) / n))))
    return (b.west + b.east) / 2, lat


def tile_input_bounds_m(zoom: int, x: int, y: int, ground_m: float | None = None) -> tuple[float, float, float, float]:
    """Web-mercator bounds (minx, miny, maxx, maxy) of what :func:`render_tile` draws for tile (zoom, x, y)."""
    from geoseek.sources.render import window_bounds_m, xyz_bounds_m

    g = as_ground_m(ground_m)
    if g is None:
        return xyz_bounds_m(zoom, x, y)
    lon, lat = tile_center_lonlat(zoom, x, y)
    return window_bounds_m(lon, lat, g)


def render_tile(
    features: OsmFeatures, zoom: int, x: int, y: int, size: int = TILE_PX, ground_m: float | None = None,
) -> np.ndarray:
    """The model input of XYZ tile (zoom, x, y): (C, size, size) uint8.

    ``ground_m`` None or 0: the XYZ tile itself (:func:`~geoseek.sources.render.render_xyz`;
    306 m × cos(lat) wide at z17). Otherwise a square of ``ground_m`` ground metres centred on the
    tile's centre (:func:`~geoseek.sources.render.render_window`), the same ground scale at every
    latitude, as in training. Every tile the capability embeds (builds, query tiles, the
    evaluation's and training validation's tiles) is drawn here; the item's footprint stays the
    XYZ tile.
    """
    from geoseek.sources.render import render_window, render_xyz

    g = as_ground_m(ground_m)
    if g is None:
        return render_xyz(features, int(zoom), int(x), int(y), size)
    lon, lat = tile_center_lonlat(zoom, x, y)
    return render_window(features, lon, lat, g, size)


def tile_ground_width_m(zoom: int, x: int, y: int, ground_m: float | None = None) -> float:
    """Ground metres across :func:`render_tile`'s input: ``ground_m``, or the XYZ tile's width at its centre latitude."""
    import math

    g = as_ground_m(ground_m)
    if g is not None:
        return g
    from geoseek.sources.render import HALF_WORLD

    _, lat = tile_center_lonlat(zoom, x, y)
    return 2 * HALF_WORLD / 2**zoom * math.cos(math.radians(lat))


_FEATURE_CACHE: dict[tuple[str, float], OsmFeatures] = {}


def load_features(path: str | Path) -> OsmFeatures:
    """Read (and memoize by path and mtime) an OSM file's features."""
    from geoseek.sources.osm import read_osm

    p = Path(path)
    key = (str(p.resolve()), p.stat().st_mtime if p.exists() else 0.0)
    if key not in _FEATURE_CACHE:
        _FEATURE_CACHE.clear()
        _FEATURE_CACHE[key] = read_osm(p)
    return _FEATURE_CACHE[key]


def embed_tiles(model: nn.Module, tiles: np.ndarray, batch: int = 128) -> np.ndarray:
    """(N, C, H, W) uint8 tiles → (N, D) float32 embeddings (model in eval mode, no grad)."""
    import torch

    from geoseek.runtime.threads import parallel_chunks

    model.eval()

    @torch.no_grad()
    def part(a: int, b: int) -> list[np.ndarray]:
        return [model(torch.from_numpy(np.ascontiguousarray(tiles[i : min(b, i + batch)]))).float().numpy()
                for i in range(a, b, batch)]

    # a few large chunks, one intra-op thread each: no barrier stalls when the cores are shared
    out = [o for chunk in parallel_chunks(part, len(tiles), min_chunk=16) for o in chunk]
    if not out:
        return np.zeros((0, getattr(model, "dim", 0)), np.float32)
    return np.concatenate(out).astype(np.float32)


def make_sampler(features: OsmFeatures, sampler: dict[str, Any] | None = None):
    """A :class:`TileTripletSampler` from a plain dict of overrides."""
    from geoseek.sources.tile_sampler import SpatialSplit, TileTripletSampler, TripletConfig

    s = dict(sampler or {})
    split = None
    if s.pop("split", True):
        split = SpatialSplit(block_m=float(s.pop("split_block_m", 2000.0)), holdout=float(s.pop("split_holdout", 0.25)))
    else:
        s.pop("split_block_m", None)
        s.pop("split_holdout", None)
    for key in ("d_pos", "window_m"):
        if key in s:
            s[key] = tuple(float(v) for v in s[key])
    return TileTripletSampler(features, TripletConfig(split=split, **s))


def training_block_tiles(
    features: OsmFeatures, split: Any, n: int, seed: int = 0, zoom: int = DEFAULT_ZOOM, min_content: float = 0.01,
    ground_m: float | None = TILE_GROUND_M,
) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Up to ``n`` labelled z``zoom`` tiles whose input lies wholly in training blocks, land use hidden.

    Returns (tiles (n, C, H, W) uint8, labels, centers (n, 2) (lon, lat) degrees): the validation
    set of ``TileTrainConfig.val_retrieval``, drawn like the evaluation's test tiles (rendered by
    :func:`render_tile` with ``ground_m``) but from the training side of the spatial split (the
    whole region when ``split`` is None).
    """
    from geoseek.sources.osm import mercator_to_lonlat
    from geoseek.sources.render import dominant_land_use_batch, nonempty_tiles, xyz_bounds_m
    from geoseek.sources.tile_sampler import hide_land_use

    xy = np.asarray(nonempty_tiles(features, zoom), np.int64).reshape(-1, 2)
    bounds = np.array([xyz_bounds_m(zoom, int(x), int(y)) for x, y in xy]).reshape(-1, 4)
    if split is not None:
        # what the model sees must stay out of the held-out blocks: the rendered window, not the XYZ tile
        seen = np.array([tile_input_bounds_m(zoom, int(x), int(y), ground_m) for x, y in xy]).reshape(-1, 4)
        keep = split.split_of_bounds(seen) == "train"
        xy, bounds = xy[keep], bounds[keep]
    order = np.random.default_rng(20_000 + seed).permutation(len(xy))[: 3 * n]
    xy, bounds = xy[order], bounds[order]
    tiles = np.stack([render_tile(features, zoom, int(x), int(y), TILE_PX, ground_m) for x, y in xy]) if len(xy) else \
        np.zeros((0, len(features.layers), TILE_PX, TILE_PX), np.uint8)
    labels = dominant_land_use_batch(tiles)
    hidden = hide_land_use(tiles)
    seen = hidden.any(1).reshape(len(hidden), -1).mean(1) >= min_content
    keep = np.array([l is not None for l in labels], bool) & seen
    idx = np.flatnonzero(keep)[:n]
    centers = mercator_to_lonlat(np.stack([(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2], 1))
    return hidden[idx], [labels[i] for i in idx], centers[idx]


@dataclass
class EvalTiles:
    """Rendered, labelled tiles of a region (one row each; rows are XYZ tiles, inputs :func:`render_tile`'s)."""

    xyz: np.ndarray  # (N, 3) z, x, y
    tiles: np.ndarray  # (N, C, H, W) uint8
    labels: list[str | None]
    centers: np.ndarray  # (N, 2) lon, lat degrees


def region_tiles(
    features: OsmFeatures, zoom: int = DEFAULT_ZOOM, size: int = TILE_PX, split: str = "all", split_cfg: Any = None,
    progress: bool = False, min_fraction: float = LABEL_MIN_FRACTION, ground_m: float | None = TILE_GROUND_M,
) -> EvalTiles:
    """Every non-empty XYZ tile of the region (optionally only those whose input lies in one spatial ``split``).

    Each tile is rendered by :func:`render_tile` with ``ground_m`` (None or 0: the XYZ tile
    itself); its land-use label is read from that rendered input.
    """
    from tqdm.auto import tqdm

    from geoseek.sources.render import dominant_land_use_batch, nonempty_tiles, xyz_bounds_m
    from geoseek.sources.osm import mercator_to_lonlat
    from geoseek.sources.tile_sampler import SpatialSplit

    xy = np.asarray(nonempty_tiles(features, zoom), np.int64).reshape(-1, 2)
    bounds = np.array([xyz_bounds_m(zoom, int(x), int(y)) for x, y in xy]).reshape(-1, 4)
    if split != "all":
        seen = np.array([tile_input_bounds_m(zoom, int(x), int(y), ground_m) for x, y in xy]).reshape(-1, 4)
        s = (split_cfg or SpatialSplit()).split_of_bounds(seen)
        keep = s == split
        xy, bounds = xy[keep], bounds[keep]
    tiles = np.zeros((len(xy), len(features.layers), size, size), np.uint8)
    for i, (x, y) in enumerate(tqdm(xy, desc="render", disable=not progress, unit="tile")):
        tiles[i] = render_tile(features, zoom, int(x), int(y), size, ground_m)
    keep = tiles.reshape(len(xy), -1).any(1)
    xy, bounds, tiles = xy[keep], bounds[keep], tiles[keep]
    centers = mercator_to_lonlat(np.stack([(bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2], 1))
    xyz = np.concatenate([np.full((len(xy), 1), zoom), xy], 1)
    return EvalTiles(xyz, tiles, dominant_land_use_batch(tiles, min_fraction), centers)
