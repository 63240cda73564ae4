"""What this CPU can do: model name, ISA level torch dispatches to, native bf16, usable cores.

The ISA level is torch's own (:func:`torch.backends.cpu.get_cpu_capability`), which honours
``ATEN_CPU_CAPABILITY`` (e.g. ``avx2`` to behave like a CPU without AVX-512). bf16 counts as
native only when three things hold: torch dispatches to an AVX-512 (x86) or ARM vector level, the
CPU advertises a bf16 instruction set (x86 ``avx512_bf16`` / ``amx_bf16``, ARM ``bf16``), and
oneDNN says it runs bf16. A capped capability (``ATEN_CPU_CAPABILITY=avx2``) is not native.

Cores available are the CPUs this process may run on (``os.sched_getaffinity``) further bounded by
a cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), rounded up.
"""

from __future__ import annotations

import math
import os
import platform
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
"""Where cgroup controllers are mounted (a module attribute so tests can point it elsewhere)."""

_X86_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
_ARM_BF16_FLAGS = ("bf16",)


@dataclass(frozen=True)
class Hardware:
    """The probe's answer. ``isa`` is torch's capability string (e.g. "AVX2", "AVX512", "DEFAULT")."""

    cpu_model: str
    isa: str
    cpu_flags: frozenset[str]
    onednn_bf16: bool
    native_bf16: bool
    cores_available: int


def cpu_info() -> tuple[str, frozenset[str]]:
    """(model name, flags) from ``/proc/cpuinfo`` (``platform.processor()`` elsewhere)."""
    model, flags = "", set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if not model and key in ("model name", "hardware", "cpu model"):
            model = value.strip()
        elif not flags and key in ("flags", "features"):
            flags = set(value.split())
    return model or platform.processor() or platform.machine() or "unknown", frozenset(flags)


def isa_level() -> str:
    """torch's CPU capability ("AVX512", "AVX2", "DEFAULT", "SVE256"...), honouring ATEN_CPU_CAPABILITY."""
    import torch

    try:
        return str(torch.backends.cpu.get_cpu_capability())
    except Exception:  # noqa: BLE001 - very old torch
        return "unknown"


def onednn_bf16_supported() -> bool:
    """Whether oneDNN (mkldnn) reports bf16 support on this CPU."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:  # noqa: BLE001 - built without mkldnn
        return False


def is_native_bf16(isa: str, flags: frozenset[str], onednn_bf16: bool, machine: str | None = None) -> bool:
    """The rule of the module docstring, as a pure function (tests call it directly)."""
    machine = (machine or platform.machine()).lower()
    if not onednn_bf16:
        return False
    isa = isa.upper()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        return isa.startswith("AVX512") and any(f in flags for f in _X86_BF16_FLAGS)
    if machine in ("aarch64", "arm64"):
        return isa != "DEFAULT" and any(f in flags for f in _ARM_BF16_FLAGS)
    return False


def _cgroup_v2_limit(root: Path) -> float | None:
    """CPUs allowed by ``cpu.max`` along this process's cgroup v2 path (the tightest), or None."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    rel = next((ln.split("::", 1)[1] for ln in lines if ln.startswith("0::")), "/")
    limit: float | None = None
    d = root / rel.lstrip("/")
    while True:
        f = d / "cpu.max"
        try:
            quota, _, period = f.read_text().strip().partition(" ")
            if quota != "max" and float(period or 100000) > 0:
                cpus = float(quota) / float(period or 100000)
                limit = cpus if limit is None else min(limit, cpus)
        except (OSError, ValueError):
            pass
        if d == root or root not in d.parents:
            break
        d = d.parent
    return limit


def _cgroup_v1_limit(root: Path) -> float | None:
    """CPUs allowed by the v1 CFS quota (``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``), or None."""
    for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):
        d = root / name
        try:
            quota = int((d / "cpu.cfs_quota_us").read_text().strip())
            period = int((d / "cpu.cfs_period_us").read_text().strip())
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            return quota / period
    return None


def cgroup_cpu_limit(root: Path | None = None) -> float | None:
    """CPUs the cgroup quota allows (e.g. 1.5), None when unlimited or unknown."""
    root = CGROUP_ROOT if root is None else root
    v2 = _cgroup_v2_limit(root)
    return v2 if v2 is not None else _cgroup_v1_limit(root)


def affinity_cores() -> int:
    """CPUs this process may be scheduled on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_cores() -> int:
    """Cores this process can actually use: affinity ∩ cgroup quota (quota rounded up), ≥ 1."""
    n = affinity_cores()
    quota = cgroup_cpu_limit()
    if quota is not None:
        n = min(n, max(1, math.ceil(quota - 1e-9)))
    return max(1, n)


@lru_cache(maxsize=1)
def probe() -> Hardware:
    """The hardware description, probed once per process."""
    model, flags = cpu_info()
    isa = isa_level()
    onednn = onednn_bf16_supported()
    return Hardware(
        cpu_model=model,
        isa=isa,
        cpu_flags=flags,
        onednn_bf16=onednn,
        native_bf16=is_native_bf16(isa, flags, onednn),
        cores_available=available_cores(),
    )
