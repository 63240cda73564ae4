"""The web map in Debian's chromium (Playwright, no browser download) against a server on loopback.

Starts uvicorn in a thread over a small real collection, clicks a place for similar places,
checks the results on the map and in the list, zooms to one, asks for "more like this", and
keeps a screenshot under tests/artifacts/.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Server:
    """uvicorn on 127.0.0.1:<free port> in a daemon thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.port = _free_port()
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: run `make setup-system` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.set_default_timeout(30_000)  # generous: CI machines may be busy
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / ".gitignore").write_text("*\n")
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def _click_lonlat(page, lon: float, lat: float) -> None:
    x, y = page.evaluate(
        "([lon, lat]) => geoseek.map.getPixelFromCoordinate(ol.proj.fromLonLat([lon, lat]))", [lon, lat])
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + x, box["y"] + y)


def test_similar_places_on_the_map(app, page) -> None:
    with _Server(app) as url:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        assert page.locator("#collection option").all_inner_texts() == ["scenes"]
        tabs = page.locator("#tool-tabs button").all_inner_texts()
        assert "Similar places" in tabs and "By item" in tabs
        assert "Sketch map" not in tabs and "Image" not in tabs  # only the modes this collection supports
        # the collection's extent is drawn and the map is fitted to it
        page.wait_for_function("geoseek.map.getView().getZoom() > 11")

        # click inside the footprint of agricultural/agricultural00 (the grid's first cell)
        _click_lonlat(page, 14.405, 35.855)
        page.wait_for_selector("#results li[data-id]")
        assert page.locator("#results li[data-id]").count() == 10
        assert page.locator("#results-title").inner_text().startswith("Similar to (14.40")
        on_map = page.evaluate("geoseek.results.getFeatures().length")
        assert on_map == 10
        ranks = page.evaluate("geoseek.results.getFeatures().map(f => f.get('rank')).sort((a, b) => a - b)")
        assert ranks == list(range(1, 11))
        # thumbnails load from the API
        page.wait_for_function("[...document.querySelectorAll('#results img')].some(i => i.complete && i.naturalWidth > 0)")

        # click a result: it is selected in the list and on the map, and the map zooms to it
        first = page.locator("#results li[data-id]").first
        first_id = first.get_attribute("data-id")
        first.click()
        page.wait_for_function("geoseek.results.getFeatures().some(f => f.get('selected'))")
        selected = page.evaluate("geoseek.results.getFeatures().filter(f => f.get('selected')).map(f => f.getId())")
        assert selected == [first_id]
        page.wait_for_timeout(600)  # let the zoom animation finish
        _screenshot(page, "service-similar.png")

        # "more like this" runs an item search
        page.locator("#results li[data-id] button.more").nth(1).click()
        page.wait_for_function("document.querySelector('#results-title').textContent.startsWith('Like ')")
        assert page.locator("#results li[data-id]").count() == 10

        # an understandable error: a click far from every item
        page.locator("#tool-tabs button", has_text="Similar places").click()
        page.wait_for_timeout(400)  # let the zoom-to-results animation end
        page.evaluate("(() => { const v = geoseek.map.getView(); v.cancelAnimations();"
                      " v.setCenter(ol.proj.fromLonLat([0, 0])); v.setZoom(12); })()")
        page.wait_for_timeout(200)
        _click_lonlat(page, 0.0, 0.0)
        page.wait_for_selector("#error:not([hidden])")
        assert "no item" in page.locator("#error-text").inner_text().lower()


def test_token_prompt(scenes_path: Path, page) -> None:
    from geoseek.service.app import create_app

    app = create_app({"scenes": scenes_path}, token="browser-secret")
    with _Server(app) as url:
        page.goto(url + "/")
        page.wait_for_selector("#token-form:not([hidden])")
        assert "token" in page.locator("#error-text").inner_text().lower()
        page.fill("#token", "browser-secret")
        page.click("#token-form button")
        page.wait_for_selector("body[data-ready='1']")
        _click_lonlat(page, 14.405, 35.855)
        page.wait_for_selector("#results li[data-id] img")
        page.wait_for_function("[...document.querySelectorAll('#results img')].some(i => i.complete && i.naturalWidth > 0)")
        _screenshot(page, "service-token.png")


def test_sketch_map_search_over_the_offline_basemap(sketch_scenes: Path, osm_tiles: Path, page) -> None:
    from geoseek.service.app import create_app

    app = create_app({"helsinki": sketch_scenes, "helsinki-tiles": osm_tiles})
    tiles: list[int] = []
    page.on("response", lambda r: tiles.append(r.status) if "/tiles/" in r.url and r.url.endswith(".png") else None)
    with _Server(app) as url:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        page.select_option("#collection", "helsinki")
        page.locator("#tool-tabs button", has_text="Sketch map").click()
        assert page.locator("#palette input").count() == 14
        page.wait_for_function("geoseek.map.getView().getZoom() > 13")
        box = page.locator("#map").bounding_box()
        cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

        # a building (area): three clicks and a double-click
        page.check("#palette input[value='building']")
        for dx, dy in ((-120, -80), (-20, -80), (-20, 10)):
            page.mouse.click(cx + dx, cy + dy)
            page.wait_for_timeout(150)
        page.mouse.dblclick(cx - 120, cy + 10)
        page.wait_for_function("geoseek.sketch.getFeatures().length === 1")
        # a major road (line) across the sketch
        page.check("#palette input[value='major_road']")
        page.mouse.click(cx - 200, cy + 60)
        page.wait_for_timeout(150)
        page.mouse.dblclick(cx + 200, cy + 70)
        page.wait_for_function("geoseek.sketch.getFeatures().length === 2")
        layers = page.evaluate("geoseek.sketch.getFeatures().map(f => f.get('layer')).sort()")
        assert layers == ["building", "major_road"]

        page.click("#sketchmap-search")
        page.wait_for_function("document.querySelector('#results-title').textContent.startsWith('Sketch map:')")
        expected = min(10, len(app.state.collections["helsinki"].collection))  # k = 10
        assert expected >= 1
        assert page.locator("#results li[data-id]").count() == expected
        assert page.evaluate("geoseek.results.getFeatures().length") == expected
        ranks = page.evaluate("geoseek.results.getFeatures().map(f => f.get('rank')).sort((a, b) => a - b)")
        assert ranks == list(range(1, expected + 1))
        assert page.locator("#error").is_hidden()
        # "this is what I meant" stores a (sketch, scene) feedback pair
        page.locator("#results li[data-id] button", has_text="this is what I meant").first.click()
        page.wait_for_selector("#results button:has-text('thanks: saved')")
        from geoseek.capabilities.sketchmap.feedback import count_feedback

        assert count_feedback(sketch_scenes) >= 1

        # the basemap is rendered offline from the collection's own OSM data
        assert tiles and all(status == 200 for status in tiles), tiles
        page.wait_for_timeout(500)
        _screenshot(page, "service-sketch-map.png")

        # the tiles collection: similar places on real OSM tiles, with its own basemap
        page.select_option("#collection", "helsinki-tiles")
        assert "Sketch map" not in page.locator("#tool-tabs button").all_inner_texts()
        page.wait_for_function("geoseek.map.getView().getZoom() > 13")
        lon, lat = page.evaluate("ol.proj.toLonLat(geoseek.map.getView().getCenter())")
        _click_lonlat(page, lon, lat)
        page.wait_for_function("document.querySelector('#results-title').textContent.startsWith('Similar to')")
        assert page.locator("#results li[data-id]").count() == 10
        page.wait_for_function("[...document.querySelectorAll('#results img')].some(i => i.complete && i.naturalWidth > 0)")
        page.wait_for_timeout(500)
        _screenshot(page, "service-tiles-similar.png")


def test_sketch_and_image_tools_send_uploads(app, client, shared_data: Path, page) -> None:
    """The free-hand sketch and image-upload tools, with their endpoints stubbed in the browser:
    the page posts a PNG of the canvas / the chosen file as multipart with k (and the map
    centre for a located image), and shows the answer. The real endpoints are driven by
    :func:`test_sketch_and_image_search_with_the_default_models`."""
    canned = client.post("/collections/scenes/search", json={"id": "beach/beach00", "k": 5}).json()
    posted: dict[str, bytes] = {}

    def collections(route) -> None:
        body = route.fetch().json()
        for c in body["collections"]:
            c["modes"] += ["sketch", "image"]
            c["endpoints"]["sketch"] = "POST /collections/{name}/search/sketch"
            c["endpoints"]["image"] = "POST /collections/{name}/search/image"
        route.fulfill(json=body)

    def upload(route) -> None:
        posted[route.request.url.rsplit("/", 1)[1]] = route.request.post_data_buffer or b""
        route.fulfill(json=dict(canned, mode=route.request.url.rsplit("/", 1)[1]))

    page.route("**/collections", collections)
    page.route("**/search/sketch", upload)
    page.route("**/search/image", upload)
    with _Server(app) as url:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        page.locator("#tool-tabs button", has_text="Sketch").first.click()
        box = page.locator("#sketch-canvas").bounding_box()
        page.mouse.move(box["x"] + 40, box["y"] + 40)
        page.mouse.down()
        for i in range(1, 12):
            page.mouse.move(box["x"] + 40 + 15 * i, box["y"] + 40 + 10 * i)
        page.mouse.up()
        page.click("#sketch-search")
        page.wait_for_function("document.querySelector('#results-title').textContent.startsWith('Sketch:')")
        assert b"\x89PNG" in posted["sketch"] and b'name="k"' in posted["sketch"]
        assert page.locator("#results li[data-id]").count() == 5

        page.locator("#tool-tabs button", has_text="Image").click()
        page.set_input_files("#image-file", str(shared_data / "imagery" / "ucmerced" / "beach" / "beach07.jpg"))
        page.check("#image-located")
        page.click("#image-search")
        page.wait_for_function("document.querySelector('#results-title').textContent.startsWith('Image beach07.jpg')")
        body = posted["image"]
        # (Chromium leaves the bytes of a picked file out of the intercepted body; its part is there)
        assert b'name="file"; filename="beach07.jpg"' in body and b"image/jpeg" in body
        assert b'name="lon"' in body and b'name="lat"' in body and b'name="geo_weight"' in body
        assert page.locator("#results li[data-id]").count() == 5


@pytest.fixture(scope="module")
def model_collections(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Small real collections built with the shipped default models: UC Merced scenes for
    sketch search (3 classes × 3 images, no locations) and located UC Merced scenes for image
    search (6 images on a grid near Malta; synthetic locations, the images are real)."""
    import numpy as np
    from PIL import Image

    from geoseek.checkpoint import load_model, resolve_checkpoint
    from geoseek.capabilities.gimi import build_collection
    from geoseek.capabilities.sketch_image import build_image_collection
    from geoseek.sources.geo_image_dataset import GeoImageDataset, GeoImageSample

    tmp = tmp_path_factory.mktemp("model-collections")
    src = shared_data / "imagery" / "ucmerced"
    folder = tmp / "ucm"
    for cls in ("airplane", "beach", "river"):
        (folder / cls).mkdir(parents=True)
        for p in sorted((src / cls).glob("*.jpg"))[:3]:
            (folder / cls / p.name).symlink_to(p)
    build_image_collection(folder, tmp / "sketch-scenes", model="default", progress=False)

    ckpt = resolve_checkpoint("default", "geo-image")
    size = int(load_model(ckpt)[1]["config"]["image_size"])
    samples, images = [], []
    for i, (cls, name) in enumerate([("beach", "beach00"), ("beach", "beach01"), ("river", "river00"),
                                     ("river", "river01"), ("airplane", "airplane00"), ("airplane", "airplane01")]):
        lon, lat = 14.40 + 0.02 * (i % 3), 35.88 + 0.02 * (i // 3)
        samples.append(GeoImageSample(name, "ucmerced", "raster-chip", (lon, lat),
                                      (lon - 0.005, lat - 0.005, lon + 0.005, lat + 0.005), cls, (i // 3, i % 3), "test"))
        with Image.open(src / cls / f"{name}.jpg") as im:
            images.append(np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR)))
    build_collection(GeoImageDataset(samples, np.stack(images), {"image_size": size}), ckpt, tmp / "located",
                     progress=False)
    return {"ucm": tmp / "sketch-scenes", "located": tmp / "located"}


def test_sketch_and_image_search_with_the_default_models(model_collections: dict[str, Path], shared_data: Path,
                                                         page) -> None:
    """The free-hand sketch and the image upload against their real endpoints and shipped models:
    draw on the canvas → POST /search/sketch → ranked scenes; upload a photo at the map centre →
    POST /search/image → ranked located images as footprints on the map."""
    from geoseek.service.app import create_app

    app = create_app(model_collections)
    with _Server(app) as url:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        page.select_option("#collection", "ucm")
        page.locator("#tool-tabs button", has_text="Sketch").first.click()
        box = page.locator("#sketch-canvas").bounding_box()
        page.mouse.move(box["x"] + 30, box["y"] + 100)  # a runway-like stroke and a cross stroke
        page.mouse.down()
        for i in range(1, 16):
            page.mouse.move(box["x"] + 30 + 12 * i, box["y"] + 100 - 2 * i)
        page.mouse.up()
        page.mouse.move(box["x"] + 100, box["y"] + 40)
        page.mouse.down()
        for i in range(1, 10):
            page.mouse.move(box["x"] + 100 + 3 * i, box["y"] + 40 + 14 * i)
        page.mouse.up()
        page.click("#sketch-search")
        page.wait_for_function("document.querySelector('#results-title').textContent.startsWith('Sketch:')")
        assert page.locator("#error").is_hidden()
        assert page.locator("#results li[data-id]").count() == 9  # every scene, ranked (k = 10 > 9)
        ids = page.evaluate("[...document.querySelectorAll('#results li[data-id]')].map(li => li.dataset.id)")
        assert len(set(ids)) == 9 and all(i.split("/")[0] in {"airplane", "beach", "river"} for i in ids)
        _screenshot(page, "service-sketch.png")

        page.select_option("#collection", "located")
        page.locator("#tool-tabs button", has_text="Image").click()
        page.set_input_files("#image-file", str(shared_data / "imagery" / "ucmerced" / "beach" / "beach07.jpg"))
        page.check("#image-located")
        page.click("#image-search")
        page.wait_for_function("document.querySelector('#results-title').textContent.startsWith('Image beach07.jpg')")
        assert page.locator("#error").is_hidden()
        assert page.locator("#results li[data-id]").count() == 6
        assert page.evaluate("geoseek.results.getFeatures().length") == 6  # footprints on the map
        page.wait_for_timeout(300)
        _screenshot(page, "service-image.png")


def test_first_view_is_fitted_to_the_items(far_off_points: Path, page) -> None:
    """The page opens on where the items are (``items_bbox``), not on an extent stretched by a far-off one."""
    from geoseek.service.app import create_app

    with _Server(create_app({"pts": far_off_points})) as url:
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']")
        page.wait_for_function("geoseek.map.getView().getZoom() > 9")
        w, s, e, n = page.evaluate(
            "ol.proj.transformExtent(geoseek.map.getView().calculateExtent(geoseek.map.getSize()), 'EPSG:3857', 'EPSG:4326')")
        assert w <= 14.2 and s <= 35.8 and e >= 14.39 and n >= 35.99  # the whole grid is in view
        assert not (w <= 14.83 <= e and s <= 36.70 <= n)  # the far-off point is not
        assert (e - w) < 2 * 0.19 + 0.2  # and the grid fills the view (padding and the map's aspect aside)
