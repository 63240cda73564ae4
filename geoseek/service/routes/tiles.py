"""OSM-tiles routes: embedding arithmetic and interpolation, and the offline basemap.

- ``GET /collections/{name}/arithmetic?a=&b=&c=&k=`` — tiles nearest to a + b − c;
  each of a, b, c is a tile id ``z/x/y`` or ``LON,LAT``.
- ``GET /collections/{name}/interpolate?a=&b=&steps=&k=`` — the walk a → b in ``steps``
  points, the k nearest tiles of each.
- ``GET /collections/{name}/tiles/{z}/{x}/{y}.png`` and ``GET /tiles/{z}/{x}/{y}.png`` — a
  256-px basemap tile rendered from the collection's own OSM data (the first osm-tiles
  collection served, or ``?collection=NAME``), so the web map needs no internet.

"Places like this one" (``GET /collections/{name}/similar?lon=&lat=&k=``) is the generic route
of :mod:`geoseek.service.routes.collections`; :func:`geoseek.search.near.search_near` is the
Python equivalent that also renders places outside the stored tiles.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.service.deps import CollectionEntry, get_entry
from geoseek.service.schemas import ClampedK, SearchResponse, search_response

router = APIRouter(tags=["osm-tiles"])

MODALITIES = ("osm-tiles",)
_REF = "tile id z/x/y, or LON,LAT in degrees"
_PNG_HEADERS = {"Cache-Control": "public, max-age=86400"}


def _check(entry: CollectionEntry) -> None:
    if entry.collection.manifest.get("modality") not in MODALITIES:
        raise InvalidInputError(f"collection {entry.name!r} is not an osm-tiles collection")


@router.get("/collections/{name}/arithmetic", response_model=SearchResponse,
            summary="embedding arithmetic: tiles nearest to a + b − c")
def arithmetic_route(entry: CollectionEntry = Depends(get_entry),
                     a: str = Query(..., description=_REF), b: str = Query(..., description=_REF),
                     c: str = Query(..., description=_REF), k: ClampedK = Query(10, ge=1)) -> SearchResponse:
    from geoseek.capabilities.tiles.search import arithmetic

    _check(entry)
    t0 = time.perf_counter()
    hits = arithmetic(entry.collection, a, b, c, k)
    return search_response(hits, collection=entry.name, mode="arithmetic", started=t0, query={"a": a, "b": b, "c": c})


@router.get("/collections/{name}/interpolate", summary="embedding interpolation: the walk from a to b")
def interpolate_route(entry: CollectionEntry = Depends(get_entry),
                      a: str = Query(..., description=_REF), b: str = Query(..., description=_REF),
                      steps: int = Query(5, ge=2, le=50), k: int = Query(1, ge=1, le=20)) -> dict:
    from geoseek.capabilities.tiles.search import interpolate

    _check(entry)
    t0 = time.perf_counter()
    walk = interpolate(entry.collection, a, b, steps, k)
    return {
        "collection": entry.name, "mode": "interpolate", "steps": steps, "query": {"a": a, "b": b},
        "path": [search_response(hits, collection=entry.name, mode="interpolate").model_dump() for hits in walk],
        "took_ms": round((time.perf_counter() - t0) * 1000, 3),
    }


def _png(entry: CollectionEntry, z: int, x: int, y: int) -> Response:
    from geoseek.capabilities.tiles.basemap import basemap_png

    return Response(basemap_png(entry.collection, z, x, y), media_type="image/png", headers=_PNG_HEADERS)


@router.get("/collections/{name}/tiles/{z}/{x}/{y}.png", summary="offline basemap tile from the collection's OSM data",
            response_class=Response)
def collection_basemap(z: int, x: int, y: int, entry: CollectionEntry = Depends(get_entry)) -> Response:
    _check(entry)
    return _png(entry, z, x, y)


@router.get("/tiles/{z}/{x}/{y}.png", summary="offline basemap tile (first osm-tiles collection, or ?collection=)",
            response_class=Response)
def basemap(request: Request, z: int, x: int, y: int, collection: str | None = Query(None)) -> Response:
    entries: dict[str, CollectionEntry] = request.app.state.collections
    if collection is not None:
        entry = entries.get(collection)
        if entry is None:
            raise NotFoundError(f"no collection named {collection!r}")
        _check(entry)
    else:
        entry = next((e for e in entries.values() if e.collection.manifest.get("modality") in MODALITIES), None)
        if entry is None:
            raise NotFoundError("no osm-tiles collection is served, so there is no basemap")
    return _png(entry, z, x, y)
