"""Query modes: every way to search a collection (by vector, item, sketch, image, location...).

Each module ``geoseek/search/<mode>.py`` defines a module-level ``MODE = QueryMode(...)`` (or
``MODES = [...]`` for several) and a plain Python function the HTTP routes call (e.g.
``search_near(collection, lon, lat, k, filter) -> list[Hit]``). ``geoseek search COLLECTION``
discovers the modes with :func:`query_modes` when it runs (never at import time), adds each
mode's flags, and runs the one mode whose ``selected(args)`` is true. Keep heavy imports
(torch...) inside the functions so discovery stays fast.

Common arguments every mode can read from ``args``: ``args.k`` (int) and ``args.filter``
(:class:`geoseek.index.base.Filter` or None), built from ``--bbox``, ``--radius`` and ``--label``.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from geoseek.errors import InvalidInputError
from geoseek.geo import BBox, CoordinateError
from geoseek.index.base import Filter, Radius

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit


@dataclass(frozen=True)
class QueryMode:
    """One way to query a collection from ``geoseek search``.

    Attributes:
        name: short name ("vector", "near", "sketch"...), shown in errors and ``--json`` output.
        modality: collection modalities it can search (a string, a tuple, or None for any).
        add_arguments: adds the mode's flags to the ``geoseek search`` parser (unique flag names).
        selected: true when the parsed args ask for this mode (e.g. ``args.near is not None``).
        run: ``run(collection, args) -> list[Hit]``; use ``args.k`` and ``args.filter``.
        help: one line for listings.
    """

    name: str
    modality: str | tuple[str, ...] | None
    add_arguments: Callable[[argparse.ArgumentParser], None]
    selected: Callable[[argparse.Namespace], bool]
    run: Callable[[Collection, argparse.Namespace], list[Hit]]
    help: str = ""

    def accepts(self, modality: str | None) -> bool:
        if self.modality is None:
            return True
        allowed = (self.modality,) if isinstance(self.modality, str) else tuple(self.modality)
        return modality in allowed

    def check(self, collection: Collection) -> None:
        """Raise InvalidInputError if ``collection``'s modality is not one this mode searches."""
        modality = collection.manifest.get("modality")
        if not self.accepts(modality):
            raise InvalidInputError(
                f"search by {self.name} works on {self.modality} collections; "
                f"{collection.name} holds {modality!r}"
            )


def query_modes(package: str = __name__) -> dict[str, QueryMode]:
    """Discover the query modes of the modules of ``package`` (imported now), by name."""
    pkg = importlib.import_module(package)
    found: dict[str, QueryMode] = {}
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{package}.{info.name}")
        modes: list[Any] = list(getattr(module, "MODES", []))
        if getattr(module, "MODE", None) is not None:
            modes.append(module.MODE)
        for mode in modes:
            if not isinstance(mode, QueryMode):
                raise TypeError(f"{package}.{info.name}: MODE must be a QueryMode, got {type(mode).__name__}")
            if mode.name in found:
                raise ValueError(f"query mode {mode.name!r} is defined twice")
            found[mode.name] = mode
    return found


def select_mode(modes: Iterable[QueryMode], args: argparse.Namespace) -> QueryMode:
    """The one selected mode; InvalidInputError naming the choices if none or several are."""
    modes = list(modes)
    chosen = [m for m in modes if m.selected(args)]
    if len(chosen) == 1:
        return chosen[0]
    names = ", ".join(m.name for m in modes)
    if not chosen:
        raise InvalidInputError(f"say what to search by: exactly one query mode is needed (modes: {names})")
    raise InvalidInputError(
        f"give exactly one query mode, got {len(chosen)}: {', '.join(m.name for m in chosen)}"
    )


def make_filter(
    bbox: str | Sequence[float] | BBox | None = None,
    radius: str | Sequence[float] | Radius | None = None,
    labels: str | Iterable[str] | None = None,
) -> Filter | None:
    """Build a :class:`Filter` from CLI / HTTP forms: bbox "W,S,E,N" or 4 numbers; radius
    "LON,LAT,METRES" or 3 numbers; labels a name, a comma list or an iterable. None if empty.
    Bad values raise InvalidInputError."""
    try:
        if isinstance(bbox, str):
            bbox = BBox.parse(bbox)
        elif bbox is not None and not isinstance(bbox, BBox):
            vals = [float(v) for v in bbox]
            if len(vals) != 4:
                raise CoordinateError(f"bbox needs 4 numbers W,S,E,N, got {len(vals)}")
            bbox = BBox(*vals)
        if isinstance(radius, str):
            radius = Radius.parse(radius)
        elif radius is not None and not isinstance(radius, Radius):
            vals = [float(v) for v in radius]
            if len(vals) != 3:
                raise CoordinateError(f"radius needs 3 numbers LON,LAT,METRES, got {len(vals)}")
            radius = Radius(*vals)
    except (CoordinateError, TypeError, ValueError) as exc:
        raise InvalidInputError(str(exc)) from None
    if isinstance(labels, str):
        labels = [s for s in (p.strip() for p in labels.split(",")) if s]
    label_set = frozenset(labels) if labels else None
    if bbox is None and radius is None and label_set is None:
        return None
    return Filter(bbox=bbox, radius=radius, labels=label_set)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """-k, --bbox, --radius, --label (repeatable) and --json, shared by every search command."""
    from geoseek.argtypes import K

    parser.add_argument("-k", type=K, default=10,
                        help="number of results (default 10; at most the collection's size are returned)")
    parser.add_argument("--bbox", metavar="W,S,E,N", help="only items whose centroid is inside this box (degrees)")
    parser.add_argument("--radius", metavar="LON,LAT,METRES",
                        help="only items within METRES (great-circle) of LON,LAT")
    parser.add_argument("--label", action="append", metavar="LABEL",
                        help="only items with this label (repeat or comma-separate for any of several)")
    parser.add_argument("--json", action="store_true", help="print the hits as one JSON object on the last line")


def filter_from_args(args: argparse.Namespace) -> Filter | None:
    labels = None
    if getattr(args, "label", None):
        labels = [s.strip() for lab in args.label for s in lab.split(",") if s.strip()]
    if getattr(args, "k", 1) <= 0:
        raise InvalidInputError(f"-k must be > 0, got {args.k}")
    return make_filter(getattr(args, "bbox", None), getattr(args, "radius", None), labels)


__all__ = ["QueryMode", "query_modes", "select_mode", "make_filter", "add_common_arguments", "filter_from_args"]
