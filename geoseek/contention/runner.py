"""Run each workload quiet, as two copies at once, and beside CPU-bound competitors; report ratios.

Scenarios (all processes started and stopped here):

* ``quiet``: one copy alone.
* ``twin``: two copies of the same workload at once (each one's throughput; the mean is reported).
* ``one_per_core`` / ``two_per_core``: one copy beside 1 or 2 busy-looping ``python -c`` processes
  per available core.

Throughput is units per second over the timed runs of each copy (median of ``repeat`` runs, each
at least a second long); a scenario's ratio is to the mean of the quiet runs just before and after it.
Goals of issue 20, as ratios to quiet: ≥ 0.4 twin, ≥ 0.45 one per core, ≥ 0.28 two per core.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

SCENARIOS = ("quiet", "twin", "one_per_core", "two_per_core")
GOALS = {"twin": 0.4, "one_per_core": 0.45, "two_per_core": 0.28}
BUSY = "while True: pass"


class ContentionError(RuntimeError):
    """A workload process failed."""


def _start_copy(name: str, scale: float, repeat: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "geoseek.contention.child", name, repr(scale), str(repeat)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ),
    )


def _wait_ready(p: subprocess.Popen, timeout: float) -> None:
    line = p.stdout.readline() if p.stdout else ""
    if line.strip() != "ready":
        err = p.stderr.read() if p.stderr else ""
        raise ContentionError(f"workload process failed before it was ready: {err.strip()[-2000:]}")


def _result(p: subprocess.Popen, timeout: float) -> dict[str, Any]:
    out, err = p.communicate(timeout=timeout)
    if p.returncode != 0:
        raise ContentionError(f"workload process exited {p.returncode}: {err.strip()[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _throughput(res: dict[str, Any]) -> float:
    rates = sorted(u / max(s, 1e-9) for u, s in zip(res["units"], res["seconds"]))
    return rates[len(rates) // 2]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.kill()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


def run_scenario(name: str, scenario: str, scale: float, repeat: int, cores: int, timeout: float = 1800) -> list[float]:
    """Throughputs (units/s) of each geoseek copy of workload ``name`` in ``scenario``."""
    copies = 2 if scenario == "twin" else 1
    busy = {"one_per_core": cores, "two_per_core": 2 * cores}.get(scenario, 0)
    workers: list[subprocess.Popen] = []
    competitors: list[subprocess.Popen] = []
    try:
        workers = [_start_copy(name, scale, repeat) for _ in range(copies)]
        for p in workers:
            _wait_ready(p, timeout)
        competitors = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
        if competitors:
            time.sleep(0.2)  # let the competitors get going
        for p in workers:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        return [_throughput(_result(p, timeout)) for p in workers]
    finally:
        _stop(competitors)
        _stop(workers)


def run(workloads: list[str], scale: float = 1.0, repeat: int = 3, scenarios: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    """The benchmark's JSON: the runtime description, then per workload ``quiet`` (the median of the
    quiet runs, ``quiet_runs``) and per scenario ``{"throughput", "ratio", "quiet_around",
    "copies"}``: throughput per geoseek copy (units/s) and its ratio to the mean of the quiet runs
    just before and just after it."""
    from geoseek.contention.workloads import UNITS
    from geoseek.runtime import describe_runtime
    from geoseek.runtime.hardware import available_cores

    cores = available_cores()
    out: dict[str, Any] = {"runtime": describe_runtime(), "scale": scale, "repeat": repeat, "goals": GOALS}
    for name in workloads:
        row: dict[str, Any] = {"unit": f"{UNITS[name]}/s"}
        # quiet is measured before every scenario and after the last, and each scenario is judged
        # against the two quiet runs around it: a shared host drifts by tens of percent within
        # minutes, and one quiet run at the start made ratios above 1 / 2 / 3 contenders swing
        quiets = [run_scenario(name, "quiet", scale, repeat, cores)[0]]
        for sc in scenarios:
            if sc == "quiet":
                continue
            per_copy = run_scenario(name, sc, scale, repeat, cores)
            quiets.append(run_scenario(name, "quiet", scale, repeat, cores)[0])
            around = (quiets[-2] + quiets[-1]) / 2
            mean = sum(per_copy) / len(per_copy)
            row[sc] = {
                "throughput": round(mean, 3),
                "ratio": round(mean / around, 3) if around > 0 else None,
                "quiet_around": round(around, 3),
                "copies": [round(t, 3) for t in per_copy],
                "competitors": {"one_per_core": cores, "two_per_core": 2 * cores}.get(sc, 0),
            }
        row["quiet"] = round(sorted(quiets)[len(quiets) // 2], 3)
        row["quiet_runs"] = [round(q, 3) for q in quiets]
        row["meets_goals"] = all(row[sc]["ratio"] is not None and row[sc]["ratio"] >= g
                                 for sc, g in GOALS.items() if sc in row)
        out[name] = row
    return out


def table(res: dict[str, Any]) -> str:
    """A plain-text table of ``run``'s result."""
    rt = res["runtime"]
    lines = [f"CPU {rt['cpu_model']} ({rt['isa']}, native bf16: {rt['native_bf16']}), precision {rt['precision']}, "
             f"threads {rt['threads']}, cores available {rt['cores_available']}",
             f"{'workload':<10} {'unit':<12} {'quiet':>12} " + " ".join(f"{s:>14}" for s in SCENARIOS[1:])]
    for name, row in res.items():
        if not isinstance(row, dict) or "quiet" not in row:
            continue
        cells = " ".join(f"{row[s]['ratio']:>14.2f}" if s in row else f"{'-':>14}" for s in SCENARIOS[1:])
        lines.append(f"{name:<10} {row['unit']:<12} {row['quiet']:>12.1f} {cells}")
    lines.append("(scenario columns: throughput per geoseek copy as a ratio to quiet)")
    return "\n".join(lines)
