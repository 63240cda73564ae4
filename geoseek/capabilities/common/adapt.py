"""Self-adaptation at build time: fine-tune a trained encoder on the user's region within a time budget.

The sketch-map and tiles objectives need no labels (simulated sketches; near/far tiles), so a
model can keep learning on the region it is about to index. :func:`adapt_loop` runs a task's
``loss(step)`` (the same :class:`geoseek.train.TrainTask` interface :func:`geoseek.train.fit`
uses) until a :class:`~geoseek.capabilities.common.regions.Deadline` passes — checked before
every step (and by tasks inside a step, see :class:`DeadlineReached`), so the loop overshoots
the budget by at most one step — with a constant learning
rate after a short warm-up (the number of steps is not known in advance, so there is no
cosine schedule to follow). :func:`save_adapted` writes the result as a checkpoint whose
``extra.adaptation`` records what was done.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geoseek.capabilities.common.regions import Deadline, DeadlineReached


def adapt_loop(
    task: Any, deadline: Deadline, *, lr: float = 5e-4, warmup: int = 10, grad_clip: float = 5.0,
    weight_decay: float = 1e-4, seed: int = 0, progress: bool = True, max_steps: int | None = None,
) -> dict[str, Any]:
    """Optimize ``task.model`` (and ``task.aux`` if any) with ``task.loss(step)`` until ``deadline`` passes.

    Returns ``{"steps", "loop_seconds", "final_loss", "lr", "seed"}``; progress goes to stderr
    about every tenth of the budget.
    """
    import time

    from geoseek.train import seed_everything

    seed_everything(seed)
    model: nn.Module = task.model
    params = [p for p in model.parameters() if p.requires_grad]
    aux = getattr(task, "aux", None)
    if aux is not None:
        params += [p for p in aux.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    t0 = time.monotonic()
    step, loss_avg, next_report = 0, None, deadline.seconds / 10
    model.train()
    while not deadline.passed() and (max_steps is None or step < max_steps):
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / max(warmup, 1))
        try:
            loss, _ = task.loss(step)
        except DeadlineReached:  # work inside the step saw the budget spent: drop the step
            break
        opt.zero_grad(set_to_none=True)
        if loss.requires_grad:
            loss.backward()
            if grad_clip:
                nn.utils.clip_grad_norm_(params, grad_clip)
            opt.step()
        v = float(loss.detach())
        loss_avg = v if loss_avg is None else 0.9 * loss_avg + 0.1 * v
        step += 1
        if progress and deadline.elapsed >= next_report:
            print(f"adapt: step {step}, {deadline.elapsed:.0f}/{deadline.seconds:.0f} s, loss {loss_avg:.4f}",
                  file=sys.stderr, flush=True)
            next_report += deadline.seconds / 10
    model.eval()
    return {"steps": step, "loop_seconds": time.monotonic() - t0, "final_loss": loss_avg, "lr": lr, "seed": seed}


def save_adapted(model: nn.Module, payload: dict[str, Any], out: str | Path, record: dict[str, Any]) -> Path:
    """Save an adapted ``model`` (same registered name and config as the base ``payload``) to ``out``.

    The base checkpoint's ``data`` and ``metrics`` are kept (they describe what the base saw and
    scored); ``extra.adaptation`` holds ``record`` (budget, steps, seconds, seeds, base checksum).
    """
    from geoseek.checkpoint import save_checkpoint

    extra = {**payload.get("extra", {}), "adaptation": record}
    return save_checkpoint(out, model_name=payload["model"], config=payload["config"], model=model,
                           metrics=payload.get("metrics", {}), data=payload.get("data", {}),
                           train=payload.get("train", {}), extra=extra)


@contextmanager
def adapted_checkpoint(model: nn.Module, payload: dict[str, Any], record: dict[str, Any], near: str | Path) -> Iterator[Path]:
    """A temporary checkpoint file of the adapted ``model`` in a hidden folder beside ``near`` (removed on exit):
    what a build copies into its collection as ``model.pt``."""
    near = Path(near)
    near.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".geoseek-adapt-", dir=near) as tmp:
        yield save_adapted(model, payload, Path(tmp) / "adapted.pt", record)
