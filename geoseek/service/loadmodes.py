"""Model-backed query modes for the HTTP load benchmark (``geoseek bench load --with ...``).

Each mode queries a real collection of the modality it needs with requests as a web page or
a script would send them, drawn from that collection (or, for sketches, the public strokes):

| mode | collection modality | request |
|---|---|---|
| ``sketch`` | ``aerial-image`` (``geoseek build images``) | POST /search/sketch, form field ``strokes`` (Quick, Draw! strokes JSON) |
| ``sketch-map`` | ``osm-scenes`` (``geoseek build sketchmap``) | POST /search/sketch-map, a random canvas sketch map (buildings, roads, a park, shops) |
| ``image`` | ``geo-images`` (``geoseek build geo-images``) | POST /search/image, multipart: a stored item's thumbnail with its (lon, lat) |
| ``near`` | ``osm-tiles`` (``geoseek build osm``) | GET /similar at a jittered item centroid |

Every factory returns ``make() -> (method, path, payload)``; payload is query parameters for
GET, a JSON-able object, or a :class:`RawBody` (form or multipart bytes) for POST.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np

Request = tuple[str, str, Any]
Factory = Callable[[str, Path, np.random.Generator, Path | None], Callable[[], Request]]


@dataclass(frozen=True)
class RawBody:
    """A request body that is not JSON: its Content-Type and bytes."""

    content_type: str
    data: bytes


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> RawBody:
    """multipart/form-data of text ``fields`` and ``files`` {name: (filename, bytes, content type)}."""
    boundary = uuid.uuid4().hex
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, ctype) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {ctype}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return RawBody(f"multipart/form-data; boundary={boundary}", b"".join(parts))


def _sample_items(path: Path, n: int, rng: np.random.Generator, with_thumbnails: bool = False) -> list[Any]:
    from geoseek.collection import Collection

    col = Collection.open(path)
    try:
        items = list(col.items())
        pick = rng.choice(len(items), size=min(n, len(items)), replace=False)
        chosen = [items[int(i)] for i in pick]
        if with_thumbnails:
            chosen = [(it, col.thumbnail(it.id)) for it in chosen]
        return chosen
    finally:
        col.close()


def sketch_requests(name: str, path: Path, rng: np.random.Generator, data_dir: Path | None) -> Callable[[], Request]:
    """Quick, Draw! strokes of the categories mapped to scene classes (200 drawings)."""
    from geoseek.sources.sketch import QUICKDRAW_TO_CLASS, read_quickdraw

    pool: list[bytes] = []
    root = (data_dir or Path(".")) / "sketches" / "quickdraw" / "strokes"
    for word in QUICKDRAW_TO_CLASS:
        p = root / f"{word}.ndjson"
        if p.is_file():
            pool += [json.dumps({"drawing": r["drawing"]}).encode() for r in read_quickdraw(p, limit=13)]
    if not pool:
        from geoseek.errors import NotFoundError

        raise NotFoundError(f"no Quick, Draw! strokes under {root} for the sketch mode (set --data-dir)")

    def make() -> Request:
        strokes = pool[int(rng.integers(len(pool)))].decode()
        return "POST", f"/collections/{name}/search/sketch", RawBody(
            "application/x-www-form-urlencoded", urlencode({"strokes": strokes, "k": 10, "rerank": 100}).encode())

    return make


def _random_sketch_map(rng: np.random.Generator, size: int = 512) -> dict[str, Any]:
    def box(x: float, y: float, w: float, h: float) -> list[list[list[float]]]:
        return [[[x, y], [x + w, y], [x + w, y + h], [x, y + h], [x, y]]]

    feats: list[dict[str, Any]] = []
    for _ in range(int(rng.integers(3, 9))):
        x, y = rng.uniform(0, size - 80, 2)
        w, h = rng.uniform(20, 120, 2)
        feats.append({"layer": "building", "geometry": {"type": "Polygon", "coordinates": box(x, y, w, h)}})
    for layer in ("major_road", "minor_road"):
        ys = rng.uniform(0, size, 3)
        feats.append({"layer": layer, "geometry": {"type": "LineString",
                      "coordinates": [[0, ys[0]], [size / 2, ys[1]], [size, ys[2]]]}})
    if rng.random() < 0.7:
        x, y = rng.uniform(0, size - 150, 2)
        feats.append({"layer": str(rng.choice(["park", "water", "farmland"])),
                      "geometry": {"type": "Polygon", "coordinates": box(x, y, 150, 150)}})
    for _ in range(int(rng.integers(0, 4))):
        feats.append({"layer": "amenity", "geometry": {"type": "Point", "coordinates": rng.uniform(0, size, 2).tolist()}})
    return {"type": "FeatureCollection", "crs": "canvas", "canvas": {"width": size, "height": size},
            "features": [{"type": "Feature", "properties": {"layer": f["layer"]}, "geometry": f["geometry"]} for f in feats]}


def sketch_map_requests(name: str, path: Path, rng: np.random.Generator, data_dir: Path | None) -> Callable[[], Request]:
    """Random canvas sketch maps: 3–8 buildings, a major and a minor road, maybe an area, a few points."""
    pool = [_random_sketch_map(rng) for _ in range(200)]

    def make() -> Request:
        return "POST", f"/collections/{name}/search/sketch-map?k=10", pool[int(rng.integers(len(pool)))]

    return make


def image_requests(name: str, path: Path, rng: np.random.Generator, data_dir: Path | None) -> Callable[[], Request]:
    """Stored items' thumbnails uploaded with their own (lon, lat), geo weight 0.3."""
    sample = [(it, th) for it, th in _sample_items(path, 100, rng, with_thumbnails=True) if th and it.centroid]
    if not sample:
        from geoseek.errors import InvalidInputError

        raise InvalidInputError(f"collection {name} has no items with thumbnails and locations to upload")
    bodies = []
    for it, th in sample:
        ctype = "image/png" if th[:4] == b"\x89PNG" else "image/jpeg"
        lon, lat = it.centroid
        bodies.append(multipart({"lon": f"{lon:.6f}", "lat": f"{lat:.6f}", "geo_weight": "0.3", "k": "10"},
                                {"file": ("query" + (".png" if ctype == "image/png" else ".jpg"), th, ctype)}))

    def make() -> Request:
        return "POST", f"/collections/{name}/search/image", bodies[int(rng.integers(len(bodies)))]

    return make


def near_requests(name: str, path: Path, rng: np.random.Generator, data_dir: Path | None) -> Callable[[], Request]:
    """GET /similar at an item's centroid moved by up to ~100 m."""
    pts = np.array([it.centroid for it in _sample_items(path, 500, rng) if it.centroid], np.float64)
    if not len(pts):
        from geoseek.errors import InvalidInputError

        raise InvalidInputError(f"collection {name} has no located items")

    def make() -> Request:
        lon, lat = pts[int(rng.integers(len(pts)))] + rng.uniform(-0.001, 0.001, 2)
        return "GET", f"/collections/{name}/similar", {"lon": round(float(lon), 6), "lat": round(float(lat), 6), "k": 10}

    return make


MODEL_MODES: dict[str, tuple[str, Factory]] = {
    "sketch": ("aerial-image", sketch_requests),
    "sketch-map": ("osm-scenes", sketch_map_requests),
    "image": ("geo-images", image_requests),
    "near": ("osm-tiles", near_requests),
}
"""mode → (the collection modality it needs, its request factory)."""


def modes_for(collections: dict[str, Path]) -> dict[str, str]:
    """mode → served collection name, for every model mode some collection in ``collections`` can answer."""
    from geoseek.collection import Collection

    by_modality: dict[str, str] = {}
    for cname, p in collections.items():
        col = Collection.open(p)
        try:
            by_modality.setdefault(str(col.manifest.get("modality")), cname)
        finally:
            col.close()
    return {mode: by_modality[modality] for mode, (modality, _) in MODEL_MODES.items() if modality in by_modality}
