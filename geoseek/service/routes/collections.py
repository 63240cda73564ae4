"""The generic API: list collections, item detail and thumbnail, search by vector or by item,
and similar places around a clicked point."""

from __future__ import annotations

import importlib
import itertools
import logging
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.service.deps import CollectionEntry, get_entry
from geoseek.service.schemas import (
    ClampedK,
    CollectionOut,
    CollectionsOut,
    ItemOut,
    LayerOut,
    SearchIn,
    SearchResponse,
    item_out,
    search_response,
)

log = logging.getLogger("geoseek.service")

router = APIRouter(tags=["collections"])

_PREFIX = "/collections/{name}/"
_MAX_LABELS = 200
_OUTLIER_SHARE = 0.005
"""Share of the items left out of ``items_bbox`` on each side of each axis (the farthest centroids)."""


# ---------------------------------------------------------------------------------------------
# which query modes a collection supports


def _modality_matches(modality: Any, collection_modality: str) -> bool:
    if modality is None or modality == "*":
        return True
    if isinstance(modality, str):
        return modality == collection_modality
    return collection_modality in tuple(modality)


def module_supports(module_name: str, collection: Any) -> bool:
    """Whether the routes of ``geoseek.service.routes.<module_name>`` apply to ``collection``."""
    module = importlib.import_module(module_name)
    modality = str(collection.manifest.get("modality", ""))
    supports = getattr(module, "supports", None)
    if callable(supports):
        try:
            return bool(supports(collection))
        except Exception:
            return False
    if hasattr(module, "MODALITIES"):
        return _modality_matches(module.MODALITIES, modality)
    short = module_name.rsplit(".", 1)[-1]
    try:
        search_module = importlib.import_module(f"geoseek.search.{short}")
    except Exception:
        return True
    mode = getattr(search_module, "MODE", None)
    if mode is None:
        return True
    return _modality_matches(getattr(mode, "modality", None), modality)


def _mode_of(path: str) -> str | None:
    """Query-mode name of a collection route path, or None for item/detail routes."""
    if not path.startswith(_PREFIX):
        return None
    rest = path[len(_PREFIX):]
    if rest == "search":
        return None  # vector and item, handled by the caller
    if rest.startswith("search/"):
        return rest[len("search/"):].strip("/") or None
    if rest.startswith("items") or not rest:
        return None
    head = rest.split("/", 1)[0]
    return "basemap" if head == "tiles" else head


def collection_modes(request: Request, entry: CollectionEntry) -> dict[str, str]:
    """Mode → 'METHOD path' for every route that serves a query mode on this collection."""
    modes: dict[str, str] = {}
    for module_name, route in request.app.state.api_routes:
        if not route.path.startswith(_PREFIX):
            continue
        rest = route.path[len(_PREFIX):]
        names = ["vector", "item"] if rest == "search" else [_mode_of(route.path)]
        for mode in names:
            if mode is None or mode in modes:  # first route of a path wins, as in routing
                continue
            if mode == "similar" and module_name == __name__ and _facts(entry)["bbox"] is None:
                continue  # similar places needs items with a location
            if module_supports(module_name, entry.collection):
                method = sorted(route.methods or {"GET"})[0]
                modes[mode] = f"{method} {route.path}"
    return modes


def basemap_url(request: Request) -> str | None:
    """URL template of the offline basemap (``{z}/{x}/{y}``) when a tiles route is served and some
    collection can render it."""
    entries: dict[str, CollectionEntry] = request.app.state.collections
    for module_name, route in request.app.state.api_routes:
        if route.path.startswith("/tiles/") and any(module_supports(module_name, e.collection) for e in entries.values()):
            return route.path
    return None


# ---------------------------------------------------------------------------------------------
# cached per-collection facts (extent, labels, centroids)


def items_extent(points: np.ndarray, boxes: np.ndarray, share: float = _OUTLIER_SHARE) -> tuple[float, ...] | None:
    """Where the items are: (west, south, east, north) degrees, for a map's first view.

    ``points`` (N, 2) centroids and ``boxes`` (N, 4) footprints (a point's box is the point). The
    extent of the footprints of the items whose centroid is not among the ``⌊share·N⌋`` smallest
    or largest on either axis, so a few far-off items (a ferry line's tile in open sea) do not
    shrink the rest into a corner; with fewer than ``1 / share`` items it is the full extent.
    None without items.
    """
    if not len(points):
        return None
    drop = int(share * len(points))
    keep = np.ones(len(points), dtype=bool)
    if drop:
        for axis in (0, 1):
            order = np.argsort(points[:, axis], kind="stable")
            keep[order[:drop]] = keep[order[len(order) - drop:]] = False
    bx = boxes[keep] if keep.any() else boxes
    return (float(bx[:, 0].min()), float(bx[:, 1].min()), float(bx[:, 2].max()), float(bx[:, 3].max()))


def _facts(entry: CollectionEntry) -> dict[str, Any]:
    facts = getattr(entry, "_facts", None)
    if facts is not None:
        return facts
    with entry.lock:
        facts = getattr(entry, "_facts", None)
        if facts is not None:
            return facts
        ids: list[str] = []
        points: list[tuple[float, float]] = []
        boxes: list[tuple[float, float, float, float]] = []
        labels: set[str] = set()
        for item in entry.collection.items():
            if item.label is not None and len(labels) <= _MAX_LABELS:
                labels.add(str(item.label))
            c = item.centroid
            if c is None and item.footprint is not None:
                w, s, e, n = item.footprint
                c = ((w + e) / 2, (s + n) / 2)
            if c is None:
                continue
            fp = item.footprint if item.footprint is not None else (c[0], c[1], c[0], c[1])
            ids.append(item.id)
            points.append((float(c[0]), float(c[1])))
            boxes.append(tuple(float(v) for v in fp))  # type: ignore[arg-type]
        pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        bx = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        bbox = None
        if len(bx):
            bbox = (float(bx[:, 0].min()), float(bx[:, 1].min()), float(bx[:, 2].max()), float(bx[:, 3].max()))
        facts = {"ids": ids, "points": pts, "boxes": bx, "bbox": bbox, "items_bbox": items_extent(pts, bx),
                 "labels": sorted(labels)[:_MAX_LABELS]}
        entry._facts = facts  # type: ignore[attr-defined]
        return facts


def collection_out(request: Request, entry: CollectionEntry) -> CollectionOut:
    m = entry.collection.manifest
    facts = _facts(entry)
    endpoints = collection_modes(request, entry)
    return CollectionOut(
        name=entry.name, modality=str(m.get("modality", "")), count=len(entry.collection), dim=int(m.get("dim", 0)),
        metric=str(m.get("metric", "")), model_id=m.get("model_id"), backend=m.get("backend"),
        created=str(m["created"]) if m.get("created") is not None else None, bbox=facts["bbox"], items_bbox=facts["items_bbox"], labels=facts["labels"],
        modes=list(endpoints), endpoints=endpoints,
    )


def _collection_out_or_damaged(request: Request, entry: CollectionEntry) -> CollectionOut:
    """:func:`collection_out`, or for a collection whose data cannot be read an entry marked
    ``status="damaged"`` (the listing of the healthy ones goes on; the detail goes to the server log)."""
    import sqlite3

    from geoseek.errors import DamagedDataError

    try:
        return collection_out(request, entry)
    except (DamagedDataError, sqlite3.DatabaseError, OSError, ValueError) as exc:
        log.error("collection %r cannot be listed: %s: %s", entry.name, type(exc).__name__, exc)
        try:
            modality = str(entry.collection.manifest.get("modality", ""))
        except Exception:
            modality = ""
        return CollectionOut(name=entry.name, modality=modality, count=0, dim=0, metric="", modes=[], status="damaged",
                             error="this collection's data cannot be read; the server log names the file")


# ---------------------------------------------------------------------------------------------
# routes


@router.get("/collections", response_model=CollectionsOut, summary="collections served, with the query modes each supports")
def list_collections(request: Request) -> CollectionsOut:
    entries: dict[str, CollectionEntry] = request.app.state.collections
    return CollectionsOut(
        collections=[_collection_out_or_damaged(request, e) for e in entries.values()], basemap=basemap_url(request),
        auth=bool(request.app.state.settings.token),
    )


@router.get("/layers", response_model=list[LayerOut], summary="object types of sketch maps and OSM tiles (channel order)")
def list_layers() -> list[LayerOut]:
    from geoseek.sources.layers import LAYERS

    return [LayerOut(name=l.name, kind=l.kind, width_m=l.width_m, rgb=l.rgb, description=l.description) for l in LAYERS]


@router.get("/collections/{name}", response_model=CollectionOut, summary="one collection")
def get_collection_info(request: Request, entry: CollectionEntry = Depends(get_entry)) -> CollectionOut:
    return collection_out(request, entry)


@router.get("/collections/{name}/items", response_model=list[ItemOut], summary="a page of items (without thumbnails)")
def list_items(entry: CollectionEntry = Depends(get_entry), offset: int = Query(0, ge=0, le=10_000_000),
               limit: int = Query(100, ge=1, le=1000)) -> list[ItemOut]:
    items = list(itertools.islice(entry.collection.items(), offset, offset + limit))
    return [item_out(it, entry.name) for it in items]


def _get_item(entry: CollectionEntry, item_id: str) -> Any:
    try:
        item = entry.collection.get(item_id)
    except (KeyError, NotFoundError):
        item = None
    if item is None:
        raise NotFoundError(f"collection {entry.name!r} has no item {item_id!r}")
    return item


def _image_type(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    return "application/octet-stream"


@router.get("/collections/{name}/items/{item_id:path}/thumbnail", summary="the item's thumbnail (PNG or JPEG)",
            response_class=Response, responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}})
def get_thumbnail(item_id: str, entry: CollectionEntry = Depends(get_entry)) -> Response:
    item = _get_item(entry, item_id)
    if not item.thumbnail:
        raise NotFoundError(f"item {item_id!r} has no thumbnail")
    data = bytes(item.thumbnail)
    return Response(data, media_type=_image_type(data), headers={"Cache-Control": "private, max-age=3600"})


@router.get("/collections/{name}/items/{item_id:path}", response_model=ItemOut, summary="one item with its GeoJSON footprint")
def get_item(item_id: str, entry: CollectionEntry = Depends(get_entry)) -> ItemOut:
    return item_out(_get_item(entry, item_id), entry.name)


def _search_vector(entry: CollectionEntry, vector: np.ndarray, k: int, flt: Any, exclude: str | None = None) -> list[Any]:
    return entry.collection.search(vector, k=k, filter=flt, exclude=[[exclude]] if exclude is not None else None)[0]


def _query_vector(entry: CollectionEntry, vector: list[float]) -> np.ndarray:
    dim = int(entry.collection.manifest.get("dim", 0))
    with np.errstate(over="ignore"):
        q = np.asarray(vector, dtype=np.float32)
    if not np.isfinite(q).all():
        raise InvalidInputError("vector values must be finite float32 numbers (|x| < 3.4e38)")
    if dim and q.shape[0] != dim:
        raise InvalidInputError(f"the query vector has {q.shape[0]} values; collection {entry.name!r} has dimension {dim}")
    return q


def _item_vector(entry: CollectionEntry, item_id: str) -> np.ndarray:
    _get_item(entry, item_id)
    return np.asarray(entry.collection.vector(item_id), dtype=np.float32)


@router.post("/collections/{name}/search", response_model=SearchResponse,
             summary="search by a query vector or by an item's vector, with optional bbox / radius / label filters")
def search(body: SearchIn, entry: CollectionEntry = Depends(get_entry)) -> SearchResponse:
    t0 = time.perf_counter()
    flt = body.to_filter()
    if body.vector is not None:
        hits = _search_vector(entry, _query_vector(entry, body.vector), body.k, flt)
        return search_response(hits, collection=entry.name, mode="vector", started=t0)
    assert body.id is not None
    q = _item_vector(entry, body.id)
    hits = _search_vector(entry, q, body.k, flt, exclude=body.id if body.exclude_self else None)
    return search_response(hits, collection=entry.name, mode="item", started=t0, query={"id": body.id})


def anchor_item(entry: CollectionEntry, lon: float, lat: float, max_distance_m: float) -> tuple[str, float]:
    """The item at ``(lon, lat)``: the smallest footprint containing it, else the nearest centroid
    within ``max_distance_m``; returns (id, great-circle distance in metres from its centroid).

    One pass of float comparisons over the cached footprints, then an equirectangular nearest
    neighbour (exact enough to rank neighbours), then one haversine for the chosen item.
    """
    from geoseek.geo import haversine_m

    facts = _facts(entry)
    pts, boxes = facts["points"], facts["boxes"]
    if not len(pts):
        raise NotFoundError(f"collection {entry.name!r} has no items with a location")
    inside = np.flatnonzero((boxes[:, 0] <= lon) & (lon <= boxes[:, 2]) & (boxes[:, 1] <= lat) & (lat <= boxes[:, 3]))
    if len(inside):
        b = boxes[inside]
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        d2 = (pts[inside, 0] - lon) ** 2 + (pts[inside, 1] - lat) ** 2
        i = int(inside[np.lexsort((d2, area))[0]])
    else:
        dx = (pts[:, 0] - lon) * np.cos(np.radians(lat))
        dy = pts[:, 1] - lat
        i = int(np.argmin(dx * dx + dy * dy))
    dist = float(haversine_m(pts[i], np.array([lon, lat])))
    if not len(inside) and dist > max_distance_m:
        raise NotFoundError(
            f"no item of {entry.name!r} within {max_distance_m:,.0f} m of ({lon}, {lat}); the nearest is {dist:,.0f} m away"
        )
    return facts["ids"][i], dist


@router.get("/collections/{name}/similar", response_model=SearchResponse,
            summary="places similar to the one at (lon, lat): the item there is the query")
def similar(entry: CollectionEntry = Depends(get_entry),
            lon: float = Query(..., ge=-180, le=180, description="longitude, degrees"),
            lat: float = Query(..., ge=-90, le=90, description="latitude, degrees"),
            k: ClampedK = Query(10, ge=1),
            max_distance_m: float = Query(10_000, gt=0, le=20_037_509, description="how far the nearest item may be, metres")
            ) -> SearchResponse:
    t0 = time.perf_counter()
    anchor, dist = anchor_item(entry, lon, lat, max_distance_m)
    hits = _search_vector(entry, _item_vector(entry, anchor), k, None, exclude=anchor)
    return search_response(hits, collection=entry.name, mode="similar", started=t0,
                           query={"lon": lon, "lat": lat, "anchor": anchor, "anchor_distance_m": round(dist, 1)})
