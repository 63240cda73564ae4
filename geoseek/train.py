"""One training loop for every model: progress, periodic validation, checkpoints and resume.

A task supplies a :class:`TrainTask`: how to draw a batch and compute its loss, and how to
validate. :func:`fit` owns the rest (optimizer steps, gradient clipping, best-checkpoint
keeping, a resumable ``last`` state), so every ``geoseek train ...`` command behaves alike.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from geoseek.checkpoint import save_checkpoint


class TrainTask(Protocol):
    """What a model family supplies to :func:`fit`."""

    model: nn.Module
    model_name: str
    config: dict[str, Any]
    # optional: ``aux``, an nn.Module trained beside the model (a head the loss uses) but not
    # saved in the checkpoint; fit optimizes it and keeps its state in the resumable ``last``

    def loss(self, step: int) -> tuple[torch.Tensor, dict[str, float]]:
        """Draw a batch for ``step`` and return (loss, scalars to log)."""

    def validate(self) -> dict[str, float]:
        """Validation metrics (higher is better for ``FitConfig.monitor``)."""


@dataclass
class FitConfig:
    """Optimization settings. ``monitor`` names the validation metric to maximize."""

    steps: int = 1000
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 50
    grad_clip: float = 5.0
    validate_every: int = 200
    monitor: str = "val"
    seed: int = 0
    threads: int | None = None
    patience: int = 0
    """Stop after this many validations without a better ``monitor`` (0: run all ``steps``)."""
    extra: dict[str, Any] = field(default_factory=dict)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU) RNGs."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _lr_lambda(cfg: FitConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / max(cfg.warmup, 1)
        t = (step - cfg.warmup) / max(cfg.steps - cfg.warmup, 1)
        return 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))

    return f


def fit(
    task: TrainTask,
    cfg: FitConfig,
    out: str | Path,
    *,
    data: dict[str, Any] | None = None,
    resume: bool = True,
    progress: bool = True,
    params: list[nn.Parameter] | None = None,
) -> dict[str, Any]:
    """Train ``task.model`` for ``cfg.steps`` steps; save the best checkpoint to ``out``.

    A resumable state is kept beside it as ``<out>.last`` (model, optimizer, scheduler, step,
    RNG states); with ``resume=True`` an interrupted run continues from there.

    Returns:
        ``{"best": metrics of the best validation, "history": [...], "steps": int, "seconds": float}``
    """
    out = Path(out)
    last = out.with_name(out.name + ".last")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    model = task.model
    aux: nn.Module | None = getattr(task, "aux", None)  # training-only modules (heads dropped after training)
    trainable = params if params is not None else [p for p in model.parameters() if p.requires_grad]
    if aux is not None and params is None:
        trainable += [p for p in aux.parameters() if p.requires_grad]
    groups = task.param_groups() if params is None and hasattr(task, "param_groups") else None
    if groups:  # optional per-group learning rates: {"params": [...], "lr_scale": s}
        groups = [{"params": g["params"], "lr": cfg.lr * g.get("lr_scale", 1.0)} for g in groups]
        if aux is not None:
            groups[0]["params"] = list(groups[0]["params"]) + [p for p in aux.parameters() if p.requires_grad]
        trainable = [p for g in groups for p in g["params"]]
    opt = torch.optim.AdamW(groups or trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    task_rng = getattr(task, "rng", None)
    task_rng = task_rng if isinstance(task_rng, np.random.Generator) else None
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg))
    start, best, history = 0, None, []
    if resume and last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=False)
        if (aux is not None) != ("aux" in state):
            from geoseek.errors import InvalidInputError

            raise InvalidInputError(
                f"{last} was saved {'without' if aux is not None else 'with'} a training head (a training "
                "option such as --land-use-aux differs from that run): resume with the same settings, or start "
                "afresh (--no-resume, or another --out)")
        model.load_state_dict(state["model"])
        if aux is not None:
            aux.load_state_dict(state["aux"])
        opt.load_state_dict(state["opt"])
        sched.load_state_dict(state["sched"])
        start, best, history = state["step"], state["best"], state["history"]
        torch.set_rng_state(state["torch_rng"])
        np.random.set_state(state["numpy_rng"])
        random.setstate(state["python_rng"])
        if task_rng is not None and "task_rng" in state:
            task_rng.bit_generator.state = state["task_rng"]  # the batch stream continues where it stopped
    t0 = time.time()
    bar = tqdm(range(start, cfg.steps), initial=start, total=cfg.steps, disable=not progress, desc=task.model_name)
    running: dict[str, float] = {}
    for step in bar:
        model.train()
        if aux is not None:
            aux.train()
        loss, scalars = task.loss(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        opt.step()
        sched.step()
        scalars = {"loss": float(loss.detach()), **scalars}
        for k, v in scalars.items():
            running[k] = 0.9 * running.get(k, v) + 0.1 * v
        bar.set_postfix({k: f"{v:.4g}" for k, v in running.items()})
        done = step + 1
        if done % cfg.validate_every == 0 or done == cfg.steps:
            model.eval()
            with torch.no_grad():
                metrics = task.validate()
            model.train()
            history.append({"step": done, **{k: float(v) for k, v in metrics.items()}, **running})
            score = metrics.get(cfg.monitor, -math.inf)
            if best is None or score > best.get(cfg.monitor, -math.inf):
                best = {"step": done, **{k: float(v) for k, v in metrics.items()}}
                save_checkpoint(
                    out,
                    model_name=task.model_name,
                    config=task.config,
                    model=model,
                    metrics=best,
                    data=data,
                    train={**asdict(cfg), "history": history},
                )
            bar.write(f"step {done}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))
            tmp = last.with_name(last.name + ".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    **({"aux": aux.state_dict()} if aux is not None else {}),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "step": done,
                    "best": best,
                    "history": history,
                    "torch_rng": torch.get_rng_state(),
                    "numpy_rng": np.random.get_state(),
                    "python_rng": random.getstate(),
                    **({"task_rng": task_rng.bit_generator.state} if task_rng is not None else {}),
                },
                tmp,
            )
            os.replace(tmp, last)
            if cfg.patience and best is not None and done - best["step"] >= cfg.patience * cfg.validate_every:
                bar.write(f"step {done}: no better {cfg.monitor} in {cfg.patience} validations since step {best['step']}: stopping")
                break
    return {"best": best, "history": history, "steps": cfg.steps, "last_step": history[-1]["step"] if history else start,
            "seconds": time.time() - t0}
