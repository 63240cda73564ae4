"""Self-adaptation of a sketch-map encoder to the user's region (``--adapt 10m`` of build and eval).

DeepSSN's objective needs no labels: the scenes of the region are cut, sketches of them are
simulated, and the encoder keeps training with the same triplet loss (neighbour mining, then
semi-hard) within a wall-clock budget that also covers reading the OSM file, cutting the scenes
and simulating the sketches (simulated lazily, as batches first need them).

Adaptation sketches are seeded from :data:`ADAPT_SEED` (``sketch_seed(ADAPT_SEED, scene, copy)``),
a range no training, validation or evaluation query seed reaches (evaluation queries start at
``EVAL_SEED + round(strength · 1000) · 10⁶`` ≤ 3.01·10⁹ for strengths ≤ 3), so adaptation never
sees an evaluation's query sketches. It does see every scene of the region: those are the
user's database, the very rasters the search ranks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from geoseek.capabilities.common.regions import Deadline
from geoseek.capabilities.sketchmap.data import SceneSet, SketchMapData, region_scenes, sketch_seed
from geoseek.sources.layers import NUM_LAYERS

ADAPT_SEED = 7_000_000_000
"""Base seed of adaptation sketches (disjoint from TRAIN_SEED, VAL_SEED and every EVAL seed range)."""
ADAPT_STRENGTH = (0.3, 1.5)
"""Distortion strengths of adaptation sketches (uniform per sketch), as in training."""


class LazySketchPool:
    """A (N, copies, C, S, S) uint8 "array" of simulated sketches, simulated on first access ``pool[i, c]``
    (raising :class:`~geoseek.capabilities.common.regions.DeadlineReached` instead once ``deadline`` has passed)."""

    def __init__(self, osm: Any, scenes: SceneSet, copies: int = 6, base_seed: int = ADAPT_SEED,
                 strength: tuple[float, float] = ADAPT_STRENGTH, deadline: Deadline | None = None) -> None:
        s = scenes.rasters.shape[-1]
        self.shape = (len(scenes), copies, NUM_LAYERS, s, s)
        self.osm, self.scenes, self.base_seed, self.strength = osm, scenes, base_seed, strength
        self._sketches: dict[tuple[int, int], np.ndarray] = {}
        self._features: dict[int, Any] = {}
        self.deadline = deadline

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def simulated(self) -> int:
        """How many sketches have been simulated so far."""
        return len(self._sketches)

    def __getitem__(self, key: tuple[int, int]) -> np.ndarray:
        from geoseek.sources.sketch_simulator import scene_features, simulate_sketch
        from geoseek.sources.sketchmap import draw_local_features

        i, c = int(key[0]), int(key[1])
        if (i, c) not in self._sketches:
            if self.deadline is not None:
                self.deadline.check()  # one sketch costs up to ~0.5 s on a dense scene: stop between them
            if i not in self._features:
                self._features[i] = scene_features(self.osm, tuple(self.scenes.bounds_m[i]),
                                                   self.scenes.extra.get("ground_scale"))
            rng = np.random.default_rng(sketch_seed(self.base_seed, i, c))
            st = float(rng.uniform(*self.strength))
            sk = simulate_sketch(self._features[i], self.scenes.window_m, strength=st, seed=rng)
            self._sketches[(i, c)] = draw_local_features(sk, self.scenes.window_m, self.shape[-1])
        return self._sketches[(i, c)]


def adapt_sketchmap(
    region: str | Path, model: str | Path, budget_s: float, *, seed: int = 0, lr: float = 5e-4, batch_scenes: int = 24,
    progress: bool = True, osm: Any = None, scenes: SceneSet | None = None, deadline: Deadline | None = None,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Fine-tune ``model`` (checkpoint path or "default") on ``region`` for ``budget_s`` seconds.

    Returns (adapted model in eval mode, the base checkpoint's payload, the record of what was
    done: budget, steps, seconds, seeds, base checksum). ``osm`` / ``scenes`` (of the model's
    window and size) may be passed when already read; the budget counts from ``deadline``
    (default: now).
    """
    from geoseek.capabilities.common.adapt import adapt_loop
    from geoseek.capabilities.sketchmap.task import SketchMapTask
    from geoseek.checkpoint import load_model
    from geoseek.losses.mining_schedule import MiningSchedule
    from geoseek.sources.osm import read_osm

    deadline = deadline or Deadline(budget_s)
    net, payload = load_model(model, "sketchmap") if str(model) == "default" else load_model(model)
    s = payload.get("data", {})
    window_m, size = float(s.get("window_m", 480.0)), int(s.get("size", 64))
    osm = osm if osm is not None else read_osm(region)
    if scenes is None:
        scenes = region_scenes(osm, window_m=window_m, size=size, progress=progress)
    n = len(scenes)
    pool = LazySketchPool(osm, scenes, deadline=deadline)
    empty = np.zeros((0,), np.int64)
    data = SketchMapData(scenes, np.arange(n), empty, empty, pool,  # type: ignore[arg-type]
                         np.zeros((0, NUM_LAYERS, size, size), np.uint8), {"source": Path(region).name})
    margin = float(s.get("recipe", {}).get("margin", 0.2))
    schedule = MiningSchedule(random_until=0, neighbours_until=30, refresh_every=50, margin=margin)
    record: dict[str, Any] = {
        "budget_s": float(budget_s), "region": Path(region).name, "n_scenes": n, "base_model": payload["model"],
        "base_checkpoint": Path(payload["path"]).name, "base_checksum": payload["checksum"],
        "objective": "DeepSSN triplet loss on simulated sketches of the region's scenes (no labels)",
        "sketch_seed_base": ADAPT_SEED, "sketch_strength": list(ADAPT_STRENGTH),
    }
    if n < 2:
        record.update({"steps": 0, "seconds": deadline.elapsed, "note": "fewer than 2 scenes: nothing to adapt on"})
        return net, payload, record
    task = SketchMapTask(data, payload["model"], payload["config"], schedule=schedule,
                         batch_scenes=min(batch_scenes, n), seed=seed)
    task.model.load_state_dict(net.state_dict())
    loop = adapt_loop(task, deadline, lr=lr, seed=seed, progress=progress)
    record.update({**loop, "seconds": deadline.elapsed, "sketches_simulated": pool.simulated})
    return task.model, payload, record
