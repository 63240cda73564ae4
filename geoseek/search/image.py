"""Search a geo-images collection by an image, with or without its location.

``geoseek search COLLECTION --image FILE [--lonlat LON,LAT] [--geo-weight W] [-k K] [--bbox ...]``

The query image is embedded with the collection's own model (``model.pt``, an image ⊕ location
fusion encoder); with ``--lonlat`` the location enters the embedding, and ``--geo-weight W``
(0 … 1, default 0) blends the embedding cosine with geographic proximity:
``score = (1 − W)·cos + W·exp(−distance / geo_scale_m)`` (see :func:`geoseek.capabilities.gimi.search.nearest_by_image_and_location`).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from geoseek.errors import InvalidInputError
from geoseek.index.base import Filter
from geoseek.search import QueryMode

if TYPE_CHECKING:
    from collections.abc import Sequence

    from geoseek.collection import Collection, Hit

MODALITY = "geo-images"


def search_by_image(
    collection: Collection,
    image: Any,
    lonlat: Sequence[float] | None = None,
    k: int = 10,
    geo_weight: float = 0.0,
    filter: Filter | None = None,
) -> list[Hit]:
    """Top-k items for a query image (PIL image, path or (H, W, 3) uint8), optionally at ``lonlat`` degrees."""
    from geoseek.capabilities.gimi.search import nearest_by_image_and_location

    return nearest_by_image_and_location(collection, image, lonlat, k=k, geo_weight=geo_weight, filter=filter)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", metavar="FILE", help="search by this image (geo-images collections)")
    parser.add_argument("--lonlat", metavar="LON,LAT", help="with --image: where the query image was taken (degrees)")
    from geoseek.argtypes import float_in

    parser.add_argument("--geo-weight", type=float_in(0.0, 1.0), default=0.0, metavar="W",
                        help="with --image: weight of geographic proximity against visual similarity, 0..1 "
                             "(default 0; > 0 needs --lonlat)")


def _run(collection: Collection, args: argparse.Namespace) -> list[Hit]:
    from geoseek.geo import CoordinateError, parse_lonlat

    lonlat = None
    if args.lonlat is not None:
        try:
            lonlat = parse_lonlat(args.lonlat)
        except (CoordinateError, ValueError) as exc:
            raise InvalidInputError(f"--lonlat expects LON,LAT in degrees: {exc}") from None
    w = float(args.geo_weight)
    if not 0.0 <= w <= 1.0:
        raise InvalidInputError(f"--geo-weight must be in [0, 1], got {w}")
    if w > 0 and lonlat is None:
        raise InvalidInputError("--geo-weight > 0 needs --lonlat LON,LAT (the query image's location)")
    return search_by_image(collection, args.image, lonlat, args.k, w, args.filter)


MODE = QueryMode(
    name="image",
    modality=MODALITY,
    add_arguments=_add_arguments,
    selected=lambda a: getattr(a, "image", None) is not None,
    run=_run,
    help="by an image FILE, optionally with --lonlat and --geo-weight (geo-images collections)",
)
