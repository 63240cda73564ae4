"""Search aerial-image collections by a drawn sketch: ``geoseek search COLLECTION --sketch FILE``.

FILE is a PNG/JPG drawing (dark lines on light paper) or a strokes JSON (Quick, Draw! record,
``{"strokes": [[xs, ys], ...]}`` or a list of strokes). Two stages: ANN over the images' [RT]
vectors, then cross-attention rerank of the top ``--rerank`` candidates (0 disables it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from geoseek.errors import InvalidInputError
from geoseek.index.base import Filter
from geoseek.search import QueryMode

if TYPE_CHECKING:
    from geoseek.collection import Collection, Hit

MODALITY = "aerial-image"


def search_sketch(collection: Collection, sketch, k: int = 10, filter: Filter | None = None, rerank: int = 100,
                  filename: str | None = None) -> list[Hit]:
    """Top-k images for one sketch (ink map array, file path, or PNG/JPG/strokes-JSON bytes).

    Checks the query options, then runs :func:`geoseek.capabilities.sketch_image.search.search_drawing`.
    """
    from geoseek.capabilities.sketch_image.search import search_drawing

    if rerank < 0:
        raise InvalidInputError(f"rerank must be >= 0, got {rerank}")
    return search_drawing(collection, sketch, k, filter, rerank, filename)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sketch", metavar="FILE", help="search by a sketch: PNG/JPG drawing or strokes JSON")
    from geoseek.argtypes import int_in

    parser.add_argument("--rerank", type=int_in(0, 10_000), default=100, metavar="N",
                        help="cross-attention rerank of the top N sketch-search candidates (0: off; default 100)")


def _run(collection: Collection, args: argparse.Namespace) -> list[Hit]:
    return search_sketch(collection, Path(args.sketch), args.k, args.filter, args.rerank)


MODE = QueryMode(
    name="sketch",
    modality=MODALITY,
    add_arguments=_add_arguments,
    selected=lambda a: getattr(a, "sketch", None) is not None,
    run=_run,
    help="by a drawn sketch (PNG/JPG or strokes JSON), two-stage with cross-attention rerank",
)
