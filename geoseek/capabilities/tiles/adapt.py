"""Self-adaptation of a tile encoder to the user's region (``--adapt 10m`` of ``build osm`` and ``eval tiles``).

Loc2Vec's objective needs no labels: near windows should embed close, far ones apart. The base
model keeps training with the base recipe's triplet settings (window sizes, distances, land-use
dropout; semi-hard in-batch negatives from the first step) on windows of the whole region,
within a wall-clock budget that also covers reading the OSM file. Two changes, both for the
region's sake:

* the masked land-use objective is off: a tile's land-use cover is what the evaluation's labels
  are made of, so predicting it on the region being scored would be training on its labels;
* ``d_neg`` is capped at half the region's ground diagonal, so a city-centre extract smaller
  than the base's 2 km still has far negatives.

Triplets are seeded from ``(ADAPT_SEED + seed, step)``; the evaluation draws no random tiles
(its tiles are the region's XYZ grid), so nothing of its queries is sampled here.
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from geoseek.capabilities.common.regions import Deadline
from geoseek.capabilities.tiles.data import TASK, load_features

ADAPT_SEED = 70_000
"""Offset of the adaptation's triplet seeds (training uses the recipe's seed, validation 10 000 + seed)."""


def region_extent_m(features: Any) -> tuple[float, float]:
    """(width, height) ground metres of the features' bounds."""
    from geoseek.sources.render import _ground_scale

    x0, y0, x1, y1 = features.bounds_m
    gs = _ground_scale((x0, y0, x1, y1))
    return (x1 - x0) / gs, (y1 - y0) / gs


def adapt_tiles(
    region: str | Path, model: str | Path, budget_s: float, *, seed: int = 0, lr: float = 5e-4, batch: int | None = None,
    progress: bool = True, deadline: Deadline | None = None,
) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """Fine-tune ``model`` (checkpoint path or "default") on ``region`` for ``budget_s`` seconds.

    Returns (adapted model in eval mode, base payload, record: budget, steps, seconds, seeds,
    base checksum, the triplet settings used).
    """
    from geoseek.capabilities.common.adapt import adapt_loop
    from geoseek.capabilities.tiles.task import TileTrainConfig, TileTripletTask
    from geoseek.checkpoint import load_model

    deadline = deadline or Deadline(budget_s)
    net, payload = load_model(model, TASK) if str(model) == "default" else load_model(model)
    if payload["model"] == "tile-ensemble":
        from geoseek.errors import InvalidInputError

        raise InvalidInputError("--adapt fine-tunes one encoder; a tile-ensemble checkpoint is not supported")
    features = load_features(region)
    base = payload.get("data", {}).get("task", {})
    known = {f.name for f in fields(TileTrainConfig)}
    cfg = TileTrainConfig(**{k: v for k, v in base.items() if k in known})
    w, h = region_extent_m(features)
    sampler = {**cfg.sampler, "split": False}
    d_neg = min(float(sampler.get("d_neg", 2000.0)), 0.5 * math.hypot(w, h))
    sampler["d_neg"] = d_neg
    cfg = replace(cfg, model=payload["model"], dim=int(payload["config"].get("dim", cfg.dim)), land_use_aux=0.0,
                  land_use_balance=0.0, val_triplets=0, val_retrieval=0, hard_after=0, sampler=sampler,
                  batch=int(batch or cfg.batch))
    task = TileTripletTask(features, cfg, seed=ADAPT_SEED + seed, start=(net, payload["config"]))
    record: dict[str, Any] = {
        "budget_s": float(budget_s), "region": Path(region).name, "base_model": payload["model"],
        "base_checkpoint": Path(payload["path"]).name, "base_checksum": payload["checksum"],
        "objective": "Loc2Vec triplet loss on near/far windows of the region (no labels; land-use head off)",
        "triplet_seed": ADAPT_SEED + seed, "batch": cfg.batch, "d_neg": d_neg,
        "window_m": list(sampler.get("window_m", (200.0, 320.0))),
    }
    loop = adapt_loop(task, deadline, lr=lr, seed=seed, progress=progress)
    record.update({**loop, "seconds": deadline.elapsed})
    return task.model, payload, record
