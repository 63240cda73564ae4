"""Sketch-map routes (DeepSSN): search scenes by a drawn map of typed objects, and feedback.

- ``POST /collections/{name}/search/sketch-map?k=10`` — body: a sketch-map JSON
  (``geoseek/schemas/sketch-map.schema.json``); answer: ranked scenes with scores and GeoJSON
  footprints. An invalid sketch is answered 422 with a message naming the problem.
- ``POST /collections/{name}/feedback`` — body ``{"sketch": {...}, "item_id": "scene/..."}``:
  durably stores the (sketch, chosen scene) pair (JSON Lines with fsync inside the collection
  directory); ``geoseek train sketchmap --with-feedback COLLECTION`` trains on them.
- ``GET /collections/{name}/feedback`` — how many pairs are stored.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from geoseek.errors import InvalidInputError
from geoseek.service.deps import CollectionEntry, get_entry
from geoseek.service.schemas import ClampedK, SearchResponse, search_response

router = APIRouter(tags=["sketch-map"])

MODALITIES = ("osm-scenes",)
MAX_BODY = 5_000_000


def _check(entry: CollectionEntry) -> None:
    if entry.collection.manifest.get("modality") not in MODALITIES:
        raise InvalidInputError(
            f"collection {entry.name!r} holds {entry.collection.manifest.get('modality')!r}; sketch-map search needs "
            "an osm-scenes collection (geoseek build sketchmap)"
        )


async def _json_body(request: Request) -> Any:
    """The JSON body, size- and depth-limited (the guard has bounded it while it streamed in)."""
    from geoseek.safejson import loads_limited

    raw = await request.body()
    if not raw:
        raise InvalidInputError("invalid sketch map: empty body; send a sketch-map JSON (GeoJSON FeatureCollection)")
    return loads_limited(raw, max_bytes=MAX_BODY, what="the request body")


@router.post("/collections/{name}/search/sketch-map", response_model=SearchResponse,
             summary="scenes matching a sketch map of typed objects (DeepSSN)")
async def sketch_map_route(request: Request, entry: CollectionEntry = Depends(get_entry),
                           k: ClampedK = Query(10, ge=1)) -> SearchResponse:
    from geoseek.capabilities.sketchmap.search import search_scenes

    from geoseek.sources.sketchmap import parse_sketch_map

    _check(entry)
    body = await _json_body(request)
    parse_sketch_map(body)  # a malformed sketch is 422 before the collection's model loads
    t0 = time.perf_counter()
    hits = search_scenes(entry.collection, body, k)
    n = len(body.get("features", [])) if isinstance(body, dict) else 0
    return search_response(hits, collection=entry.name, mode="sketch-map", started=t0, query={"features": n})


@router.post("/collections/{name}/feedback", summary="store a (sketch map, chosen scene) pair for training")
async def feedback_route(request: Request, entry: CollectionEntry = Depends(get_entry)) -> dict:
    from geoseek.capabilities.sketchmap.feedback import append_feedback

    _check(entry)
    body = await _json_body(request)
    if not isinstance(body, dict) or "sketch" not in body or "item_id" not in body:
        raise InvalidInputError('feedback body must be {"sketch": <sketch-map JSON>, "item_id": "<chosen scene id>"}')
    if not isinstance(body["item_id"], str):
        raise InvalidInputError("item_id must be a string (the id of the chosen scene)")
    extra = body.get("extra") if isinstance(body.get("extra"), dict) else None
    return {"collection": entry.name, **append_feedback(entry.collection, body["sketch"], body["item_id"], extra)}


@router.get("/collections/{name}/feedback", summary="number of stored (sketch map, chosen scene) pairs")
def feedback_count_route(entry: CollectionEntry = Depends(get_entry)) -> dict:
    from geoseek.capabilities.sketchmap.feedback import count_feedback

    _check(entry)
    return {"collection": entry.name, "count": count_feedback(entry.collection)}
