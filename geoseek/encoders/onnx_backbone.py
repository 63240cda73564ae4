"""The frozen EfficientNet-Lite0 feature extractor in ONNX Runtime (float32), for per-query speed.

ONNX Runtime runs the backbone about 2× faster than torch's fastest float32 path (TorchScript-frozen,
channels-last) on one 224-px image, on AVX2-only and AVX-512 CPUs alike, with the same features
(within 1e-4): ``bench/backbone_paths.py``. :func:`geoseek.encoders.sketch_image.image_backbone_features`
calls :func:`run` when :func:`geoseek.runtime.backend.active_backend` is "onnx" and the backbone
runs in float32.

* **Export, once per machine**: ``forward_features`` is exported (``torch.onnx.export``, TorchScript
  exporter, opset :data:`OPSET`, dynamic batch axis) to ``<cache>/onnx/`` (:func:`geoseek.paths.user_cache_dir`),
  named by a checksum of the backbone's weights, the torch version and the opset
  (:func:`cache_path`). Written to a temporary file then renamed, so concurrent processes are safe;
  a new export is checked against torch before it is used.
* **Sessions, per process**: built lazily under a lock, one per intra-op thread count, which is the
  calling thread's torch thread count (:func:`geoseek.runtime.threads.current_threads`: set by the
  threading policy per kind of work: 1 per service request, 1 per chunk worker, the cores available
  for a batch job). Idle ORT threads do not spin (``session.intra_op.allow_spinning=0``), so they
  leave the CPU to whoever shares it; graph optimizations are all on.
* **Fallback**: when onnxruntime is missing, or export or the session fails, :func:`run` returns
  None after one warning, and the caller uses torch (never an error).

Shapes: input (N, 3, 224, 224) float32 normalized to [-1, 1]; output (N, 1280, 7, 7) float32.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any

import torch

OPSET = 17
"""ONNX opset of the exported graph."""
FORMAT = 1
"""Bumped when the exported graph changes for a reason the weights do not show (code, names)."""
ALLOW_SPINNING = False
"""Whether idle ORT intra-op threads busy-wait for work. Off: spinning threads take the CPU from
whoever shares the cores (see :mod:`geoseek.runtime.threads`)."""
CHECK_TOLERANCE = 1e-3
"""A fresh export is used only when its features on a test input are within this fraction of the
features' scale (max |ort - torch| / max |torch|) of torch's."""
INPUT, OUTPUT = "x", "y"

_lock = threading.RLock()
_sessions: dict[tuple[int, int], Any] = {}
_paths: dict[int, Path] = {}
_warned = False


def weights_checksum(module: torch.nn.Module) -> str:
    """A hex digest (16 chars) of ``module``'s state: names, dtypes, shapes and values."""
    h = hashlib.blake2b(digest_size=8)
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def cache_dir() -> Path:
    """``<user cache>/onnx``: where exported backbones are kept."""
    from geoseek.paths import user_cache_dir

    return user_cache_dir() / "onnx"


def cache_path(module: torch.nn.Module) -> Path:
    """The ONNX file of ``module``: named by its weights' checksum, the torch version and the opset."""
    torch_version = torch.__version__.replace("+", "_")
    return cache_dir() / f"lite0-features-{weights_checksum(module)}-torch{torch_version}-opset{OPSET}-v{FORMAT}.onnx"


def _example() -> torch.Tensor:
    """A deterministic (2, 3, 224, 224) input in [-1, 1] (export example and export check)."""
    from geoseek.encoders.sketch_image import IMAGE_SIZE

    g = torch.Generator().manual_seed(0)
    return torch.rand(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=g) * 2 - 1


def export(module: torch.nn.Module, path: Path) -> Path:
    """Export ``module.forward_features`` (float32, eval) to ``path`` atomically; returns ``path``."""
    from geoseek.encoders.sketch_image import _Features

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the legacy-exporter deprecation and tracer notices
            torch.onnx.export(
                _Features(module).eval(),
                (_example()[:1],),
                tmp,
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT],
                output_names=[OUTPUT],
                dynamic_axes={INPUT: {0: "n"}, OUTPUT: {0: "n"}},
            )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads)
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    spin = "1" if ALLOW_SPINNING else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.log_severity_level = 3  # errors only
    return so


def _open(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), _session_options(threads), providers=["CPUExecutionProvider"])


def _check(sess: Any, module: torch.nn.Module) -> None:
    """Raise when ``sess`` does not reproduce ``module.forward_features`` on the example input."""
    x = _example()
    with torch.no_grad():
        ref = module.forward_features(x)
    got = torch.from_numpy(sess.run([OUTPUT], {INPUT: x.numpy()})[0])
    err = float((got - ref).abs().max()) / max(float(ref.abs().max()), 1e-12)
    if got.shape != ref.shape or not err <= CHECK_TOLERANCE:
        raise RuntimeError(f"exported backbone differs from torch (shape {tuple(got.shape)}, relative error {err:.2e})")


def _build(threads: int) -> Any:
    """A session of this process's backbone, exported (and checked) first when not cached yet."""
    from geoseek.encoders.sketch_image import image_backbone

    pid = os.getpid()
    module = image_backbone()
    path = _paths.get(pid) or cache_path(module)
    if path.is_file():
        try:
            sess = _open(path, threads)
            _paths[pid] = path
            return sess
        except Exception:  # noqa: BLE001 - an unreadable cached file: export it again
            pass
    export(module, path)
    sess = _open(path, threads)
    try:
        _check(sess, module)
    except Exception:
        path.unlink(missing_ok=True)
        raise
    _paths[pid] = path
    return sess


def _give_up(exc: BaseException) -> None:
    global _warned
    from geoseek.runtime.backend import mark_unavailable

    reason = f"{type(exc).__name__}: {exc}"
    mark_unavailable(reason)
    if not _warned:
        _warned = True
        warnings.warn(f"ONNX Runtime backbone unavailable ({reason}); using torch", RuntimeWarning, stacklevel=3)


def session(threads: int | None = None) -> Any | None:
    """The ORT session for ``threads`` intra-op threads (default: the calling thread's torch threads),
    built on first use in this process; None (after one warning) when ONNX Runtime cannot serve."""
    from geoseek.runtime.backend import failure

    if failure() is not None:
        return None
    if threads is None:
        from geoseek.runtime.threads import current_threads

        threads = current_threads()
    key = (os.getpid(), max(1, int(threads)))  # ORT's thread pools do not survive a fork
    sess = _sessions.get(key)
    if sess is not None:
        return sess
    with _lock:
        if key in _sessions:
            return _sessions[key]
        if failure() is not None:
            return None
        try:
            sess = _build(key[1])
        except Exception as exc:  # noqa: BLE001 - any failure means: use torch
            _give_up(exc)
            return None
        _sessions[key] = sess
        return sess


def run(x: torch.Tensor) -> torch.Tensor | None:
    """(N, 3, 224, 224) normalized float32 images → (N, 1280, 7, 7) float32 features, or None when
    ONNX Runtime cannot serve (the caller then uses torch)."""
    sess = session()
    if sess is None:
        return None
    arr = x.detach().to(torch.float32).contiguous().numpy()
    try:
        out = sess.run([OUTPUT], {INPUT: arr})[0]
    except Exception as exc:  # noqa: BLE001
        _give_up(exc)
        return None
    return torch.from_numpy(out)


def reset() -> None:
    """Drop this process's sessions and cached path, and the warning flag (tests)."""
    global _warned
    with _lock:
        _sessions.clear()
        _paths.clear()
        _warned = False
