"""Tiles on the user's regions: per-region scores, leave-one-region-out, adapt-then-score.

* :func:`score_region` — :func:`~geoseek.capabilities.tiles.evaluate.evaluate_tiles` on one region,
  optionally after :func:`~geoseek.capabilities.tiles.adapt.adapt_tiles` (``adapt_seconds`` in the result);
* :func:`evaluate_regions` — several regions and their mean;
* :func:`leave_one_out` — for each region, a model trained on the others (the recipe's
  :class:`TileTrainConfig`, no held-out blocks: the held-out region is the test) scored on it.

A region too small for the protocol is reported in ``skipped`` with the reason, never dropped
silently: its ground diagonal is under twice the exclusion radius (most queries would have no
database tile beyond it), or it has fewer than 20 labelled tiles.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from geoseek.errors import InvalidInputError

KEYS = ("p_at_10", "raw_p_at_10", "macro_p_at_10", "raw_macro_p_at_10", "map", "raw_map", "p_at_1", "adapt_seconds")


def too_small(region: Path, exclude_m: float) -> str | None:
    """Why ``region`` cannot hold the protocol (None when it can): a ground diagonal under 2 × ``exclude_m``."""
    from geoseek.capabilities.tiles.adapt import region_extent_m
    from geoseek.capabilities.tiles.data import load_features

    w, h = region_extent_m(load_features(region))
    if math.hypot(w, h) < 2 * exclude_m:
        return (f"the region spans {w:.0f} × {h:.0f} m: under twice the protocol's {exclude_m:.0f} m exclusion, "
                "so most query tiles have no database tile beyond it")
    return None


def score_region(
    region: Path, model: str | Path, *, adapt_s: float = 0.0, adapt_seed: int = 0, progress: bool = False,
    work_dir: str | Path | None = None, **eval_kw: Any,
) -> dict[str, Any]:
    """:func:`evaluate_tiles` of ``model`` on ``region`` (after ``adapt_s`` seconds of adaptation if > 0)."""
    from geoseek.capabilities.common.adapt import adapted_checkpoint
    from geoseek.capabilities.tiles.evaluate import evaluate_tiles

    if adapt_s <= 0:
        return evaluate_tiles(region, model, progress=progress, **eval_kw)
    from geoseek.capabilities.tiles.adapt import adapt_tiles

    net, payload, record = adapt_tiles(region, model, adapt_s, seed=adapt_seed, progress=progress)
    import tempfile

    with adapted_checkpoint(net, payload, record, Path(work_dir or tempfile.gettempdir())) as path:
        res = evaluate_tiles(region, path, progress=progress, **eval_kw)
    res["model"] = str(model)
    res.update({"adapt_seconds": record["seconds"], "adapt_triplet_seed": record["triplet_seed"], "adaptation": record})
    return res


def _score_or_skip(region: Path, model: str | Path, exclude_m: float, **kw: Any) -> tuple[dict | None, dict | None]:
    why = too_small(region, exclude_m)
    if why:
        return None, {"region": region.name, "reason": why}
    try:
        return score_region(region, model, exclude_m=exclude_m, **kw), None
    except InvalidInputError as exc:
        return None, {"region": region.name, "reason": str(exc)}


def _slim(res: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in res.items() if not k.startswith("imagenet_") and k != "figures"}


def evaluate_regions(regions: Sequence[Path], model: str | Path, *, exclude_m: float = 1000.0, **kw: Any) -> dict[str, Any]:
    """:func:`score_region` on each region; ``skipped`` lists the regions the protocol cannot score, with why."""
    from geoseek.capabilities.common.loo import summarize

    rows, skipped = [], []
    for r in regions:
        row, skip = _score_or_skip(Path(r), model, exclude_m, **kw)
        rows += [_slim(row)] if row else []
        skipped += [skip] if skip else []
    return {"mode": "per-region", "regions": rows, "skipped": skipped, "mean": summarize(rows, KEYS)}


def leave_one_out(
    regions: Sequence[Path], cfg: Any, fit_cfg: Any, checkpoints: str | Path, *, exclude_m: float = 1000.0,
    progress: bool = False, hold_out: Sequence[str] | None = None, **kw: Any,
) -> dict[str, Any]:
    """For each region, a model trained on the others (``cfg``: TileTrainConfig, ``fit_cfg``: FitConfig) scored on it.

    A region the protocol cannot score is skipped before its fold is trained.
    """
    from geoseek.capabilities.common.loo import held_out_regions, loo_checkpoint, summarize
    from geoseek.capabilities.tiles.task import train_tiles

    regions = [Path(r) for r in regions]
    if len(regions) < 2:
        raise InvalidInputError("--leave-one-out needs at least two regions")
    if len({r.name for r in regions}) != len(regions):
        raise InvalidInputError("--leave-one-out: two regions share a file name")
    recipe = {"task": asdict(cfg), "fit": asdict(fit_cfg)}
    rows, skipped = [], []
    folds = held_out_regions(regions, hold_out)  # unknown names fail before any training
    for held in folds:
        why = too_small(held, exclude_m)
        if why:
            skipped.append({"region": held.name, "reason": why})
            continue
        others = [r for r in regions if r != held]

        def train(rs: list[Path], out: Path) -> dict[str, Any]:
            return train_tiles(rs if len(rs) > 1 else rs[0], out, cfg, fit_cfg, progress=progress)

        try:
            ckpt, reused = loo_checkpoint("tiles", held, others, recipe, checkpoints, train)
        except (InvalidInputError, ValueError) as exc:
            skipped.append({"region": held.name, "reason": f"training on the other regions failed: {exc}"})
            continue
        print(f"leave-one-out: {held.name} <- {ckpt.name} ({'reused' if reused else 'trained'})", file=sys.stderr)
        row, skip = _score_or_skip(held, ckpt, exclude_m, progress=progress, split="all", **kw)
        if skip:
            skipped.append(skip)
            continue
        rows.append({**_slim(row), "trained_on": [r.name for r in others], "checkpoint_reused": reused})
    return {"mode": "leave-one-out", "held_out": [r.name for r in folds],
            "recipe": recipe, "checkpoints": str(checkpoints), "regions": rows,
            "skipped": skipped, "mean": summarize(rows, KEYS)}
