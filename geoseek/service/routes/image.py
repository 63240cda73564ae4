"""``POST /collections/{name}/search/image``: search a geo-images collection by an uploaded image.

Multipart form: ``file`` (PNG/JPEG/...; bounded by the server's upload and pixel limits),
optional ``lon`` and ``lat`` (degrees, both or neither: where the query image was taken),
``geo_weight`` (0..1, weight of geographic proximity against visual similarity; > 0 needs
lon/lat), ``k``, and the spine's filters ``bbox`` ("W,S,E,N"), ``radius`` ("LON,LAT,METRES")
and ``label`` (comma-separated).
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from geoseek.errors import InvalidInputError
from geoseek.search import make_filter
from geoseek.service.deps import CollectionEntry, decode_image_limited, get_entry, get_settings, read_upload_limited
from geoseek.service.schemas import ClampedK, SearchResponse, search_response

router = APIRouter(tags=["image"])

MODALITIES = ("geo-images",)


@router.post("/collections/{name}/search/image", response_model=SearchResponse,
             summary="search geo-located images by an uploaded image, optionally with its location")
def post_search_image(
    request: Request,
    entry: CollectionEntry = Depends(get_entry),
    file: UploadFile = File(..., description="the query image (PNG, JPEG, ...)"),
    lon: float | None = Form(None, ge=-180, le=180, description="longitude of the query image, degrees"),
    lat: float | None = Form(None, ge=-90, le=90, description="latitude of the query image, degrees"),
    geo_weight: float = Form(0.0, ge=0.0, le=1.0, description="0 = visual only … 1 = nearest places only"),
    k: ClampedK = Form(10, ge=1),
    bbox: str | None = Form(None, description="only items inside W,S,E,N (degrees)"),
    radius: str | None = Form(None, description="only items within LON,LAT,METRES"),
    label: str | None = Form(None, description="only these labels (comma-separated)"),
) -> SearchResponse:
    from geoseek.search.image import search_by_image

    if entry.collection.manifest.get("modality") not in MODALITIES:
        raise InvalidInputError(f"collection {entry.name!r} is not a geo-images collection")
    if (lon is None) != (lat is None):
        raise InvalidInputError("give both lon and lat, or neither")
    lonlat = (lon, lat) if lon is not None else None
    if geo_weight > 0 and lonlat is None:
        raise InvalidInputError("geo_weight > 0 needs the query's location: send lon and lat")
    settings = get_settings(request)
    started = time.perf_counter()
    data = read_upload_limited(file, settings.max_upload_bytes, what="image")
    image = decode_image_limited(data, settings.max_pixels)
    hits = search_by_image(entry.collection, image, lonlat, k=k, geo_weight=geo_weight,
                           filter=make_filter(bbox, radius, label))
    return search_response(hits, collection=entry.name, mode="image", started=started,
                           query={"lon": lon, "lat": lat, "geo_weight": geo_weight, "k": k})
