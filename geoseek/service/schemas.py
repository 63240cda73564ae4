"""Pydantic models of the HTTP API: requests, responses, GeoJSON footprints, errors.

Every search route answers a :class:`SearchResponse`; build it from a mode's
``list[geoseek.collection.Hit]`` with :func:`search_response`::

    return search_response(hits, collection=name, mode="sketch-map", started=t0)

Coordinates are ``(lon, lat)`` degrees (WGS84); footprints are GeoJSON polygons
(or points when an item has only a centroid).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import quote

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from geoseek.collection import Hit, Item

MAX_K = 1000
"""Most results one search answers: a larger ``k`` is clamped to this (and every search also clamps
to the collection's size), never refused."""


def clamp_k(k: int) -> int:
    """``k`` of a request → at most :data:`MAX_K`."""
    return min(int(k), MAX_K)


ClampedK = Annotated[int, AfterValidator(clamp_k)]
"""A request's ``k`` (>= 1 is checked by the route's ``ge=1``), clamped to :data:`MAX_K`."""

MAX_DIM = 8192
"""Largest query vector accepted (the collection's own dimension must match anyway)."""


class ErrorOut(BaseModel):
    """Every error: a short machine-readable code and a message for people."""

    error: str = Field(examples=["not_found"])
    detail: Any = Field(examples=["no collection named 'x'; served collections: malta"])


class Geometry(BaseModel):
    type: Literal["Polygon", "Point"]
    coordinates: Any


class Feature(BaseModel):
    """A GeoJSON Feature (RFC 7946): (lon, lat) degrees."""

    type: Literal["Feature"] = "Feature"
    id: str
    geometry: Geometry | None
    properties: dict[str, Any] = Field(default_factory=dict)


class HitOut(BaseModel):
    """One ranked result."""

    rank: int = Field(description="1 for the best result")
    score: float = Field(description="similarity, higher is better (inner product / cosine, or negated L2)")
    id: str
    name: str = ""
    label: str | None = None
    centroid: tuple[float, float] | None = Field(default=None, description="(lon, lat) degrees")
    footprint: Feature | None = Field(default=None, description="GeoJSON Feature of the item's footprint")
    thumbnail_url: str | None = Field(default=None, description="relative URL of the item's thumbnail")


class SearchResponse(BaseModel):
    collection: str
    mode: str = Field(description="query mode that produced the hits (vector, item, sketch, sketch-map, image, similar...)")
    count: int
    took_ms: float = Field(description="server time for the search, milliseconds")
    hits: list[HitOut]
    query: dict[str, Any] = Field(default_factory=dict, description="mode-specific echo of the query (e.g. the clicked point)")


class ItemOut(BaseModel):
    """One item of a collection."""

    id: str
    name: str = ""
    label: str | None = None
    source: str = ""
    centroid: tuple[float, float] | None = None
    footprint: Feature | None = None
    thumbnail_url: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class CollectionOut(BaseModel):
    """A served collection and what can be asked of it."""

    name: str
    modality: str = Field(description="what the items are, e.g. osm-tiles or images")
    count: int
    dim: int
    metric: str
    model_id: str | None = None
    backend: str | None = None
    created: str | None = None
    bbox: tuple[float, float, float, float] | None = Field(default=None, description="extent of the items (west, south, east, north) degrees")
    items_bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="where the items are, for a first view (west, south, east, north) degrees: the extent "
        "of their footprints without the few farthest (0.5 % of the items on each side of each axis; none below 200 items)")
    labels: list[str] = Field(default_factory=list, description="distinct item labels (at most 200)")
    modes: list[str] = Field(description="query modes this collection supports over HTTP (vector, item, similar, sketch, sketch-map, image...)")
    endpoints: dict[str, str] = Field(default_factory=dict, description="mode → 'METHOD path' of the route that serves it")
    status: Literal["ok", "damaged"] = Field(default="ok", description="'damaged': its data cannot be read; its routes answer 503")
    error: str | None = Field(default=None, description="why a damaged collection cannot answer (details in the server log)")


class CollectionsOut(BaseModel):
    collections: list[CollectionOut]
    basemap: str | None = Field(default=None, description="URL template of the offline basemap tiles, when served")
    auth: bool = Field(description="whether this server requires a bearer token")


class LayerOut(BaseModel):
    """One object type of sketch maps / one channel of OSM tiles."""

    name: str
    kind: Literal["area", "line", "point"]
    width_m: float
    rgb: tuple[int, int, int]
    description: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    collections: int


class RadiusIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lon: float = Field(ge=-180, le=180, description="centre longitude, degrees")
    lat: float = Field(ge=-90, le=90, description="centre latitude, degrees")
    metres: float = Field(gt=0, le=20_037_509, description="radius, metres (great-circle)")


class FilterIn(BaseModel):
    """Optional geographic and label filters (all given conditions must hold)."""

    model_config = ConfigDict(extra="forbid")

    bbox: tuple[float, float, float, float] | None = Field(default=None, description="(west, south, east, north) degrees")
    radius: RadiusIn | None = None
    labels: list[str] | None = Field(default=None, max_length=1000, description="keep items whose label is one of these")

    @field_validator("bbox")
    @classmethod
    def _bbox(cls, v: tuple[float, float, float, float] | None) -> tuple[float, float, float, float] | None:
        if v is None:
            return v
        w, s, e, n = v
        if not all(math.isfinite(x) for x in v):
            raise ValueError("bbox values must be finite numbers")
        if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
            raise ValueError("bbox must be (west, south, east, north) degrees with west <= east and south <= north")
        return v

    def to_filter(self) -> Any:
        """The :class:`geoseek.index.base.Filter` (or ``None`` when no condition is given)."""
        from geoseek.geo import BBox
        from geoseek.index.base import Filter, Radius

        f = Filter(
            bbox=BBox(*self.bbox) if self.bbox is not None else None,
            radius=Radius(self.radius.lon, self.radius.lat, self.radius.metres) if self.radius is not None else None,
            labels=frozenset(self.labels) if self.labels is not None else None,
        )
        return None if f.empty else f


class SearchIn(FilterIn):
    """Search by a query vector or by the vector of an item already in the collection."""

    vector: list[float] | None = Field(default=None, min_length=1, max_length=MAX_DIM, description="query vector (D floats)")
    id: str | None = Field(default=None, min_length=1, max_length=1000, description="search with the vector of this item")
    k: ClampedK = Field(default=10, ge=1, description=f"number of results (more than {MAX_K} is clamped to {MAX_K})")
    exclude_self: bool = Field(default=True, description="when searching by id, leave the item itself out")

    @model_validator(mode="after")
    def _one_query(self) -> SearchIn:
        if (self.vector is None) == (self.id is None):
            raise ValueError("give exactly one of 'vector' or 'id'")
        if self.vector is not None and not all(math.isfinite(x) for x in self.vector):
            raise ValueError("vector values must be finite numbers")
        return self


# ---------------------------------------------------------------------------------------------
# conversions


def item_path(collection: str, item_id: str) -> str:
    """Relative URL of an item (ids are percent-encoded, slashes included)."""
    return f"/collections/{quote(collection, safe='')}/items/{quote(item_id, safe='')}"


def footprint_feature(item: Item, **properties: Any) -> Feature | None:
    """The item's footprint as a GeoJSON Feature: a polygon, or a point when only a centroid is known."""
    geometry: Geometry | None = None
    if item.footprint is not None:
        w, s, e, n = (float(v) for v in item.footprint)
        geometry = Geometry(type="Polygon", coordinates=[[[w, s], [e, s], [e, n], [w, n], [w, s]]])
    elif getattr(item, "centroid", None) is not None:
        geometry = Geometry(type="Point", coordinates=[float(item.centroid[0]), float(item.centroid[1])])
    if geometry is None:
        return None
    props = {"name": item.name, "label": item.label, **properties}
    return Feature(id=item.id, geometry=geometry, properties=props)


def _centroid(item: Item) -> tuple[float, float] | None:
    c = getattr(item, "centroid", None)
    if c is not None:
        return (float(c[0]), float(c[1]))
    if item.footprint is not None:
        w, s, e, n = item.footprint
        return ((w + e) / 2, (s + n) / 2)
    return None


def _has_thumbnail(item: Item) -> bool:
    flag = getattr(item, "has_thumbnail", None)
    if flag is not None:
        return bool(flag() if callable(flag) else flag)
    return item.thumbnail is not None


def item_out(item: Item, collection: str) -> ItemOut:
    url = item_path(collection, item.id)
    return ItemOut(
        id=item.id, name=item.name or "", label=item.label, source=item.source or "", centroid=_centroid(item),
        footprint=footprint_feature(item), thumbnail_url=f"{url}/thumbnail" if _has_thumbnail(item) else None,
        metadata=dict(item.metadata or {}),
    )


def hit_out(hit: Hit, collection: str) -> HitOut:
    item = hit.item
    score = float(hit.score)
    return HitOut(
        rank=int(hit.rank), score=score if math.isfinite(score) else 0.0, id=item.id, name=item.name or "",
        label=item.label, centroid=_centroid(item),
        footprint=footprint_feature(item, rank=int(hit.rank), score=score if math.isfinite(score) else 0.0),
        thumbnail_url=f"{item_path(collection, item.id)}/thumbnail" if _has_thumbnail(item) else None,
    )


def search_response(hits: list[Hit], *, collection: str, mode: str, started: float | None = None,
                    query: dict[str, Any] | None = None) -> SearchResponse:
    """Wrap one query's hits; ``started`` is a :func:`time.perf_counter` value taken before the search."""
    took = (time.perf_counter() - started) * 1000 if started is not None else 0.0
    out = [hit_out(h, collection) for h in hits]
    return SearchResponse(collection=collection, mode=mode, count=len(out), took_ms=round(took, 3), hits=out, query=query or {})
