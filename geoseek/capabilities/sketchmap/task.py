"""The sketch-map training task for :func:`geoseek.train.fit` (DeepSSN's triplet training).

:class:`SketchMapTask`: triplet loss on (scene, sketch, sketch) views with the mining schedule of
:mod:`geoseek.losses.mining_schedule`; validation ranks the validation sketches' true scenes.
The train entry point is ``geoseek train sketchmap`` (:func:`geoseek.cli.sketchmap.run_train`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from geoseek.capabilities.sketchmap.data import SketchMapData
from geoseek.capabilities.sketchmap.evaluate import rank_metrics, true_ranks
from geoseek.capabilities.sketchmap.vectors import embed


def _d4(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 rotations/flips of (..., H, W) tensors (k in 0..7)."""
    if k >= 4:
        x = x.flip(-1)
    return torch.rot90(x, k % 4, dims=(-2, -1))


class SketchMapTask:
    """Triplet training of a sketch-map encoder with scheduled exemplar mining.

    A batch holds ``batch_scenes`` scenes, each as 1 real scene raster + ``sketches`` simulated
    sketches (label = scene). Each scene group gets one random rotation/flip (a new plausible
    scene). Feedback pairs (real sketch, chosen scene) join the scene's sketch pool.
    """

    def __init__(
        self,
        data: SketchMapData,
        model_name: str = "sketchmap-resnet",
        model_config: dict[str, Any] | None = None,
        *,
        schedule: Any = None,
        batch_scenes: int = 24,
        sketches: int = 2,
        seed: int = 0,
        feedback: dict[int, list[np.ndarray]] | None = None,
    ) -> None:
        from geoseek.encoders.registry import create_model
        from geoseek.losses import TripletMarginLoss
        from geoseek.losses.mining_schedule import ExemplarSampler, MiningSchedule

        self.data = data
        self.model_name = model_name
        self.config = dict(model_config or {})
        import torch

        with torch.random.fork_rng(devices=[]):  # first weights from the run's seed, global RNG untouched
            torch.manual_seed(seed)
            self.model = create_model(model_name, **self.config)
        self.schedule = schedule or MiningSchedule()
        self.train_rasters = data.train_rasters  # row i is sketched by data.pool[i]
        self.sampler = ExemplarSampler(len(self.train_rasters), self.schedule, seed)
        self.loss_fn = TripletMarginLoss(margin=self.schedule.margin)
        self.batch_scenes = batch_scenes
        self.sketches = sketches
        self.rng = np.random.default_rng(seed + 17)
        pos = {int(s): i for i, s in enumerate(data.train_idx)}
        self.feedback = {pos[s]: v for s, v in (feedback or {}).items() if s in pos}

    def _refresh(self, step: int) -> None:
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            e = embed(self.model, self.train_rasters)
        self.model.train(was)
        self.sampler.update(e, step)

    def views(self, step: int, n: int, first_label: int = 0) -> tuple[list[torch.Tensor], list[int]]:
        """The views of ``n`` scenes of this task's region for the batch of ``step``: a list of
        (1 + sketches, C, S, S) uint8 groups and their labels ``first_label``, ``first_label + 1``, ..."""
        if self.sampler.needs_update(step):
            self._refresh(step)
        ids = self.sampler.batch(step, n)
        d = self.data
        copies = d.pool.shape[1]
        views, labels = [], []
        for j, i in enumerate(ids.tolist()):
            group = [self.train_rasters[i]]
            fb = self.feedback.get(i, [])
            for _ in range(self.sketches):
                if fb and self.rng.random() < 0.5:
                    group.append(fb[int(self.rng.integers(len(fb)))])
                else:
                    group.append(d.pool[i, int(self.rng.integers(copies))])
            g = _d4(torch.from_numpy(np.stack(group)), int(self.rng.integers(8)))
            views.append(g)
            labels += [first_label + j] * len(group)
        return views, labels

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        views, labels = self.views(step, self.batch_scenes)
        return self.loss_of(views, labels, step)

    def loss_of(self, views: list[torch.Tensor], labels: list[int], step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Triplet loss of a batch of views (mined as the schedule says at ``step``)."""
        x = torch.cat(views)
        y = torch.tensor(labels)
        emb = self.model(x)
        miner = self.schedule.miner(step)
        trip = miner(emb.detach(), y)
        loss = self.loss_fn(emb, y, trip)
        return loss, {"triplets": float(len(trip.anchor)), "phase": float(("random", "neighbours", "semihard").index(self.schedule.phase(step)))}

    def validate(self) -> dict[str, float]:
        d = self.data
        db = embed(self.model, d.scenes.rasters)
        q = embed(self.model, d.val_queries)
        m = rank_metrics(true_ranks(q, db, d.val_idx))
        return {"val_mrr": m["mrr"], "val_acc_at_1": m["acc_at_1"], "val_acc_at_10": m["acc_at_10"]}
