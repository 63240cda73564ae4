"""Helpers shared by the CLI modules."""

from __future__ import annotations

import argparse

from geoseek.argtypes import K, TILE_ZOOM, ZOOM, float_in, int_in  # noqa: F401  (re-exported for the CLI modules)
from geoseek.paths import default_data_dir  # noqa: F401  (re-exported for the CLI modules)


def subparsers(verb_parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    """The subcommand table of a verb (created on first use), e.g. ``subparsers(verbs["train"])``."""
    for action in verb_parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return verb_parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND")



def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object on the last line")


def comma_names(value: str | None) -> list[str] | None:
    """``"a, b"`` → ``["a", "b"]``; None or blank → None."""
    names = [v.strip() for v in (value or "").split(",") if v.strip()]
    return names or None
