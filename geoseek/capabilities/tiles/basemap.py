"""The offline basemap of an ``osm-tiles`` collection: 256-px map tiles rendered from its own OSM file.

Served at ``/tiles/{z}/{x}/{y}.png`` (:mod:`geoseek.service.routes.tiles`), so the web map needs no internet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoseek.capabilities.tiles.search import CollectionContext
from geoseek.errors import InvalidInputError

if TYPE_CHECKING:
    from geoseek.collection import Collection


def basemap_png(col: Collection, z: int, x: int, y: int) -> bytes:
    """The collection's offline basemap tile (z, x, y) as PNG bytes."""
    from geoseek.sources.render import render_basemap_png

    if not 0 <= z <= 22:
        raise InvalidInputError(f"zoom must be 0..22, got {z}")
    return render_basemap_png(CollectionContext.of(col).features, z, x, y)
