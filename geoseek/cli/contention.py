"""``geoseek bench contention``: throughput of each workload quiet, beside a twin copy and beside
CPU-bound competitors (see :mod:`geoseek.contention.runner`)."""

from __future__ import annotations

import argparse

from geoseek.cli._util import add_json_flag, subparsers


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    from geoseek.contention.workloads import FULL

    sub = subparsers(verbs["bench"])
    p = sub.add_parser(
        "contention", help="throughput when the cores are shared: quiet, twin, 1 and 2 competitors per core",
        description="Each workload runs in its own process, quiet, as two copies at once (twin), and beside one "
        "and two busy-looping processes per available core; throughput per geoseek copy and its ratio to "
        "quiet. Workloads at --scale 1: " + ", ".join(f"{k} {v:,}" for k, v in FULL.items()) + ".",
    )
    p.add_argument("--workloads", default=",".join(FULL), help="comma-separated subset (default: all)")
    p.add_argument("--scale", type=float, default=1.0, help="shrink every workload by this factor (0 < s <= 1; tests use 0.01)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per copy; throughput = the median (default 3)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.contention import runner
    from geoseek.contention.workloads import FULL
    from geoseek.errors import InvalidInputError

    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in names if w not in FULL]
    if not names or unknown:
        raise InvalidInputError(f"unknown workload(s) {unknown or names}; choose from {', '.join(FULL)}")
    if not 0 < args.scale <= 1:
        raise InvalidInputError(f"--scale must be in (0, 1], got {args.scale}")
    if args.repeat < 1:
        raise InvalidInputError("--repeat must be >= 1")
    res = runner.run(names, scale=args.scale, repeat=args.repeat)
    print(runner.table(res))
    if args.json:
        emit_json(res)
    return 0
