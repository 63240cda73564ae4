"""Small real collections for the service tests: UC Merced scenes embedded with the demo's
deterministic descriptor. UC Merced has no geolocation, so the test gives each scene a
footprint on a grid of 0.01° cells (synthetic locations; the API only needs some geometry)."""

from __future__ import annotations

from pathlib import Path

import pytest

CLASSES = ("agricultural", "beach", "denseresidential", "river")
PER_CLASS = 6
GRID_ORIGIN = (14.40, 35.85)  # (lon, lat) of the south-west corner of the grid
CELL = 0.01


def grid_footprints(ids: list[str]) -> dict[str, tuple[float, float, float, float]]:
    """id → (w, s, e, n): one row of 0.01° cells per class, one column per image."""
    out = {}
    for i, item_id in enumerate(sorted(ids)):
        row, col = divmod(i, PER_CLASS)
        w, s = GRID_ORIGIN[0] + col * CELL, GRID_ORIGIN[1] + row * CELL
        out[item_id] = (round(w, 6), round(s, 6), round(w + CELL, 6), round(s + CELL, 6))
    return out


def build_test_collection(shared_data: Path, out: Path) -> Path:
    from geoseek.demo import build_image_collection, image_files

    root = shared_data / "imagery" / "ucmerced"
    files = image_files(root, per_class=PER_CLASS, classes=CLASSES)
    ids = [f"{cls}/{p.stem}" for cls, p in files]
    return build_image_collection(root, out, per_class=PER_CLASS, classes=CLASSES, footprints=grid_footprints(ids),
                                  progress=False)


@pytest.fixture(scope="session")
def scenes_path(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 24-item collection (4 UC Merced classes × 6) with footprints and JPEG thumbnails."""
    return build_test_collection(shared_data, tmp_path_factory.mktemp("service") / "scenes")


@pytest.fixture(scope="session")
def sketch_scenes(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An osm-scenes collection of central Helsinki (6 scenes of 480 m) for sketch-map search.

    Uses the installed default sketch-map model when there is one; otherwise an untrained
    encoder (the service tests check the page and the API plumbing, not retrieval quality)."""
    torch = pytest.importorskip("torch")
    from geoseek.checkpoint import CheckpointError, resolve_checkpoint
    from geoseek.sketchmap import build_scene_collection

    tmp = tmp_path_factory.mktemp("sketchmap")
    try:
        model: str | Path = str(resolve_checkpoint("default", "sketchmap"))
    except CheckpointError:
        from geoseek.checkpoint import save_checkpoint
        from geoseek.encoders.registry import MODELS

        torch.manual_seed(0)
        model = save_checkpoint(tmp / "model.pt", model_name="sketchmap-resnet", config={},
                                model=MODELS.create("sketchmap-resnet"), data={"window_m": 480.0, "size": 64})
    region = shared_data / "osm" / "helsinki-center.osm.pbf"
    build_scene_collection(region, tmp / "helsinki", model=model, overwrite=True, progress=False)
    return tmp / "helsinki"


@pytest.fixture(scope="session")
def osm_tiles(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An osm-tiles collection of central Helsinki (zoom-17 tiles, ~90 items) that also serves the
    offline basemap. Default tiles model when installed, else an untrained tile CNN."""
    torch = pytest.importorskip("torch")
    from geoseek.checkpoint import CheckpointError, resolve_checkpoint
    from geoseek.tiles import build_osm_collection

    tmp = tmp_path_factory.mktemp("tiles")
    try:
        model: str | Path = str(resolve_checkpoint("default", "tiles"))
    except CheckpointError:
        from geoseek.checkpoint import save_checkpoint
        from geoseek.encoders.registry import MODELS

        torch.manual_seed(0)
        model = save_checkpoint(tmp / "model.pt", model_name="tile-cnn", config={}, model=MODELS.create("tile-cnn"))
    build_osm_collection(shared_data / "osm" / "helsinki-center.osm.pbf", tmp / "helsinki-tiles", model=model,
                         overwrite=True, progress=False)
    return tmp / "helsinki-tiles"


@pytest.fixture(scope="session")
def app(scenes_path: Path):
    from geoseek.service.app import create_app

    return create_app({"scenes": scenes_path}, max_upload_bytes=200_000, max_pixels=1_000_000)


@pytest.fixture(scope="session")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c
