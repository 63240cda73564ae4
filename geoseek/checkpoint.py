"""Checkpoints: a trained model saved with its config, the data it saw and its validation metrics.

A checkpoint is one ``.pt`` file holding a dict::

    {"format": 1, "model": <registered name>, "config": {...constructor kwargs...},
     "state_dict": {...}, "metrics": {...}, "data": {...}, "train": {...}, "created": iso8601}

Writes are atomic (temporary file, then rename). ``load_model`` rebuilds the module through
the model registry, so a checkpoint needs no pickled classes.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = 1
ASSETS = Path(__file__).parent / "assets" / "models"


class CheckpointError(ValueError):
    """A checkpoint file is missing, corrupt, or of an unknown format."""


def save_checkpoint(
    path: str | Path,
    *,
    model_name: str,
    config: dict[str, Any],
    model: nn.Module,
    metrics: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Atomically write ``model`` (registered as ``model_name`` and built from ``config``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "model": model_name,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metrics": dict(metrics or {}),
        "data": dict(data or {}),
        "train": dict(train or {}),
        "extra": dict(extra or {}),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    return _atomic_save(payload, path)


def update_checkpoint_extra(path: str | Path, **extra: Any) -> Path:
    """Atomically merge ``extra`` into the checkpoint's ``extra`` (weights and everything else unchanged)."""
    payload = read_checkpoint(path)
    payload["extra"] = {**payload.get("extra", {}), **extra}
    return _atomic_save(payload, Path(path))


def _atomic_save(payload: dict[str, Any], path: Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename it over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict; raises :class:`CheckpointError` with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds on a corrupt file
        raise CheckpointError(f"{path} is not a readable geoseek checkpoint: {exc}") from None
    if not isinstance(payload, dict) or "model" not in payload or "state_dict" not in payload:
        raise CheckpointError(f"{path} is not a geoseek checkpoint (no model/state_dict)")
    if payload.get("format", 0) > FORMAT:
        raise CheckpointError(f"{path} has checkpoint format {payload['format']}, newer than {FORMAT}: upgrade geoseek")
    return payload


def resolve_checkpoint(name_or_path: str | Path, task: str) -> Path:
    """``"default"`` → the committed default for ``task`` (``assets/models/<task>-default.pt``), else a path."""
    if str(name_or_path) == "default":
        path = ASSETS / f"{task}-default.pt"
        if not path.is_file():
            raise CheckpointError(f"no default {task} model is installed (expected {path}); train one with `geoseek train`")
        return path
    return Path(name_or_path)


def load_model(name_or_path: str | Path, task: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model from a checkpoint (path, or ``"default"`` with ``task``); returns (model in eval mode, payload)."""
    from geoseek.encoders.registry import MODELS

    path = resolve_checkpoint(name_or_path, task) if task else Path(name_or_path)
    payload = read_checkpoint(path)
    model = MODELS.create(payload["model"], **payload["config"])
    model.load_state_dict(payload["state_dict"])
    model.eval()
    payload["path"] = str(path)
    payload["checksum"] = file_checksum(path)
    return model, payload


def file_checksum(path: str | Path) -> str:
    """``sha256:<hex>`` of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


class ModelCache:
    """Models loaded from checkpoint files, kept per (path, size, mtime) for the life of a process.

    Thread-safe: a server's concurrent first requests load a model once (the others wait) rather
    than each its own copy. Keeps the ``max_models`` most recently used models. The key is read
    from the file's metadata, not hashed from its bytes, so a lookup costs one ``stat``.
    """

    def __init__(self, max_models: int = 4) -> None:
        self.max_models = max_models
        self._models: OrderedDict[tuple[str, int, int], nn.Module] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str | Path) -> nn.Module:
        """The model of checkpoint ``path`` (eval mode), loading it on first use."""
        p = Path(path)
        st = p.stat()
        key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = load_model(p)[0]
                self._models[key] = model
                while len(self._models) > self.max_models:
                    self._models.popitem(last=False)
            self._models.move_to_end(key)
            return model
