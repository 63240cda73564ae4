"""The HTTP API over a small real collection: listing, items, thumbnails, searches, filters,
similar places, errors as JSON, auth, limits and the static page."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pytest
from fastapi import Depends, File, UploadFile
from fastapi.testclient import TestClient

from geoseek.service.app import create_app
from geoseek.service.deps import ServiceSettings, decode_image_limited, get_settings, read_upload_limited

ITEM = "beach/beach00"


def _err(resp, status: int, code: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) >= {"error", "detail"} and body["detail"]
    if code is not None:
        assert body["error"] == code
    return body


def test_health_and_docs(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok", "version": client.get("/health").json()["version"], "collections": 1}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/health", "/collections", "/collections/{name}/items/{item_id}", "/collections/{name}/search",
              "/collections/{name}/similar"):
        assert p in paths


def test_list_collections(client: TestClient) -> None:
    body = client.get("/collections").json()
    assert body["auth"] is False
    (c,) = body["collections"]
    assert c["name"] == "scenes" and c["modality"] == "images" and c["count"] == 24 and c["dim"] == 104
    assert {"vector", "item", "similar"} <= set(c["modes"])
    assert c["endpoints"]["similar"] == "GET /collections/{name}/similar"
    assert c["labels"] == ["agricultural", "beach", "denseresidential", "river"]
    w, s, e, n = c["bbox"]
    assert (w, s) == pytest.approx((14.40, 35.85)) and (e, n) == pytest.approx((14.46, 35.89))
    assert client.get("/collections/scenes").json()["count"] == 24


def test_item_detail_and_thumbnail(client: TestClient) -> None:
    for path in (f"/collections/scenes/items/{ITEM}", f"/collections/scenes/items/{quote(ITEM, safe='')}"):
        item = client.get(path).json()
        assert item["id"] == ITEM and item["label"] == "beach"
        f = item["footprint"]
        assert f["type"] == "Feature" and f["geometry"]["type"] == "Polygon"
        ring = f["geometry"]["coordinates"][0]
        assert ring[0] == ring[-1] and len(ring) == 5
        assert item["thumbnail_url"] == "/collections/scenes/items/beach%2Fbeach00/thumbnail"
    thumb = client.get("/collections/scenes/items/beach%2Fbeach00/thumbnail")
    assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
    assert thumb.content[:2] == b"\xff\xd8"
    page = client.get("/collections/scenes/items", params={"offset": 20, "limit": 10}).json()
    assert len(page) == 4


def test_not_found_is_json(client: TestClient) -> None:
    _err(client.get("/collections/nope"), 404, "not_found")
    body = _err(client.get("/collections/nope/items/x"), 404, "not_found")
    assert "scenes" in body["detail"]  # names what is served
    _err(client.get("/collections/scenes/items/no-such-item"), 404, "not_found")
    _err(client.get("/collections/scenes/items/no-such-item/thumbnail"), 404, "not_found")
    _err(client.get("/no/such/endpoint"), 404)
    _err(client.delete("/collections/scenes"), 405)


def test_search_by_vector_finds_itself_first(client: TestClient, app) -> None:
    col = app.state.collections["scenes"].collection
    vec = col.vector(ITEM)
    body = client.post("/collections/scenes/search", json={"vector": vec.tolist(), "k": 5}).json()
    assert body["mode"] == "vector" and body["count"] == 5
    assert [h["rank"] for h in body["hits"]] == [1, 2, 3, 4, 5]
    assert body["hits"][0]["id"] == ITEM and body["hits"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    assert body["hits"][0]["footprint"]["properties"]["rank"] == 1


def test_search_by_item_excludes_itself_and_matches_brute_force(client: TestClient, app) -> None:
    col = app.state.collections["scenes"].collection
    body = client.post("/collections/scenes/search", json={"id": ITEM, "k": 23}).json()
    ids = [h["id"] for h in body["hits"]]
    assert body["mode"] == "item" and ITEM not in ids and len(ids) == 23
    items = list(col.items())
    vecs = col.vectors([it.id for it in items])
    sims = vecs @ col.vector(ITEM)
    expected = [items[i].id for i in np.argsort(-sims) if items[i].id != ITEM]
    assert ids[:5] == expected[:5]
    with_self = client.post("/collections/scenes/search", json={"id": ITEM, "k": 1, "exclude_self": False}).json()
    assert with_self["hits"][0]["id"] == ITEM


def test_search_filters(client: TestClient) -> None:
    bbox = [14.40, 35.85, 14.43, 35.87]  # the first three columns of the first two rows
    body = client.post("/collections/scenes/search", json={"id": ITEM, "k": 24, "bbox": bbox}).json()
    assert 0 < body["count"] <= 6
    for h in body["hits"]:
        lon, lat = h["centroid"]
        assert bbox[0] <= lon <= bbox[2] and bbox[1] <= lat <= bbox[3]
    body = client.post("/collections/scenes/search", json={"id": ITEM, "k": 24, "labels": ["river"]}).json()
    assert body["count"] == 6 and {h["label"] for h in body["hits"]} == {"river"}
    radius = {"lon": 14.405, "lat": 35.855, "metres": 1200}
    body = client.post("/collections/scenes/search", json={"id": ITEM, "k": 24, "radius": radius}).json()
    assert body["count"] >= 1
    from geoseek.geo import haversine_m

    for h in body["hits"]:
        assert haversine_m(h["centroid"], (14.405, 35.855)) <= 1200


@pytest.mark.parametrize(
    "payload, needle",
    [
        ({"vector": [0.1, 0.2]}, "dimension"),
        ({"id": ITEM, "vector": [0.1]}, "exactly one"),
        ({}, "exactly one"),
        ({"id": ITEM, "k": 0}, "k"),
        ({"id": ITEM, "bbox": [14.5, 35.8, 14.4, 35.9]}, "west <= east"),
        ({"id": ITEM, "bbox": [1, 2, 3]}, "bbox"),
        ({"id": ITEM, "radius": {"lon": 200, "lat": 0, "metres": 5}}, "lon"),
        ({"id": ITEM, "radius": {"lon": 14, "lat": 35, "metres": -5}}, "metres"),
        ({"id": ITEM, "surprise": 1}, "surprise"),
        ({"id": ITEM, "labels": "river"}, "labels"),
    ],
)
def test_search_rejects_bad_input_with_422(client: TestClient, payload: dict, needle: str) -> None:
    body = _err(client.post("/collections/scenes/search", json=payload), 422)
    assert needle in body["detail"]


def test_malformed_bodies_are_422(client: TestClient) -> None:
    headers = {"content-type": "application/json"}
    _err(client.post("/collections/scenes/search", content=b"{not json", headers=headers), 422, "validation_error")
    nan = b'{"vector": [NaN' + b", 0.0" * 103 + b"]}"
    body = _err(client.post("/collections/scenes/search", content=nan, headers=headers), 422)
    assert "finite" in body["detail"]
    _err(client.post("/collections/scenes/search", content=b"[]", headers=headers), 422)
    huge = client.post("/collections/scenes/search", json={"vector": [1e300] + [0.0] * 103})
    assert "finite" in _err(huge, 422)["detail"]
    _err(client.post("/collections/scenes/search", json={"id": "missing-item"}), 404, "not_found")


def test_similar_places(client: TestClient) -> None:
    # (14.405, 35.855) is inside the first cell: agricultural/agricultural00's footprint
    body = client.get("/collections/scenes/similar", params={"lon": 14.405, "lat": 35.855, "k": 5}).json()
    assert body["mode"] == "similar" and body["query"]["anchor"] == "agricultural/agricultural00"
    assert body["count"] == 5 and "agricultural/agricultural00" not in [h["id"] for h in body["hits"]]
    _err(client.get("/collections/scenes/similar", params={"lon": 0, "lat": 0}), 404, "not_found")
    _err(client.get("/collections/scenes/similar", params={"lon": 999, "lat": 0}), 422)
    _err(client.get("/collections/scenes/similar", params={"lon": "x", "lat": 0}), 422)
    _err(client.get("/collections/scenes/similar"), 422)


def test_layers(client: TestClient) -> None:
    from geoseek.sources.layers import LAYER_NAMES

    layers = client.get("/layers").json()
    assert [layer["name"] for layer in layers] == list(LAYER_NAMES)


def test_page_and_vendored_openlayers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "/static/vendor/ol/ol.js" in page.text and "cdn" not in page.text.lower()
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200
    _err(client.get("/static/package.json"), 404)
    _err(client.get("/static/vendor/ol/../../package.json"), 404)
    ol = client.get("/static/vendor/ol/ol.js")
    assert ol.status_code == 200, "OpenLayers is not installed: run `make setup-web`"
    assert len(ol.content) > 100_000
    assert client.get("/static/vendor/ol/ol.css").status_code == 200


# ------------------------------------------------------------------------------------------- auth


@pytest.fixture(scope="module")
def secured(scenes_path: Path):
    with TestClient(create_app({"scenes": scenes_path}, token="s3cret-token")) as c:
        yield c


def test_auth_required_when_configured(secured: TestClient) -> None:
    assert secured.get("/health").status_code == 200  # liveness stays open
    assert secured.get("/").status_code == 200  # the page asks for the token itself
    r = secured.get("/collections")
    _err(r, 401, "unauthorized")
    assert r.headers["www-authenticate"] == "Bearer"
    _err(secured.get("/collections", headers={"Authorization": "Bearer wrong"}), 401)
    _err(secured.get("/collections", headers={"Authorization": "Basic s3cret-token"}), 401)
    _err(secured.get("/collections", params={"token": "s3cret-token"}), 401)  # never from the URL
    _err(secured.get("/collections/scenes/items/x/thumbnail"), 401)
    _err(secured.post("/collections/scenes/search", json={"id": ITEM}), 401)
    ok = secured.get("/collections", headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200 and ok.json()["auth"] is True
    assert "s3cret-token" not in ok.text


def test_token_compare_is_constant_time() -> None:
    import inspect

    from geoseek.service import deps

    assert "hmac.compare_digest" in inspect.getsource(deps.require_token)


def test_openapi_declares_bearer(secured: TestClient) -> None:
    schemes = secured.get("/openapi.json").json()["components"]["securitySchemes"]
    assert any(s.get("scheme", "").lower() == "bearer" for s in schemes.values())


# ----------------------------------------------------------------------------------------- limits


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width``×``height`` pixels but holds almost no data (a decompression bomb's shape)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_read_upload_limited() -> None:
    import io

    from geoseek.errors import InvalidInputError
    from geoseek.service.deps import PayloadTooLarge, read_upload_limited

    assert read_upload_limited(io.BytesIO(b"x" * 100), 100) == b"x" * 100
    with pytest.raises(PayloadTooLarge):
        read_upload_limited(io.BytesIO(b"x" * 101), 100)
    with pytest.raises(PayloadTooLarge):
        read_upload_limited(b"x" * 101, 100)
    with pytest.raises(InvalidInputError):
        read_upload_limited(io.BytesIO(b""), 100)


def test_decode_image_limited(shared_data: Path) -> None:
    from geoseek.errors import InvalidInputError
    from geoseek.service.deps import PayloadTooLarge, decode_image_limited

    data = (shared_data / "imagery" / "ucmerced" / "beach" / "beach00.jpg").read_bytes()
    img = decode_image_limited(data, 256 * 256)
    assert img.size == (256, 256)
    with pytest.raises(PayloadTooLarge):
        decode_image_limited(data, 256 * 255)
    with pytest.raises(PayloadTooLarge):  # declared 100k × 100k: refused before decoding
        decode_image_limited(_png_header(100_000, 100_000), 16_000_000)
    with pytest.raises(InvalidInputError):
        decode_image_limited(b"not an image at all", 1000)
    with pytest.raises(InvalidInputError):
        decode_image_limited(data[: len(data) // 3], 10**6)  # truncated JPEG


def test_upload_route_limits(scenes_path: Path, shared_data: Path) -> None:
    """A route using the helpers as the capability routes do: 413 / 422 JSON, never 500."""
    app = create_app({"scenes": scenes_path}, max_upload_bytes=50_000, max_pixels=300 * 300)

    @app.post("/echo-size")
    def echo(file: UploadFile = File(...), settings: ServiceSettings = Depends(get_settings)) -> dict:
        img = decode_image_limited(read_upload_limited(file, settings.max_upload_bytes), settings.max_pixels)
        return {"size": list(img.size)}

    c = TestClient(app)
    jpg = (shared_data / "imagery" / "ucmerced" / "beach" / "beach00.jpg").read_bytes()
    assert c.post("/echo-size", files={"file": ("a.jpg", jpg, "image/jpeg")}).json() == {"size": [256, 256]}
    _err(c.post("/echo-size", files={"file": ("a.png", _png_header(20_000, 20_000), "image/png")}), 413, "payload_too_large")
    _err(c.post("/echo-size", files={"file": ("a.bin", b"\x00" * 60_000, "image/png")}), 413, "payload_too_large")
    _err(c.post("/echo-size", files={"file": ("a.txt", b"hello", "text/plain")}), 422)
    _err(c.post("/echo-size"), 422, "validation_error")
    # a body far past the limit is refused from its Content-Length before it is read
    _err(c.post("/echo-size", content=b"x" * 2_000_000, headers={"content-type": "application/octet-stream"}), 413)


def test_create_app_names_and_errors(scenes_path: Path, tmp_path: Path) -> None:
    from geoseek.errors import GeoseekError

    app = create_app([scenes_path])
    assert list(app.state.collections) == ["scenes"]
    with pytest.raises(GeoseekError):
        create_app([tmp_path / "missing"])
    with pytest.raises(GeoseekError):
        create_app({"a/b": scenes_path})


def test_cors(scenes_path: Path) -> None:
    c = TestClient(create_app({"scenes": scenes_path}, cors_origins=["http://example.test"]))
    r = c.options("/collections", headers={"Origin": "http://example.test", "Access-Control-Request-Method": "GET",
                                           "Access-Control-Request-Headers": "authorization"})
    assert r.headers.get("access-control-allow-origin") == "http://example.test"
    r = c.get("/collections", headers={"Origin": "http://evil.test"})
    assert "access-control-allow-origin" not in r.headers


def test_every_route_module_is_served(app) -> None:
    """A route module that fails to import is skipped with a logged error; none may be."""
    from geoseek.service import routes

    files = {p.stem for p in Path(routes.__file__).parent.glob("*.py") if not p.stem.startswith("_")}
    served = {m.__name__.rsplit(".", 1)[1] for m in app.state.route_modules}
    assert served == files
    assert app.state.route_modules[-1].__name__.endswith(".collections")  # generic routes match last
