"""The precision the per-query encoders run in: float32, or bfloat16 where the CPU runs it natively.

Chosen once per process, from (first that is set) :func:`set_precision` (the CLI's
``geoseek --precision``), the ``GEOSEEK_PRECISION`` environment variable, else ``auto``:

* ``auto``: bfloat16 where :func:`geoseek.runtime.hardware.probe` says bf16 is native (AVX512-BF16 /
  AMX / ARM BF16 and oneDNN agrees), float32 everywhere else. Emulated bf16 is ~40× slower than
  float32 (measured on an AVX2-only EPYC), so it is never chosen by itself.
* ``float32``: always float32.
* ``bfloat16``: bfloat16 even where it is emulated (warned once: slow).

A model keeps the precision it was trained with as its *fast* precision; :func:`effective_dtype`
maps it to what runs here (a bf16-trained backbone runs in float32 where bf16 is not native).
"""

from __future__ import annotations

import os
import threading
import warnings

ENV = "GEOSEEK_PRECISION"
CHOICES = ("auto", "float32", "bfloat16")

_lock = threading.Lock()
_resolved: str | None = None
_override: str | None = None
_warned = False


def _check(value: str, source: str) -> str:
    v = value.strip().lower()
    aliases = {"fp32": "float32", "bf16": "bfloat16"}
    v = aliases.get(v, v)
    if v not in CHOICES:
        raise ValueError(f"{source} must be one of {', '.join(CHOICES)}, got {value!r}")
    return v


def set_precision(requested: str | None) -> None:
    """Override the precision for this process (the CLI flag); None clears the override. Resets the cache."""
    global _override, _resolved
    with _lock:
        _override = None if requested is None else _check(requested, "--precision")
        _resolved = None


def requested_precision() -> str:
    """What was asked for: the override, else ``$GEOSEEK_PRECISION``, else "auto"."""
    if _override is not None:
        return _override
    env = os.environ.get(ENV, "").strip()
    return _check(env, ENV) if env else "auto"


def resolve_precision(requested: str | None = None) -> str:
    """"float32" or "bfloat16" for this process.

    With ``requested`` (auto|float32|bfloat16) the answer is computed for it and not cached;
    without, the process-wide choice (decided on first call, then fixed).
    """
    global _resolved, _warned
    if requested is not None:
        return _decide(_check(requested, "precision"))
    if _resolved is None:
        with _lock:
            if _resolved is None:
                _resolved = _decide(requested_precision())
    return _resolved


def _decide(req: str) -> str:
    global _warned
    from geoseek.runtime.hardware import probe

    native = probe().native_bf16
    if req == "auto":
        return "bfloat16" if native else "float32"
    if req == "bfloat16" and not native and not _warned:
        _warned = True
        warnings.warn(
            "bfloat16 was requested but this CPU has no native bf16 (or torch's ISA is capped): "
            "it is emulated and much slower than float32",
            RuntimeWarning,
            stacklevel=3,
        )
    return req


def effective_dtype(trained: str) -> str:
    """The dtype a component trained in ``trained`` ("float32"/"bfloat16") runs in here.

    float32-trained parts stay float32 (their fast precision); bf16-trained parts run bf16
    only when the process precision is bfloat16, float32 otherwise.
    """
    if trained == "float32":
        return "float32"
    return trained if resolve_precision() == "bfloat16" else "float32"


def reset() -> None:
    """Forget the cached choice and the override (tests)."""
    global _resolved, _override, _warned
    with _lock:
        _resolved = _override = None
        _warned = False
