"""Sketch-map training: the mining schedule and its sampler, and the task running with geoseek.train.fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from geoseek.losses.mining_schedule import ExemplarSampler, MiningSchedule, RandomNegativeMiner


def test_schedule_phases_and_miners():
    s = MiningSchedule(random_until=10, neighbours_until=20)
    assert [s.phase(i) for i in (0, 9, 10, 19, 20, 1000)] == ["random", "random", "neighbours", "neighbours", "semihard", "semihard"]
    assert type(s.miner(0)).__name__ == "RandomNegativeMiner"
    assert type(s.miner(15)).__name__ == "AllTripletsMiner"
    assert type(s.miner(25)).__name__ == "SemiHardMiner"
    with pytest.raises(ValueError):
        MiningSchedule(rank_window=(5, 5))
    with pytest.raises(ValueError):
        MiningSchedule(random_until=30, neighbours_until=20)


def test_random_negative_miner_is_valid():
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    t = RandomNegativeMiner()(torch.randn(8, 4), labels)
    assert len(t.anchor) == 3 * 2 + 2 + 3 * 2  # every ordered positive pair
    assert (labels[t.anchor] == labels[t.positive]).all() and (t.anchor != t.positive).all()
    assert (labels[t.anchor] != labels[t.negative]).all()


def test_sampler_uses_neighbours_outside_the_rank_window():
    # scenes on a line: embedding neighbours are the index neighbours
    n = 40
    ang = np.linspace(0, 0.5, n)
    emb = np.stack([np.cos(ang), np.sin(ang)], 1).astype(np.float32)
    sched = MiningSchedule(random_until=5, neighbours_until=10, rank_window=(2, 4), refresh_every=3, neighbours_per_seed=2)
    sp = ExemplarSampler(n, sched, seed=0)
    assert not sp.needs_update(0)
    b = sp.batch(0, 12)
    assert len(set(b.tolist())) == 12
    assert sp.needs_update(5)
    sp.update(emb, step=5)
    assert not sp.needs_update(6) and sp.needs_update(8)
    # neighbours at ranks 2..3: distance 2 in index space (rank 0, 1 are the adjacent ones)
    for i in range(3, n - 3):
        assert set(np.abs(sp.neighbours[i] - i).tolist()) <= {2, 3}
    b = sp.batch(6, 12)
    assert len(set(b.tolist())) == 12
    close = sum(int(np.min(np.abs(np.delete(b, j) - b[j])) <= 3) for j in range(len(b)))
    assert close >= 8  # batches are built from near neighbours, not random scenes


def test_training_task_runs_with_fit(tmp_path):
    from geoseek.capabilities.sketchmap.data import SceneSet, SketchMapData
    from geoseek.capabilities.sketchmap.task import SketchMapTask
    from geoseek.checkpoint import load_model
    from geoseek.train import FitConfig, fit

    rng = np.random.default_rng(0)
    n = 16
    r = (rng.random((n, 14, 16, 16)) > 0.9).astype(np.uint8) * 255
    pool = np.stack([np.stack([np.roll(r[i], k, axis=-1) for k in (1, -1)]) for i in range(10)])
    data = SketchMapData(SceneSet(r, np.zeros((n, 4)), np.zeros((n, 4))), np.arange(10), np.arange(10, 13),
                         np.arange(13, 16), pool, r[10:13])
    task = SketchMapTask(data, "sketchmap-sppcnn", {"widths": [8, 16, 16], "hidden": 32},
                         schedule=MiningSchedule(random_until=1, neighbours_until=2, refresh_every=1, rank_window=(1, 4)), batch_scenes=4,
                         feedback={3: [r[3]]})
    res = fit(task, FitConfig(steps=3, validate_every=3, monitor="val_mrr", warmup=1), tmp_path / "m.pt", progress=False)
    assert 0 < res["best"]["val_mrr"] <= 1
    model, payload = load_model(tmp_path / "m.pt")
    assert payload["model"] == "sketchmap-sppcnn"
    assert model(torch.from_numpy(r[:2])).shape == (2, 128)


def test_task_first_weights_come_from_its_seed():
    """Two tasks with one seed start from the same weights whatever the global RNG held."""
    from geoseek.capabilities.sketchmap.data import SceneSet, SketchMapData
    from geoseek.capabilities.sketchmap.task import SketchMapTask

    r = np.zeros((4, 14, 16, 16), np.uint8)
    data = SketchMapData(SceneSet(r, np.zeros((4, 4)), np.zeros((4, 4))), np.arange(2), np.arange(2, 3),
                         np.arange(3, 4), r[:2, None], r[2:3])
    states = []
    for i in range(2):
        torch.manual_seed(100 + i)
        task = SketchMapTask(data, "sketchmap-sppcnn", {"widths": [8, 16, 16], "hidden": 32}, seed=7)
        states.append(task.model.state_dict())
    for name, value in states[0].items():
        torch.testing.assert_close(value, states[1][name], rtol=0, atol=0, msg=name)
