"""Search scene collections by a sketch map: ``geoseek search COLLECTION --sketch-map FILE.json``.

FILE is a sketch-map JSON (see :mod:`geoseek.sources.sketchmap` and
``geoseek/schemas/sketch-map.schema.json``): typed objects (building, major_road, water, park...)
on a canvas or on the map. It is rasterized into the OSM layer channels, embedded with the
collection's sketch-map encoder and matched against the scene vectors (collections built by
``geoseek build sketchmap``, modality ``osm-scenes``).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from geoseek.index.base import Filter
from geoseek.search import QueryMode

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit

MODALITY = "osm-scenes"


def search_sketch_map(collection: Collection, sketch: Any, k: int = 10, filter: Filter | None = None) -> list[Hit]:
    """Top-k scenes for a sketch map (JSON object, JSON text, or a path to a JSON file)."""
    from geoseek.capabilities.sketchmap.data import DEFAULT_WINDOW_M
    from geoseek.capabilities.sketchmap.search import search_scenes
    from geoseek.sources.sketchmap import load_sketch_map

    if isinstance(sketch, Path):
        extra = collection.manifest.get("extra", {})
        sketch = load_sketch_map(sketch, window_m=float(extra.get("window_m", DEFAULT_WINDOW_M)))
    return search_scenes(collection, sketch, k, filter)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sketch-map", metavar="FILE.json",
                        help="search scenes by a sketch map: typed objects (building, road, water...) as GeoJSON")


def _run(collection: Collection, args: argparse.Namespace) -> list[Hit]:
    return search_sketch_map(collection, Path(args.sketch_map), args.k, args.filter)


MODE = QueryMode(
    name="sketch-map",
    modality=MODALITY,
    add_arguments=_add_arguments,
    selected=lambda a: getattr(a, "sketch_map", None) is not None,
    run=_run,
    help="by a sketch map of typed objects (buildings, roads, water, parks...) → matching OSM scenes",
)
