"""The flags every ``geoseek build ...`` command shares: ``--workers``, ``--ray``, ``--resume``."""

from __future__ import annotations

import argparse
from typing import Any


def add_build_flags(parser: argparse.ArgumentParser, *, partition_size: int | None = None, unit: str = "items") -> None:
    """Add ``--workers N``, ``--ray [ADDRESS]``, ``--resume`` (and ``--partition-size``) to a build command."""
    from geoseek.argtypes import int_in

    parser.add_argument("--workers", type=int_in(1, 4096), default=None, metavar="N",
                        help="local worker processes (default: the cores available; 1: in this process)")
    parser.add_argument("--ray", nargs="?", const=True, default=None, metavar="ADDRESS",
                        help="run the partitions on a Ray cluster (a local one, bound to 127.0.0.1, "
                             "when no ADDRESS is given; needs the 'ray' package)")
    parser.add_argument("--resume", action="store_true",
                        help="keep the finished partitions of an interrupted build of the same output "
                             "(<out>.partial/); without it a leftover work folder is cleared")
    if partition_size is not None:
        parser.add_argument("--partition-size", type=int_in(1, 10**7), default=partition_size, metavar="N",
                            help=f"{unit} per partition (default {partition_size}); the output does not depend on it")


def build_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The engine keyword arguments of parsed build flags."""
    out = {"workers": args.workers, "ray": args.ray, "resume": bool(args.resume)}
    if getattr(args, "partition_size", None) is not None:
        out["partition_size"] = int(args.partition_size)
    return out
