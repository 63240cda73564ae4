"""Sketch maps on the user's regions: per-region scores, leave-one-region-out, adapt-then-score.

* :func:`score_region` — DeepSSN's protocol on one region for one model (raw-pixel kNN beside
  it), optionally after :func:`~geoseek.capabilities.sketchmap.adapt.adapt_sketchmap`. A region
  the model trained on is queried on its held-out scenes (today's split); a region it never saw
  is queried on every scene (up to ``queries``, in a fixed random order);
* :func:`evaluate_regions` — :func:`score_region` on several regions, with their mean;
* :func:`leave_one_out` — for each region, a model trained on the others (``SketchRecipe``,
  checkpoints cached) scored on it.

Query sketches are seeded from ``EVAL_SEED + round(strength · 1000) · 10⁶`` (see
:func:`~geoseek.capabilities.sketchmap.evaluate.eval_queries`), adaptation sketches from
:data:`~geoseek.capabilities.sketchmap.adapt.ADAPT_SEED`: both bases are in every JSON.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.capabilities.sketchmap.data import EVAL_SEED, SketchMapData, prepare_data, region_scenes
from geoseek.errors import InvalidInputError

METRICS = ("mrr", "acc_at_1", "acc_at_3", "acc_at_5", "acc_at_10", "median_rank")
SUMMARY_KEYS = (*METRICS, *(f"search_{k}" for k in METRICS), *(f"raw_{k}" for k in METRICS),
                *(f"default_{k}" for k in METRICS), "adapt_seconds")
"""The per-region figures averaged into ``mean`` (where every scored region has them)."""


def trained_on(payload: dict[str, Any]) -> set[str]:
    """File names of the regions a checkpoint trained on, including those of the model it started from."""
    d = payload.get("data", {})
    own = set(d.get("sources") or ([d["source"]] if d.get("source") else []))
    return own | set((d.get("init") or {}).get("sources") or [])


def query_seed(strength: float) -> int:
    """Base seed of the evaluation's query sketches at ``strength``."""
    return EVAL_SEED + int(round(float(strength) * 1000)) * 1_000_000


def _all_scene_data(osm: Any, region: Path, s: dict[str, Any], progress: bool) -> SketchMapData:
    """Every scene of ``region`` as the query pool (no training split: the model never saw the region)."""
    window_m, size = float(s.get("window_m", 480.0)), int(s.get("size", 64))
    scenes = region_scenes(osm, window_m=window_m, size=size, progress=progress)
    empty = np.zeros((0,), np.int64)
    settings = {"source": region.name, "window_m": window_m, "size": size, "queries_from": "all scenes",
                "simulator": s.get("simulator"), "version": 2}
    return SketchMapData(scenes, empty, empty, np.arange(len(scenes)), np.zeros((0,), np.uint8),
                         np.zeros((0,), np.uint8), settings)


def score_region(
    region: Path, model: str | Path, *, queries: int | None = 200, strength: float = 1.0, cache: str | Path | None = None,
    adapt_s: float = 0.0, adapt_seed: int = 0, progress: bool = False, with_default: bool = False,
) -> dict[str, Any]:
    """DeepSSN's protocol on ``region`` for ``model`` (after ``adapt_s`` seconds of adaptation if > 0).

    Returns ``{"region", "n_scenes", "n_queries", "queries_from", mrr, acc_at_k..., raw_mrr, raw_...,
    "query_seed", [adapt_seconds, adapt_sketch_seed, adaptation], [default_mrr, ...]}``.
    """
    from geoseek.capabilities.sketchmap.evaluate import eval_queries, evaluate_retrieval
    from geoseek.checkpoint import load_model
    from geoseek.sources.osm import read_osm

    region = Path(region)
    net, payload = load_model(model, "sketchmap") if str(model) == "default" else load_model(model)
    s = payload.get("data", {})
    osm = read_osm(region)
    seen = region.name in trained_on(payload)
    if seen:
        data = prepare_data(region, window_m=s.get("window_m", 480.0), size=s.get("size", 64), copies=s.get("copies", 6),
                            holdout=s.get("holdout", 0.2), val=s.get("val", 0.08), split_seed=s.get("split_seed", 0),
                            strength=tuple(s.get("strength", (0.3, 1.5))), cache_dir=cache, progress=progress, osm=osm)
    else:
        data = _all_scene_data(osm, region, s, progress)
    if len(data.test_idx) == 0:
        raise InvalidInputError(f"{region.name}: no scene to query ({len(data.scenes)} scenes)")
    out: dict[str, Any] = {"region": region.name, "checkpoint": str(payload["path"]), "model": payload["model"]}
    if adapt_s > 0:
        from geoseek.capabilities.sketchmap.adapt import ADAPT_SEED, adapt_sketchmap

        net, _, record = adapt_sketchmap(region, model, adapt_s, seed=adapt_seed, progress=progress, osm=osm,
                                         scenes=data.scenes)
        out.update({"adapt_seconds": record["seconds"], "adapt_sketch_seed": ADAPT_SEED, "adaptation": record})
    qs = eval_queries(osm, data, (float(strength),), queries or None, progress=progress, cache_dir=cache)
    models = {"model": net}
    if with_default:
        models["default"] = load_model("default", "sketchmap")[0]
    # the search reranks the model's top 100 by raw pixels with the checkpoint's validated weight
    # (build sketchmap copies it into the collection): search_* is what a collection would answer
    # (the model alone where the weight is 0)
    weight = float(payload.get("extra", {}).get("fusion_weight", 0.0))
    res = evaluate_retrieval(models, data, qs, {"model": weight} if weight > 0 else None)
    row = next(iter(res["by_strength"].values()))
    out.update({"strength": float(strength), "n_scenes": res["n_scenes"], "n_queries": res["n_queries"],
                "queries_from": "held-out scenes" if seen else "all scenes", "query_seed": query_seed(strength)})
    out.update(row["model"])
    out.update({f"raw_{k}": v for k, v in row["raw"].items()})
    out["fusion_weight"] = weight
    out.update({f"search_{k}": v for k, v in row["model+raw" if weight > 0 else "model"].items()})
    if with_default:
        out.update({f"default_{k}": v for k, v in row["default"].items()})
    return out


def evaluate_regions(regions: Sequence[Path], model: str | Path, **kw: Any) -> dict[str, Any]:
    """:func:`score_region` on each region; ``skipped`` lists those that cannot be scored, with why."""
    from geoseek.capabilities.common.loo import summarize

    rows, skipped = [], []
    for r in regions:
        try:
            rows.append(score_region(Path(r), model, **kw))
        except InvalidInputError as exc:
            skipped.append({"region": Path(r).name, "reason": str(exc)})
    return {"mode": "per-region", "regions": rows, "skipped": skipped, "mean": summarize(rows, SUMMARY_KEYS)}


def _init_regions(recipe: Any) -> set[str]:
    """Regions the recipe's starting checkpoint (``--init``) trained on; empty without one."""
    if not getattr(recipe, "init", None):
        return set()
    from geoseek.checkpoint import load_model

    payload = load_model(recipe.init, "sketchmap")[1] if recipe.init == "default" else load_model(recipe.init)[1]
    return trained_on(payload)


def _ensure_fusion_weight(ckpt: Path, train_regions: list[Path], recipe: Any, cache: str | Path | None) -> None:
    """Give a fold checkpoint trained before ``train_sketchmap`` stored a rerank weight one, chosen
    on its training regions' validation sketches (never the held-out region's)."""
    from geoseek.capabilities.sketchmap.multi import store_fusion_weight
    from geoseek.checkpoint import read_checkpoint

    if "fusion_weight" in read_checkpoint(ckpt).get("extra", {}):
        return
    datas = [prepare_data(r, window_m=recipe.window_m, size=recipe.size, copies=recipe.copies, cache_dir=cache,
                          progress=False, shifts=recipe.shifts) for r in train_regions]
    store_fusion_weight(ckpt, datas)


def leave_one_out(
    regions: Sequence[Path], recipe: Any, checkpoints: str | Path, *, cache: str | Path | None = None, threads: int | None = 1,
    progress: bool = False, hold_out: Sequence[str] | None = None, **score_kw: Any,
) -> dict[str, Any]:
    """For each region, a model trained on the others by ``recipe`` (a :class:`SketchRecipe`) scored on it."""
    from geoseek.capabilities.common.loo import held_out_regions, loo_checkpoint, summarize
    from geoseek.capabilities.sketchmap.multi import train_sketchmap

    regions = [Path(r) for r in regions]
    if len(regions) < 2:
        raise InvalidInputError("--leave-one-out needs at least two regions")
    if len({r.name for r in regions}) != len(regions):
        raise InvalidInputError("--leave-one-out: two regions share a file name")
    init_seen = _init_regions(recipe)
    rows, skipped = [], []
    folds = held_out_regions(regions, hold_out)  # unknown names fail before any training
    for held in folds:
        others = [r for r in regions if r != held]
        # A fold may not start from a model that saw its held-out region: that fold trains from scratch.
        fold = replace(recipe, init=None) if held.name in init_seen else recipe

        def train(rs: list[Path], out: Path, fold: Any = fold) -> dict[str, Any]:
            return train_sketchmap(rs, out, fold, cache=cache, threads=threads, progress=progress)

        try:
            ckpt, reused = loo_checkpoint("sketchmap", held, others, fold.to_dict(), checkpoints, train)
        except (InvalidInputError, ValueError) as exc:
            skipped.append({"region": held.name, "reason": f"training on the other regions failed: {exc}"})
            continue
        print(f"leave-one-out: {held.name} <- {ckpt.name} ({'reused' if reused else 'trained'})", file=sys.stderr)
        _ensure_fusion_weight(ckpt, others, fold, cache)
        try:
            row = score_region(held, ckpt, cache=cache, progress=progress, **score_kw)
        except InvalidInputError as exc:
            skipped.append({"region": held.name, "reason": str(exc)})
            continue
        rows.append({**row, "trained_on": [r.name for r in others], "checkpoint_reused": reused, "init": fold.init,
                     **({"init_dropped": f"{recipe.init} trained on {held.name}"} if fold is not recipe else {})})
    return {"mode": "leave-one-out", "held_out": [r.name for r in folds],
            "recipe": recipe.to_dict(), "checkpoints": str(checkpoints), "regions": rows,
            "skipped": skipped, "mean": summarize(rows, SUMMARY_KEYS)}
