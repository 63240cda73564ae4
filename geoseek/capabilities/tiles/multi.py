"""Loc2Vec over several regions: one sampler that shares each batch among the regions' samplers.

* :class:`MixedSampler` — :meth:`sample_pairs` / :meth:`sample` like a
  :class:`~geoseek.sources.tile_sampler.TileTripletSampler`, each pair's region drawn by
  :class:`~geoseek.capabilities.common.regions.RegionMix` (default ∝ sqrt(non-empty z16 cells));
* :func:`pooled_block_tiles` — the validation tiles of training's land-use P@10, from every region.

Every region is sampled in ground metres (``window_m``, ``d_pos``, ``d_neg``), so a tile covers
the same ground at 36° N and at 60° N. Pairs of different regions are thousands of kilometres
apart, so they are always valid negatives of each other; a region smaller than ``d_neg`` gets
its negatives from the other regions only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from geoseek.capabilities.common.regions import RegionMix


class MixedSampler:
    """Several regions' :class:`TileTripletSampler` behind one ``sample_pairs`` / ``sample``.

    ``cfg`` is the first sampler's (all share one :class:`TripletConfig`); ``mix`` the rule.
    """

    def __init__(self, samplers: list[Any], mix: str = "sqrt") -> None:
        self.samplers = samplers
        self.cfg = samplers[0].cfg
        self.mix = RegionMix([len(s.cells) for s in samplers], mix)

    def sample_pairs(self, n: int, rng: np.random.Generator, *, land_use: bool = False):
        """``n`` (anchor, positive) pairs from the regions: as :meth:`TileTripletSampler.sample_pairs`."""
        counts = self.mix.counts(n, rng)
        parts = [s.sample_pairs(int(c), rng, land_use=land_use) for s, c in zip(self.samplers, counts) if c]
        return tuple(np.concatenate([p[k] for p in parts], 1) for k in range(len(parts[0])))

    def sample(self, n: int, rng: np.random.Generator, *, land_use: bool = False):
        """``n`` triplets: pairs as :meth:`sample_pairs`, each negative the anchor of another pair at
        least ``d_neg`` away (another region's when its own is too small); tiles (3, n, C, H, W)."""
        from geoseek.sources.tile_sampler import far_enough

        out = self.sample_pairs(n, rng, land_use=land_use)
        tiles, centers = out[0], out[1]
        ok = far_enough(centers[0], centers[0], self.cfg.d_neg)
        neg = np.array([rng.choice(np.flatnonzero(r)) if r.any() else (i + 1) % n for i, r in enumerate(ok)], np.int64)
        res = [np.concatenate([tiles, tiles[:1, neg]], 0), np.concatenate([centers, centers[:1, neg]], 0)]
        if land_use:
            res.append(np.concatenate([out[2], out[2][:1, neg]], 0))
        return tuple(res)


def pooled_block_tiles(features: list[Any], samplers: list[Any], n: int, seed: int = 0):
    """Up to ``n`` labelled validation tiles of the training blocks, shared evenly among the regions.

    Returns (tiles, labels, centers) as :func:`geoseek.capabilities.tiles.data.training_block_tiles`.
    """
    from geoseek.capabilities.tiles.data import training_block_tiles

    per = max(1, n // len(features))
    parts = [training_block_tiles(f, s.cfg.split, per, seed) for f, s in zip(features, samplers)]
    return (np.concatenate([p[0] for p in parts]), [lab for p in parts for lab in p[1]],
            np.concatenate([p[2] for p in parts]))
