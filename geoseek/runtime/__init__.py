"""Portable inference: what the CPU at hand can do, and how geoseek uses it.

* :mod:`~geoseek.runtime.hardware`: CPU model, ISA level, native bf16, cores actually available.
* :mod:`~geoseek.runtime.precision`: float32 or bfloat16, chosen once per process from the hardware
  (``GEOSEEK_PRECISION`` / ``geoseek --precision`` override).
* :mod:`~geoseek.runtime.backend`: the engine of the float32 per-query backbone, ONNX Runtime or
  torch (``GEOSEEK_INFERENCE=auto|onnx|torch``; auto = onnx where onnxruntime imports).
* :mod:`~geoseek.runtime.threads`: torch threads per kind of work, OpenMP waiting, and
  :func:`~geoseek.runtime.threads.parallel_chunks` (a few large chunks on a small thread pool).

:func:`describe_runtime` is the dict every benchmark's JSON includes. Nothing here runs at import.
"""

from __future__ import annotations

from typing import Any


def describe_runtime() -> dict[str, Any]:
    """``{cpu_model, isa, native_bf16, precision, inference, threads, cores_available}`` of this process now.

    ``inference`` is the float32 backbone's engine ("onnx" or "torch"); a bfloat16 backbone is torch.
    """
    from geoseek.runtime.backend import active_backend
    from geoseek.runtime.hardware import probe
    from geoseek.runtime.precision import resolve_precision
    from geoseek.runtime.threads import current_threads

    hw = probe()
    return {
        "cpu_model": hw.cpu_model,
        "isa": hw.isa,
        "native_bf16": hw.native_bf16,
        "precision": resolve_precision(),
        "inference": active_backend(),
        "threads": current_threads(),
        "cores_available": hw.cores_available,
    }


__all__ = ["describe_runtime"]
