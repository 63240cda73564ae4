"""The engine the frozen float32 backbone runs in per query: ONNX Runtime, or TorchScript (torch).

Chosen once per process, from (first that is set) :func:`set_inference`, the ``GEOSEEK_INFERENCE``
environment variable, else ``auto``:

* ``auto`` / ``onnx``: ONNX Runtime (float32) when ``onnxruntime`` imports; where it does not (a
  broken install: it is a dependency) one warning, then torch.
* ``torch``: the TorchScript-frozen module, as before.

ONNX Runtime float32 runs the EfficientNet-Lite0 feature extractor about 2× faster than torch's
fastest float32 path on both AVX2-only and AVX-512 CPUs, with the same features (within 1e-4), so
results do not depend on the engine. It serves float32 only: a backbone that runs in bfloat16
(:func:`geoseek.runtime.precision.effective_dtype`, native bf16 CPUs only) stays on torch. When the
ONNX path fails at run time (export or session error), :func:`mark_unavailable` records it and
:func:`active_backend` answers ``torch`` from then on.
"""

from __future__ import annotations

import os
import threading
import warnings

ENV = "GEOSEEK_INFERENCE"
CHOICES = ("auto", "onnx", "torch")

_lock = threading.Lock()
_override: str | None = None
_resolved: str | None = None
_failed: str | None = None
_warned = False


def _check(value: str, source: str) -> str:
    v = value.strip().lower()
    v = {"ort": "onnx", "onnxruntime": "onnx", "torchscript": "torch"}.get(v, v)
    if v not in CHOICES:
        raise ValueError(f"{source} must be one of {', '.join(CHOICES)}, got {value!r}")
    return v


def set_inference(requested: str | None) -> None:
    """Override the engine for this process (None clears the override). Resets the cached choice."""
    global _override, _resolved
    with _lock:
        _override = None if requested is None else _check(requested, "inference")
        _resolved = None


def requested_backend() -> str:
    """What was asked for: the override, else ``$GEOSEEK_INFERENCE``, else "auto"."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV, "").strip()
    return _check(env, ENV) if env else "auto"


def onnxruntime_available() -> bool:
    """Whether ``import onnxruntime`` succeeds (imports it)."""
    try:
        import onnxruntime  # noqa: F401
    except Exception:  # noqa: BLE001 - ImportError, or a broken install
        return False
    return True


def resolve_backend() -> str:
    """"onnx" or "torch" for this process (decided on first call, then fixed; see the module doc)."""
    global _resolved, _warned
    if _resolved is None:
        with _lock:
            if _resolved is None:
                req = requested_backend()
                if req == "torch":
                    _resolved = "torch"
                elif onnxruntime_available():
                    _resolved = "onnx"
                else:
                    if not _warned:  # a dependency of geoseek: missing means a broken install
                        _warned = True
                        warnings.warn(f"onnxruntime cannot be imported ({ENV}={req}): the backbone runs "
                                      "in torch, about 2x slower", RuntimeWarning, stacklevel=2)
                    _resolved = "torch"
    return _resolved


def mark_unavailable(reason: str) -> None:
    """Record that the ONNX path failed in this process (warned once by the caller); torch from now on."""
    global _failed
    with _lock:
        if _failed is None:
            _failed = reason


def active_backend() -> str:
    """The engine float32 backbone calls use now: :func:`resolve_backend`, or "torch" after a failure."""
    return "torch" if _failed is not None else resolve_backend()


def failure() -> str | None:
    """Why the ONNX path was given up in this process, or None."""
    return _failed


def reset() -> None:
    """Forget the cached choice, the override and any recorded failure (tests)."""
    global _override, _resolved, _failed, _warned
    with _lock:
        _override = _resolved = _failed = None
        _warned = False
