"""``POST /collections/{name}/search/sketch``: search aerial images by an uploaded sketch.

Multipart form: ``file`` (a PNG/JPG drawing, or a strokes JSON file), optional ``k`` (>= 1; clamped to MAX_K),
``rerank`` (top N reranked by cross-attention; 0 disables) and ``label`` (comma-separated label
filter). A strokes JSON may also be sent as the form field ``strokes`` instead of a file.
"""

from __future__ import annotations

import json
import time

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile

from geoseek.errors import InvalidInputError
from geoseek.search import make_filter
from geoseek.service.deps import (
    CollectionEntry,
    PayloadTooLarge,
    decode_image_limited,
    get_entry,
    get_settings,
    read_upload_limited,
)
from geoseek.service.schemas import ClampedK, SearchResponse, search_response

router = APIRouter(tags=["sketch"])

MODALITIES = ("aerial-image",)


@router.post("/collections/{name}/search/sketch", response_model=SearchResponse,
             summary="search aerial images by a sketch (PNG/JPG upload or strokes JSON)")
def post_search_sketch(
    request: Request,
    entry: CollectionEntry = Depends(get_entry),
    file: UploadFile | None = File(None, description="PNG/JPG drawing or strokes JSON"),
    strokes: str | None = Form(None, description="strokes JSON, instead of a file"),
    k: ClampedK = Form(10, ge=1),
    rerank: int = Form(100, ge=0, le=1000),
    label: str | None = Form(None, description="only these labels (comma-separated)"),
) -> SearchResponse:
    from geoseek.search.sketch import search_sketch
    from geoseek.sources.sketch import load_sketch, read_sketch_image

    settings = get_settings(request)
    started = time.perf_counter()
    if entry.collection.manifest.get("modality") not in MODALITIES:  # before loading the collection's model
        raise InvalidInputError(f"collection {entry.name!r} holds {entry.collection.manifest.get('modality')!r}; "
                                "sketch search needs an aerial-image collection (geoseek build images)")
    if (file is None) == (strokes is None):
        raise InvalidInputError("send exactly one of: a 'file' upload (PNG/JPG or strokes JSON) or a 'strokes' field")
    filename = None
    if strokes is not None:
        data = strokes.encode()
        if len(data) > settings.max_upload_bytes:
            raise PayloadTooLarge(f"the strokes JSON is larger than the limit of {settings.max_upload_bytes:,} bytes")
        filename = "strokes.json"
    else:
        data = read_upload_limited(file, settings.max_upload_bytes, what="sketch")
        filename = file.filename or ""
    is_json = filename.lower().endswith((".json", ".ndjson")) or data.lstrip()[:1] in (b"{", b"[")
    if is_json:  # malformed, too deep or blank strokes are 422 before the collection's model loads
        load_sketch(data, size=32, filename=filename if filename.endswith(".ndjson") else "x.json")
    from geoseek.capabilities.common import collection_model

    size = collection_model(entry.collection).sketch_size
    if is_json:
        ink = load_sketch(data, size=size, filename=filename if filename.endswith(".ndjson") else "x.json")
    else:
        ink = read_sketch_image(decode_image_limited(data, settings.max_pixels), size=size)
    hits = search_sketch(entry.collection, ink, k=k, filter=make_filter(labels=label), rerank=rerank)
    return search_response(hits, collection=entry.name, mode="sketch", started=started,
                           query={"k": k, "rerank": rerank, "format": "strokes" if is_json else "image"})
