"""Checkpoints: the per-process model cache that search paths and the service share."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import torch

from geoseek import checkpoint
from geoseek.checkpoint import ModelCache, save_checkpoint
from geoseek.encoders.registry import MODELS


def _ckpt(path: Path, seed: int) -> Path:
    torch.manual_seed(seed)
    return save_checkpoint(path, model_name="tile-cnn", config={"dim": 8}, model=MODELS.create("tile-cnn", dim=8))


def test_model_cache_loads_once_under_concurrency_and_reloads_a_changed_file(tmp_path, monkeypatch):
    a, b = _ckpt(tmp_path / "a.pt", 0), _ckpt(tmp_path / "b.pt", 1)
    calls: list[str] = []
    real = checkpoint.load_model

    def counting(path, task=None):
        calls.append(Path(path).name)
        return real(path, task)

    monkeypatch.setattr(checkpoint, "load_model", counting)
    cache = ModelCache(max_models=1)
    got: list[torch.nn.Module] = []
    threads = [threading.Thread(target=lambda: got.append(cache.get(a))) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert calls == ["a.pt"] and all(m is got[0] for m in got) and not got[0].training
    assert cache.get(b) is not got[0] and calls == ["a.pt", "b.pt"]
    assert cache.get(a) is not got[0] and calls[-1] == "a.pt"  # evicted (max_models=1), loaded again
    _ckpt(a, 2)
    os.utime(a, ns=(1, 10**18))  # a rewritten file is a new model, whatever its name
    first = cache.get(a)
    assert calls[-1] == "a.pt" and cache.get(a) is first
