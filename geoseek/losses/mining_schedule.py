"""Exemplar mining with a schedule (DeepSSN): triplets that get harder as training goes.

Positives of a scene are its simulated sketches (and the scene itself); negatives come from
other scenes, in three phases:

1. ``random`` — batches of random scenes, one random negative per (anchor, positive) pair;
2. ``neighbours`` — each batch is built around seed scenes plus their nearest neighbours in
   the current embedding space whose rank lies in ``rank_window`` (the closest ``lo`` are
   skipped: near-duplicates that would be false negatives), all in-batch triplets;
3. ``semihard`` — the same neighbour batches with FaceNet's semi-hard miner.

The neighbour table is refreshed from fresh scene embeddings every ``refresh_every`` steps
(:meth:`ExemplarSampler.update`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geoseek.losses.miners import AllTripletsMiner, SemiHardMiner, Triplets

PHASES = ("random", "neighbours", "semihard")


@dataclass(frozen=True)
class MiningSchedule:
    """Phase boundaries (steps) and the neighbour settings."""

    random_until: int = 300
    neighbours_until: int = 1200
    rank_window: tuple[int, int] = (2, 40)
    """Neighbour ranks [lo, hi) (0 = nearest other scene) used as hard negatives."""
    refresh_every: int = 200
    neighbours_per_seed: int = 3
    margin: float = 0.2

    def __post_init__(self) -> None:
        lo, hi = self.rank_window
        if not (0 <= lo < hi):
            raise ValueError(f"rank_window must be 0 <= lo < hi, got {self.rank_window}")
        if not (0 <= self.random_until <= self.neighbours_until):
            raise ValueError("phases must satisfy 0 <= random_until <= neighbours_until")

    def phase(self, step: int) -> str:
        """``"random"``, ``"neighbours"`` or ``"semihard"`` at training step ``step``."""
        if step < self.random_until:
            return "random"
        if step < self.neighbours_until:
            return "neighbours"
        return "semihard"

    def miner(self, step: int):
        """The triplet miner of the phase at ``step``."""
        p = self.phase(step)
        if p == "random":
            return RandomNegativeMiner()
        if p == "neighbours":
            return AllTripletsMiner()
        return SemiHardMiner(margin=self.margin)


class RandomNegativeMiner:
    """Every (anchor, positive) pair with one negative drawn uniformly from the batch."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    @torch.no_grad()
    def __call__(self, emb: torch.Tensor, labels: torch.Tensor, ref_emb=None, ref_labels=None) -> Triplets:
        ref_labels = labels if ref_labels is None else ref_labels
        pos = labels[:, None] == ref_labels[None, :]
        if ref_emb is None:
            pos.fill_diagonal_(False)
        neg = labels[:, None] != ref_labels[None, :]
        a, p = pos.nonzero(as_tuple=True)
        if len(a) == 0:
            return Triplets(a, p, p)
        w = neg[a].float()
        ok = w.sum(1) > 0
        a, p, w = a[ok], p[ok], w[ok]
        if len(a) == 0:
            return Triplets(a, p, p)
        n = torch.multinomial(w, 1, generator=self.generator).squeeze(1)
        return Triplets(a, p, n)


class ExemplarSampler:
    """Picks the scenes of each batch according to a :class:`MiningSchedule`."""

    def __init__(self, n_scenes: int, schedule: MiningSchedule, seed: int = 0) -> None:
        if n_scenes < 2:
            raise ValueError("mining needs at least 2 scenes")
        self.n = n_scenes
        self.schedule = schedule
        self.rng = np.random.default_rng(seed)
        self.neighbours: np.ndarray | None = None
        self.updated_at: int | None = None

    def needs_update(self, step: int) -> bool:
        """Whether fresh embeddings are due (a neighbour phase and a stale or missing table)."""
        if self.schedule.phase(step) == "random":
            return False
        return self.updated_at is None or step - self.updated_at >= self.schedule.refresh_every

    def update(self, embeddings: np.ndarray, step: int = 0) -> None:
        """Rebuild the neighbour table from scene embeddings (n_scenes, D) (unit vectors)."""
        e = np.asarray(embeddings, dtype=np.float32)
        if len(e) != self.n:
            raise ValueError(f"expected {self.n} embeddings, got {len(e)}")
        lo, hi = self.schedule.rank_window
        hi = min(hi, self.n - 1)
        lo = min(lo, hi - 1)
        sims = e @ e.T
        np.fill_diagonal(sims, -np.inf)
        order = np.argsort(-sims, axis=1, kind="stable")
        self.neighbours = order[:, lo:hi]
        self.updated_at = step

    def batch(self, step: int, size: int) -> np.ndarray:
        """``size`` distinct scene indices for the batch of ``step``."""
        size = min(size, self.n)
        if self.schedule.phase(step) == "random" or self.neighbours is None:
            return self.rng.choice(self.n, size, replace=False)
        chosen: list[int] = []
        seen: set[int] = set()
        k = self.schedule.neighbours_per_seed
        while len(chosen) < size:
            s = int(self.rng.integers(self.n))
            if s in seen:
                continue
            group = [s] + self.rng.choice(self.neighbours[s], min(k, self.neighbours.shape[1]), replace=False).tolist()
            for g in group:
                if g not in seen and len(chosen) < size:
                    seen.add(g)
                    chosen.append(int(g))
        return np.asarray(chosen)
