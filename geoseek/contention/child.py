"""One workload in its own process: ``python -m geoseek.contention.child NAME SCALE REPEAT``.

Protocol on stdin/stdout: set the workload up and run it once (warm-up), print ``ready``, wait
for a line on stdin, time it ``REPEAT`` times, print one JSON line ``{"units", "seconds"}``
(the per-run lists). The parent starts every copy of a scenario this way, so all begin together.

A timed run repeats the workload until it has lasted :data:`MIN_SECONDS`: a workload of a tenth
of a second (100 sketch-map queries) is otherwise timed over a few scheduler slices, and its
ratios under contention swing by ±0.1 from run to run.
"""

from __future__ import annotations

import json
import sys
import time

MIN_SECONDS = 1.0
"""Shortest timed run, seconds (the workload is repeated within it)."""


def main(argv: list[str]) -> int:
    from geoseek.runtime.threads import configure_openmp_env

    configure_openmp_env()  # before torch loads
    name, scale, repeat = argv[0], float(argv[1]), int(argv[2])
    from geoseek.contention.workloads import WORKLOADS
    from geoseek.runtime.threads import apply_threads

    apply_threads("batch")
    run = WORKLOADS[name](scale)
    run()
    print("ready", flush=True)
    sys.stdin.readline()
    units, seconds = [], []
    for _ in range(repeat):
        t = time.perf_counter()
        done = run()
        while time.perf_counter() - t < MIN_SECONDS:
            done += run()
        units.append(done)
        seconds.append(time.perf_counter() - t)
    print(json.dumps({"units": units, "seconds": seconds}), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
