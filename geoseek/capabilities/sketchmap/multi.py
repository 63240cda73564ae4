"""Sketch-map training on one or several regions (``geoseek train sketchmap A.osm.pbf B.osm.pbf ...``).

* :class:`SketchRecipe` — every training setting (a leave-one-out run keys its checkpoints by it);
* :class:`MultiRegionSketchTask` — one :class:`SketchMapTask` per region sharing one model; each
  batch's scenes are split over the regions by :class:`~geoseek.capabilities.common.regions.RegionMix`
  (default: ∝ sqrt(training scenes)), each region mining its own exemplars;
* :func:`train_sketchmap` — data, task and :func:`geoseek.train.fit` in one call.

Scale is defined in metres for every region alike: a scene is a ``window_m`` ground-metre square
(480 m by default, whatever the latitude: the mercator window is widened by 1/cos φ), rendered
at ``size`` px, with line widths in ground metres, so a dense old town and a rural valley give
rasters of the same ground resolution (7.5 m/px by default).
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoseek.capabilities.common.regions import RegionMix
from geoseek.capabilities.sketchmap.data import DEFAULT_SIZE, DEFAULT_WINDOW_M, SketchMapData, prepare_data
from geoseek.capabilities.sketchmap.evaluate import rank_metrics, true_ranks
from geoseek.capabilities.sketchmap.task import SketchMapTask
from geoseek.capabilities.sketchmap.vectors import embed


@dataclass
class SketchRecipe:
    """How a sketch-map encoder is trained (the defaults are ``geoseek train sketchmap``'s)."""

    model: str = "sketchmap-resnet"
    model_config: dict[str, Any] = field(default_factory=dict)
    steps: int = 3000
    batch_scenes: int = 24
    lr: float = 2e-3
    margin: float = 0.2
    phases: tuple[float, float] = (0.15, 0.5)
    window_m: float = DEFAULT_WINDOW_M
    size: int = DEFAULT_SIZE
    copies: int = 6
    validate_every: int = 250
    seed: int = 0
    mix: str = "sqrt"
    init: str | None = None
    shifts: int = 1
    """> 1: also train on the scene grids shifted by 1/shifts of a window (see ``prepare_data``)."""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["phases"] = list(self.phases)
        if self.shifts == 1:  # absent at 1, so recipes (and leave-one-out checkpoint keys) from before it still match
            d.pop("shifts")
        return d


class MultiRegionSketchTask:
    """Triplet training over several regions' scenes with one shared encoder.

    A batch of ``batch_scenes`` scenes takes ``RegionMix.counts`` scenes from each region (a
    multinomial draw per step); each region's :class:`SketchMapTask` picks its scenes with its
    own exemplar sampler (mining neighbours within the region) and the groups are labelled
    apart, so scenes of different regions are negatives of each other. Validation: each
    region's validation sketches ranked among that region's scenes; ``val_mrr`` is the mean
    over regions.
    """

    def __init__(self, datas: list[SketchMapData], tasks: list[SketchMapTask], mix: str = "sqrt", seed: int = 0) -> None:
        self.datas, self.tasks = datas, tasks
        self.model = tasks[0].model
        for t in tasks[1:]:
            t.model = self.model
        self.model_name, self.config = tasks[0].model_name, tasks[0].config
        self.mix = RegionMix([len(d.pool) for d in datas], mix)
        self.batch_scenes = tasks[0].batch_scenes
        self.rng = np.random.default_rng(seed + 23)

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        counts = self.mix.counts(self.batch_scenes, self.rng)
        views: list[torch.Tensor] = []
        labels: list[int] = []
        for t, c in zip(self.tasks, counts.tolist()):
            if c:
                v, lab = t.views(step, c, first_label=len(views))
                views += v
                labels += lab
        return self.tasks[0].loss_of(views, labels, step)

    def validate(self) -> dict[str, float]:
        per = []
        for d in self.datas:
            if len(d.val_idx) == 0:
                continue
            db, q = embed(self.model, d.scenes.rasters), embed(self.model, d.val_queries)
            per.append(rank_metrics(true_ranks(q, db, d.val_idx)))
        if not per:
            return {"val_mrr": 0.0}
        return {"val_mrr": float(np.mean([m["mrr"] for m in per])),
                "val_acc_at_1": float(np.mean([m["acc_at_1"] for m in per])),
                "val_acc_at_10": float(np.mean([m["acc_at_10"] for m in per]))}


def train_sketchmap(
    regions: list[Path], out: str | Path, recipe: SketchRecipe, *, cache: str | Path | None = None,
    threads: int | None = 1, progress: bool = True, feedback_collection: str | None = None, resume: bool = True,
) -> dict[str, Any]:
    """Train a sketch-map encoder on ``regions`` (OSM files) by ``recipe``; returns :func:`geoseek.train.fit`'s summary.

    One region gives exactly today's single-region training; several use :class:`MultiRegionSketchTask`.
    """
    from geoseek.capabilities.sketchmap.feedback import feedback_sketches
    from geoseek.errors import InvalidInputError
    from geoseek.losses.mining_schedule import MiningSchedule
    from geoseek.train import FitConfig, fit

    if not regions:
        raise InvalidInputError("train sketchmap needs at least one OSM file")
    if threads:
        torch.set_num_threads(threads)
    datas = [prepare_data(r, window_m=recipe.window_m, size=recipe.size, copies=recipe.copies, cache_dir=cache,
                          progress=progress, shifts=recipe.shifts) for r in regions]
    feedback = None
    if feedback_collection:
        if len(regions) > 1:
            raise InvalidInputError("--with-feedback takes one region (the collection's)")
        feedback = feedback_sketches(feedback_collection, datas[0])
        print(f"feedback: {sum(len(v) for v in feedback.values())} sketches of {len(feedback)} scenes", file=sys.stderr)
    steps = recipe.steps
    schedule = MiningSchedule(
        random_until=int(steps * recipe.phases[0]), neighbours_until=int(steps * recipe.phases[1]), margin=recipe.margin,
        refresh_every=max(50, steps // 10),
    )
    model_name, config, init = recipe.model, dict(recipe.model_config), None
    if recipe.init:
        from geoseek.checkpoint import load_model

        init, init_payload = load_model(recipe.init, task="sketchmap") if recipe.init == "default" else load_model(recipe.init)
        model_name, config = init_payload["model"], init_payload["config"]
    tasks = [SketchMapTask(d, model_name, config, schedule=schedule, batch_scenes=recipe.batch_scenes,
                           seed=recipe.seed + 1000 * i, feedback=feedback if i == 0 else None) for i, d in enumerate(datas)]
    task: Any = tasks[0] if len(tasks) == 1 else MultiRegionSketchTask(datas, tasks, recipe.mix, recipe.seed)
    if init is not None:
        task.model.load_state_dict(init.state_dict())
    cfg = FitConfig(steps=steps, lr=recipe.lr, validate_every=recipe.validate_every, monitor="val_mrr", seed=recipe.seed,
                    threads=threads)
    sched = {"random_until": schedule.random_until, "neighbours_until": schedule.neighbours_until,
             "rank_window": list(schedule.rank_window)}
    if len(datas) == 1:
        d = datas[0]
        info = {**d.settings, "n_scenes": len(d.scenes), "n_train": len(d.pool), "n_val": len(d.val_idx),
                "n_test": len(d.test_idx), "feedback": str(feedback_collection) if feedback_collection else None,
                "schedule": sched}
    else:
        info = {**{k: v for k, v in datas[0].settings.items() if k != "source"},
                "source": "+".join(d.settings["source"] for d in datas),
                "sources": [d.settings["source"] for d in datas],
                "regions": [{"source": d.settings["source"], "n_scenes": len(d.scenes), "n_train": len(d.pool),
                             "n_val": len(d.val_idx), "n_test": len(d.test_idx)} for d in datas],
                "mix": task.mix.to_dict(), "feedback": None, "schedule": sched}
    info["recipe"] = recipe.to_dict()
    if init is not None:
        from geoseek.capabilities.sketchmap.regions import trained_on

        # the lineage: regions the starting model saw count as seen by this one (leave-one-out checks it)
        info["init"] = {"checkpoint": Path(init_payload["path"]).name, "checksum": init_payload.get("checksum"),
                        "sources": sorted(trained_on(init_payload))}
    summary = fit(task, cfg, out, data=info, progress=progress, resume=resume)
    summary["fusion_weight"] = store_fusion_weight(out, datas)
    return summary


def store_fusion_weight(checkpoint: str | Path, datas: list[SketchMapData]) -> float:
    """Choose the raw-pixel rerank weight of ``checkpoint``'s model on ``datas``' validation sketches
    (mean MRR over the regions) and store it as ``extra.fusion_weight``, as the default model has it:
    ``build sketchmap`` copies it into the collection, so the search answers with this rerank."""
    from geoseek.capabilities.sketchmap.evaluate import choose_fusion_weight
    from geoseek.checkpoint import load_model, update_checkpoint_extra

    model = load_model(checkpoint)[0]
    weight, scores = choose_fusion_weight(model, datas)
    update_checkpoint_extra(checkpoint, fusion_weight=weight, fusion_val_mrr=scores,
                            note="fusion weight chosen on the training regions' validation sketches")
    return weight
