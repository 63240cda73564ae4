"""What the sketch-map capability reads and samples: scenes of a region, simulated sketches, cached splits.

* :func:`region_scenes` — cut a region (OSM file) into square metric windows ("scenes") and
  render each with the OSM renderer (C×H×W uint8, :mod:`geoseek.sources.layers` channels).
* :func:`simulate_pool` — simulated sketches of scenes (:mod:`geoseek.sources.sketch_simulator`),
  rasterized like the scenes; seeds are derived from (base seed, scene, copy) so training,
  validation and evaluation sketches never coincide.
* :func:`prepare_data` — scenes, their train / validation / held-out split and the simulated
  training sketches (:class:`SketchMapData`), cached as .npz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.capabilities.common import cache_key
from geoseek.sources.layers import NUM_LAYERS

DEFAULT_WINDOW_M = 480.0
DEFAULT_SIZE = 64
TRAIN_SEED = 1_000
VAL_SEED = 5_000_000
EVAL_SEED = 9_000_000
SHIFT_SEED = 3_000_000_000
"""Base seed of the sketches of shifted training windows (:func:`shifted_scenes`), apart from every other base."""


@dataclass
class SceneSet:
    """Scenes of a region: rasters (N, C, S, S) uint8 and their mercator/degree geometry."""

    rasters: np.ndarray
    bounds_m: np.ndarray
    """(N, 4) web-mercator (minx, miny, maxx, maxy)."""
    bbox: np.ndarray
    """(N, 4) (west, south, east, north) degrees."""
    window_m: float = DEFAULT_WINDOW_M
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rasters)

    @property
    def centers(self) -> np.ndarray:
        """(N, 2) (lon, lat) degrees."""
        return np.stack([(self.bbox[:, 0] + self.bbox[:, 2]) / 2, (self.bbox[:, 1] + self.bbox[:, 3]) / 2], 1)


def region_scenes(
    osm: Any,
    *,
    window_m: float = DEFAULT_WINDOW_M,
    size: int = DEFAULT_SIZE,
    min_cover: float = 0.08,
    min_layers: int = 2,
    progress: bool = True,
) -> SceneSet:
    """Tile the region of ``osm`` (:class:`geoseek.sources.osm.OsmFeatures`) into scenes.

    Windows are ``window_m`` ground metres square on a grid aligned with the data's bounds (in
    mercator, ``window_m`` × 1/cos φ of the region's centre). A window is a scene when at least
    ``min_cover`` of its pixels hold something and ``min_layers`` layers cover ≥ 0.5 % each (so
    open sea and empty fields are skipped: no one sketches them).
    """
    from tqdm.auto import tqdm

    grid = scene_grid(osm, window_m)
    rasters, bounds = [], []
    for cell in tqdm(grid["cells"], desc="scenes", disable=not progress):
        got_r, got_b = render_scene_cells(osm, grid, [cell], size, min_cover=min_cover, min_layers=min_layers)
        rasters += got_r
        bounds += got_b
    return scene_set(osm, rasters, bounds, window_m, size, grid["ground_scale"])


def scene_grid(osm: Any, window_m: float = DEFAULT_WINDOW_M) -> dict[str, Any]:
    """The candidate windows of :func:`region_scenes`: ``{origin, step, ground_scale, cells}``
    (mercator origin (x0, y0), step in mercator m, cells [[ix, iy], ...] holding a vertex)."""
    from geoseek.sources.render import _ground_scale

    x0, y0, x1, y1 = osm.bounds_m
    gs = _ground_scale((x0, y0, x1, y1))
    step = window_m * gs
    nx, ny = max(1, int((x1 - x0) // step)), max(1, int((y1 - y0) // step))
    # occupancy of grid cells by any vertex: windows without one are skipped before rendering
    occ = np.zeros((nx, ny), bool)
    for g in osm.layers.values():
        if len(g.coords):
            ix = ((g.coords[:, 0] - x0) // step).astype(int)
            iy = ((g.coords[:, 1] - y0) // step).astype(int)
            ok = (ix >= 0) & (ix < nx) & (iy >= 0) & (iy < ny)
            occ[ix[ok], iy[ok]] = True
    return {"origin": (float(x0), float(y0)), "step": float(step), "ground_scale": gs,
            "cells": np.argwhere(occ).tolist()}


def render_scene_cells(
    osm: Any, grid: dict[str, Any], cells: list, size: int = DEFAULT_SIZE, *, min_cover: float = 0.08,
    min_layers: int = 2,
) -> tuple[list[np.ndarray], list[tuple[float, float, float, float]]]:
    """Render the windows ``cells`` of ``grid`` (:func:`scene_grid`); keep those that are scenes.

    Returns (rasters (C, S, S) uint8, mercator bounds) of the kept windows, in ``cells`` order."""
    from geoseek.sources.render import render_bounds

    (x0, y0), step, gs = grid["origin"], grid["step"], grid["ground_scale"]
    rasters, bounds = [], []
    for ix, iy in cells:
        b = (x0 + ix * step, y0 + iy * step, x0 + (ix + 1) * step, y0 + (iy + 1) * step)
        r = render_bounds(osm, b, size, ground_scale=gs)
        on = r > 0
        if on.any(0).mean() >= min_cover and int((on.mean(axis=(1, 2)) >= 0.005).sum()) >= min_layers:
            rasters.append(r)
            bounds.append(b)
    return rasters, bounds


def scene_set(osm: Any, rasters: list[np.ndarray], bounds: list, window_m: float, size: int, gs: float) -> SceneSet:
    """The :class:`SceneSet` of rendered windows (InvalidInputError when there is none)."""
    from geoseek.sources.osm import mercator_to_lonlat

    if not rasters:
        from geoseek.errors import InvalidInputError

        raise InvalidInputError(f"{osm.source}: no window of {window_m:g} m holds enough mapped objects to be a scene")
    bm = np.asarray(bounds, dtype=np.float64)
    sw = mercator_to_lonlat(bm[:, :2])
    ne = mercator_to_lonlat(bm[:, 2:])
    bbox = np.concatenate([sw, ne], 1)
    return SceneSet(np.stack(rasters), bm, bbox, window_m, osm.source, {"ground_scale": gs, "size": size})


def shifted_scenes(
    osm: Any, window_m: float, size: int, shifts: int, avoid_m: np.ndarray, *, min_cover: float = 0.08,
    min_layers: int = 2, progress: bool = True,
) -> tuple[list[np.ndarray], list[tuple[float, float, float, float]]]:
    """Training-only windows from the scene grid shifted by (i/shifts, j/shifts) of a window, (i, j) ≠ (0, 0).

    A region's grid gives one scene per ``window_m`` square; the shifted grids give up to
    ``shifts² - 1`` times as many more (new framings of the same places: more scenes to learn
    from on a small region). A shifted window that overlaps any of ``avoid_m`` ((K, 4) mercator
    bounds: the validation and held-out scenes) is dropped, so nothing held out is trained on.
    Returns (rasters (C, S, S) uint8, mercator bounds) like :func:`render_scene_cells`.
    """
    from tqdm.auto import tqdm

    grid = scene_grid(osm, window_m)
    (x0, y0), step = grid["origin"], grid["step"]
    avoid = np.asarray(avoid_m, np.float64).reshape(-1, 4)
    eps = 1e-6 * step
    jobs = [(i, j, c) for i in range(shifts) for j in range(shifts) if (i, j) != (0, 0) for c in grid["cells"]]
    rasters, bounds = [], []
    for i, j, (ix, iy) in tqdm(jobs, desc="shifted scenes", disable=not progress):
        bx, by = x0 + (ix + i / shifts) * step, y0 + (iy + j / shifts) * step
        hit = ((avoid[:, 0] < bx + step - eps) & (avoid[:, 2] > bx + eps)
               & (avoid[:, 1] < by + step - eps) & (avoid[:, 3] > by + eps))
        if hit.any():
            continue
        sub = {**grid, "origin": (x0 + i / shifts * step, y0 + j / shifts * step)}
        got_r, got_b = render_scene_cells(osm, sub, [(ix, iy)], size, min_cover=min_cover, min_layers=min_layers)
        rasters += got_r
        bounds += got_b
    return rasters, bounds


def split_scenes(n: int, holdout: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (train, held-out) scene indices."""
    perm = np.random.default_rng(seed).permutation(n)
    k = int(round(n * holdout))
    return np.sort(perm[k:]), np.sort(perm[:k])


def sketch_seed(base: int, scene: int, copy: int) -> int:
    """Seed of copy ``copy`` of scene ``scene``'s sketch (train and eval bases never overlap)."""
    return int(base) + int(scene) * 1_000 + int(copy)


def simulate_pool(
    osm: Any,
    scenes: SceneSet,
    indices: np.ndarray,
    copies: int,
    *,
    strength: float | tuple[float, float] = (0.3, 1.5),
    base_seed: int = TRAIN_SEED,
    progress: bool = True,
) -> np.ndarray:
    """Simulated sketch rasters (len(indices), copies, C, S, S) uint8 of the given scenes.

    ``strength`` is fixed, or a (low, high) range drawn uniformly per sketch (from its seed).
    """
    from tqdm.auto import tqdm

    from geoseek.sources.sketch_simulator import scene_features, simulate_sketch
    from geoseek.sources.sketchmap import draw_local_features

    size = scenes.rasters.shape[-1]
    gs = scenes.extra.get("ground_scale")
    out = np.zeros((len(indices), copies, NUM_LAYERS, size, size), np.uint8)
    for i, s in enumerate(tqdm(np.asarray(indices).tolist(), desc="sketches", disable=not progress)):
        feats = scene_features(osm, tuple(scenes.bounds_m[s]), gs)
        for c in range(copies):
            rng = np.random.default_rng(sketch_seed(base_seed, s, c))
            st = float(rng.uniform(*strength)) if isinstance(strength, tuple) else float(strength)
            sk = simulate_sketch(feats, scenes.window_m, strength=st, seed=rng)
            out[i, c] = draw_local_features(sk, scenes.window_m, size)
    return out


@dataclass
class SketchMapData:
    """Scenes of a region with their train / validation / held-out split and simulated sketches."""

    scenes: SceneSet
    train_idx: np.ndarray
    val_idx: np.ndarray
    test_idx: np.ndarray
    pool: np.ndarray
    """(len(train_idx), copies, C, S, S) training sketches (seeds from TRAIN_SEED)."""
    val_queries: np.ndarray
    """(len(val_idx), C, S, S) validation sketches at strength 1 (seeds from VAL_SEED)."""
    settings: dict[str, Any] = field(default_factory=dict)
    extra_rasters: np.ndarray | None = None
    """(K, C, S, S) training-only scenes of shifted windows (:func:`shifted_scenes`): never in the
    database, validation or held-out set; their sketches are ``pool[len(train_idx):]``."""

    @property
    def train_rasters(self) -> np.ndarray:
        """(len(pool), C, S, S) the training scenes, row i sketched by ``pool[i]``."""
        base = self.scenes.rasters[self.train_idx]
        if self.extra_rasters is None or not len(self.extra_rasters):
            return base
        return np.concatenate([base, self.extra_rasters])


def prepare_data(
    pbf: str | Path,
    *,
    window_m: float = DEFAULT_WINDOW_M,
    size: int = DEFAULT_SIZE,
    copies: int = 6,
    holdout: float = 0.2,
    val: float = 0.08,
    split_seed: int = 0,
    strength: tuple[float, float] = (0.3, 1.5),
    cache_dir: str | Path | None = None,
    progress: bool = True,
    osm: Any = None,
    shifts: int = 1,
) -> SketchMapData:
    """Read ``pbf``, cut scenes, split them and simulate the training sketches (cached as .npz).

    ``shifts`` > 1 adds the training windows of :func:`shifted_scenes` (and their sketches) as
    ``extra_rasters``; the scenes, the split and the validation sketches are the same as with 1.
    """
    from dataclasses import asdict

    from geoseek.sources.osm import read_osm
    from geoseek.sources.sketch_simulator import SimulatorConfig

    pbf = Path(pbf)
    settings = {
        "source": pbf.name, "window_m": window_m, "size": size, "copies": copies, "holdout": holdout, "val": val,
        "split_seed": split_seed, "strength": list(strength), "train_seed": TRAIN_SEED, "val_seed": VAL_SEED, "version": 2,
        "simulator": asdict(SimulatorConfig()),
    }
    if shifts > 1:  # only then, so that earlier caches and checkpoints keep their keys
        settings["shifts"] = int(shifts)
    key = cache_key(settings, length=12)
    cache = Path(cache_dir) / f"sketchmap-{pbf.name.split('.')[0]}-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        z = np.load(cache)
        scenes = SceneSet(z["rasters"], z["bounds_m"], z["bbox"], window_m, str(pbf), {"ground_scale": float(z["ground_scale"]), "size": size})
        extra = z["extra_rasters"] if "extra_rasters" in z.files else None
        return SketchMapData(scenes, z["train_idx"], z["val_idx"], z["test_idx"], z["pool"], z["val_queries"], settings,
                             extra)
    osm = osm if osm is not None else read_osm(pbf)
    scenes = region_scenes(osm, window_m=window_m, size=size, progress=progress)
    rest, test_idx = split_scenes(len(scenes), holdout, split_seed)
    rng = np.random.default_rng(split_seed + 1)
    nval = int(round(len(scenes) * val))
    perm = rng.permutation(rest)
    val_idx, train_idx = np.sort(perm[:nval]), np.sort(perm[nval:])
    pool = simulate_pool(osm, scenes, train_idx, copies, strength=strength, base_seed=TRAIN_SEED, progress=progress)
    val_queries = simulate_pool(osm, scenes, val_idx, 1, strength=1.0, base_seed=VAL_SEED, progress=progress)[:, 0]
    extra = None
    if shifts > 1:
        held = scenes.bounds_m[np.concatenate([val_idx, test_idx])]
        ex_r, ex_b = shifted_scenes(osm, window_m, size, shifts, held, progress=progress)
        extra = np.zeros((0, *scenes.rasters.shape[1:]), np.uint8)
        if ex_r:
            ex = scene_set(osm, ex_r, ex_b, window_m, size, scenes.extra["ground_scale"])
            ex_pool = simulate_pool(osm, ex, np.arange(len(ex)), copies, strength=strength, base_seed=SHIFT_SEED,
                                    progress=progress)
            extra, pool = ex.rasters, np.concatenate([pool, ex_pool])
    data = SketchMapData(scenes, train_idx, val_idx, test_idx, pool, val_queries, settings, extra)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.tmp")
        with open(tmp, "wb") as fh:
            np.savez_compressed(
            fh, rasters=scenes.rasters, bounds_m=scenes.bounds_m, bbox=scenes.bbox, ground_scale=scenes.extra["ground_scale"],
            train_idx=train_idx, val_idx=val_idx, test_idx=test_idx, pool=pool, val_queries=val_queries,
            **({"extra_rasters": extra} if extra is not None else {}),
            )
        tmp.replace(cache)
    return data
