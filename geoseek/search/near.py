"""Search an OSM-tiles collection by location: ``geoseek search COLLECTION --near LON,LAT``.

The query is the embedding of the tile at (lon, lat): the stored vector of the collection's
tile there, or, outside the stored tiles, a fresh render from the collection's own OSM data
embedded with the collection's model. The query tile itself is left out of the hits.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from geoseek.errors import InvalidInputError
from geoseek.index.base import Filter
from geoseek.search import QueryMode

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit


def search_near(collection: Collection, lon: float, lat: float, k: int = 10, filter: Filter | None = None) -> list[Hit]:
    """Top-k tiles most like the place at (lon, lat) degrees ("places like this one")."""
    from geoseek.capabilities.tiles.search import similar

    return similar(collection, lon, lat, k, filter)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--near", metavar="LON,LAT", help="places like the one at LON,LAT (osm-tiles collections)")


def _run(collection: Collection, args: argparse.Namespace) -> list[Hit]:
    from geoseek.geo import CoordinateError, parse_lonlat

    try:
        lon, lat = parse_lonlat(args.near)
    except (CoordinateError, ValueError) as exc:
        raise InvalidInputError(f"--near expects LON,LAT in degrees: {exc}") from None
    return search_near(collection, lon, lat, args.k, args.filter)


MODE = QueryMode(
    name="near",
    modality="osm-tiles",
    add_arguments=_add_arguments,
    selected=lambda a: getattr(a, "near", None) is not None,
    run=_run,
    help="places like the one at LON,LAT (tile embedding)",
)
