"""Bounded argparse types for numeric options, shared by the CLI and the query modes' flags.

A value out of range is a clear usage error (exit 2), never a traceback or an allocation of that size.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_in(lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``lo..hi`` (inclusive), else a clear usage error."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer in {lo}..{hi}, got {text!r}") from None
        if not lo <= value <= hi:
            raise argparse.ArgumentTypeError(f"must be in {lo}..{hi}, got {value}")
        return value

    parse.__name__ = f"integer in {lo}..{hi}"
    return parse


def float_in(lo: float, hi: float, *, lo_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in ``lo..hi`` (``lo`` excluded when ``lo_open``)."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or not (lo < value if lo_open else lo <= value) or value > hi:
            raise argparse.ArgumentTypeError(f"must be in {'(' if lo_open else '['}{lo:g}, {hi:g}], got {text}")
        return value

    parse.__name__ = "number"
    return parse


ZOOM = int_in(0, 22)
"""argparse type of an XYZ zoom level (0..22)."""

TILE_ZOOM = int_in(1, 20)
"""argparse type of the zoom of a tile collection (1..20: deeper zooms make millions of tiles per km²)."""

K = int_in(1, 10**12)
"""argparse type of a result count ``-k`` (searches also clamp it to the collection's size)."""
