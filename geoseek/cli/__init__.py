"""The ``geoseek`` command line: one entry point, subcommands contributed by modules.

Verbs are fixed here (``collection``, ``build``, ``search``, ``train``, ``eval``, ``bench``,
``serve``); every module of this package that defines ``register(verbs)`` adds its
subcommands to them, so each capability keeps its CLI beside nothing else's. Modules are
discovered when :func:`main` runs, never at import time.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import re
import sys
from collections.abc import Sequence
from typing import Any

from geoseek import __version__

VERBS = {
    "collection": "inspect and edit collections (info, add, search, remove)",
    "build": "build a collection from a data source",
    "search": "search a collection by vector, item, sketch, sketch map, image or location",
    "train": "train a model",
    "eval": "evaluate a model on a paper's protocol (--json for machine-readable figures)",
    "bench": "benchmarks that compare ours with baselines side by side (--json)",
    "serve": "start the HTTP API and the web map",
}



def _user_errors() -> tuple[type[BaseException], ...]:
    from geoseek.errors import GeoseekError
    from geoseek.registry import UnknownNameError

    return (GeoseekError, ValueError, FileNotFoundError, UnknownNameError, NotADirectoryError, PermissionError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geoseek",
        description="Find places and geographic scenes by sketch, by image, or by location. "
        "Coordinates are LON,LAT in degrees (WGS84).",
    )
    parser.add_argument("--version", action="version", version=f"geoseek {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    parser.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default=None,
                        help="precision of the per-query encoders (default: $GEOSEEK_PRECISION, else auto: "
                        "bfloat16 only where the CPU runs it natively, float32 elsewhere)")
    sub = parser.add_subparsers(dest="verb", metavar="COMMAND")
    verbs: dict[str, Any] = {}
    for verb, help_text in VERBS.items():
        p = sub.add_parser(verb, help=help_text, description=help_text)
        verbs[verb] = p
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(verbs)
    _add_wait_flags(verbs["build"])
    _add_memory_budget_flags(verbs["build"])
    return parser


def _add_memory_budget_flags(build: argparse.ArgumentParser) -> None:
    """Every ``build`` subcommand gets ``--memory-budget``: :func:`main` hands it to the FAISS index the
    build creates through ``$GEOSEEK_INDEX_MEMORY_BUDGET`` (see :mod:`geoseek.index.ivfpq`)."""
    for action in build._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                if not any("--memory-budget" in a.option_strings for a in sub._actions):
                    sub.add_argument("--memory-budget", help="RAM the collection's FAISS index may hold, e.g. "
                                     "2G or 512M (default $GEOSEEK_INDEX_MEMORY_BUDGET, else a quarter of RAM); "
                                     "above it the index is IVF-PQ with exact re-ranking")


def _add_wait_flags(build: argparse.ArgumentParser) -> None:
    """Every ``build`` subcommand writes a collection: give each one ``--wait`` (queue behind another
    writer of the same output instead of failing; see :mod:`geoseek.collection.locking`)."""
    for action in build._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                if not any("--wait" in a.option_strings for a in sub._actions):
                    sub.add_argument("--wait", action="store_true",
                                     help="wait while another process writes the same output instead of failing")


_ANNOTATE_RUNTIME = False
"""Set by :func:`main` for ``bench`` and ``eval``: their JSON names the CPU, precision and threads."""


def emit_json(obj: Any) -> None:
    """Print ``obj`` as one JSON object on one line (the last line of an eval/bench command).

    For ``bench`` and ``eval`` commands a dict gains ``"runtime"``
    (:func:`geoseek.runtime.describe_runtime`: CPU model, ISA, native bf16, precision, threads).
    """
    if _ANNOTATE_RUNTIME and isinstance(obj, dict) and "runtime" not in obj:
        from geoseek.runtime import describe_runtime

        obj = {**obj, "runtime": describe_runtime()}
    print(json.dumps(obj, default=_json_default, sort_keys=False), flush=True)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "__fspath__"):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


_NEGATIVE_LIST = re.compile(r"^-\d*\.?\d+(,-?\d*\.?\d+)+$")


def _attach_negative_lists(argv: Sequence[str]) -> list[str]:
    """``--near -54.8,-25.1`` → ``--near=-54.8,-25.1``: argparse would take the value for an option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_LIST.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from geoseek.runtime.threads import configure_openmp_env, configure_threads_env

    configure_openmp_env()  # a short OpenMP spin: libgomp reads it when torch / FAISS load, below
    configure_threads_env("batch")  # threads from the cores this process may use, not the machine's
    parser = build_parser()
    args = parser.parse_args(_attach_negative_lists(sys.argv[1:] if argv is None else argv))
    if args.precision is not None:
        from geoseek.runtime.precision import ENV, set_precision

        set_precision(args.precision)
        os.environ[ENV] = args.precision  # child processes (benchmarks, workers) inherit it
    global _ANNOTATE_RUNTIME
    _ANNOTATE_RUNTIME = args.verb in ("bench", "eval")
    func = getattr(args, "func", None)
    if func is None:
        # a verb without a subcommand, or nothing at all: show the relevant help
        target = parser
        if args.verb:
            target = next(
                a.choices[args.verb] for a in parser._actions if isinstance(a, argparse._SubParsersAction)
            )
        target.print_help(sys.stderr)
        return 2
    if getattr(args, "wait", False) is True:
        from geoseek.collection.locking import set_default_wait

        set_default_wait(True)
    budget = getattr(args, "memory_budget", None) if args.verb == "build" else None
    saved_budget = os.environ.get("GEOSEEK_INDEX_MEMORY_BUDGET")
    try:
        if budget:  # read by the FAISS index the build creates (and recorded in its config.json)
            from geoseek.index.ivfpq import parse_memory_budget

            os.environ["GEOSEEK_INDEX_MEMORY_BUDGET"] = f"{parse_memory_budget(budget) / 2**20:.3f}"
        rc = func(args)
    except KeyboardInterrupt:
        print("geoseek: interrupted", file=sys.stderr)
        return 130
    except _user_errors() as exc:
        if args.debug:
            raise
        print(f"geoseek: error: {exc}", file=sys.stderr)
        return 2
    finally:
        if budget:
            if saved_budget is None:
                os.environ.pop("GEOSEEK_INDEX_MEMORY_BUDGET", None)
            else:
                os.environ["GEOSEEK_INDEX_MEMORY_BUDGET"] = saved_budget
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
