"""Small real collections for the service tests: UC Merced scenes embedded with a deterministic
colour / layout / texture descriptor (below; no trained model). UC Merced has no geolocation, so
the test gives each scene a footprint on a grid of 0.01° cells (synthetic locations; the API only
needs some geometry)."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

CLASSES = ("agricultural", "beach", "denseresidential", "river")
PER_CLASS = 6
GRID_ORIGIN = (14.40, 35.85)  # (lon, lat) of the south-west corner of the grid
CELL = 0.01


# ------------------------------------------------------------- the deterministic descriptor
HIST_BINS = 8
GRID = 4
ORIENT_BINS = 8
EMBED_DIM = 3 * HIST_BINS + GRID * GRID * 3 + 4 * ORIENT_BINS
"""Dimension of :func:`image_embedding`: RGB histograms (24) + 4×4 colour layout (48) + 4 quadrant
gradient-orientation histograms (32) = 104."""

BASELINE_MODEL_ID = "demo-colour-layout-texture-v1"
"""The ``model_id`` of the test collections (no trained model)."""
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff")


def image_embedding(img: object, size: int = 128) -> np.ndarray:
    """A deterministic image descriptor: (EMBED_DIM,) float32, L2-normalized.

    Concatenates per-channel colour histograms, a GRID×GRID grid of mean colours and
    gradient-orientation histograms (magnitude-weighted) of the four quadrants; each block is
    L2-normalized before the whole vector is. ``img`` is a PIL image (any mode).
    """
    from PIL import Image

    assert isinstance(img, Image.Image)
    x = np.asarray(img.convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32) / 255.0  # (H, W, 3)
    hist = np.concatenate([np.histogram(x[..., c], bins=HIST_BINS, range=(0.0, 1.0))[0] for c in range(3)]).astype(np.float32)
    cells = x.reshape(GRID, size // GRID, GRID, size // GRID, 3).mean(axis=(1, 3)).reshape(-1)
    gray = x.mean(axis=2)
    gy, gx = np.gradient(gray)
    mag = np.hypot(gx, gy)
    ang = np.mod(np.arctan2(gy, gx), np.pi)  # unsigned orientation in [0, pi)
    h = size // 2
    orient = []
    for r in (0, h):
        for c in (0, h):
            a, m = ang[r:r + h, c:c + h], mag[r:r + h, c:c + h]
            orient.append(np.histogram(a, bins=ORIENT_BINS, range=(0.0, np.pi), weights=m)[0])
    blocks = [hist, cells - cells.mean(), np.concatenate(orient).astype(np.float32)]
    v = np.concatenate([b / (np.linalg.norm(b) + 1e-8) for b in blocks]).astype(np.float32)
    return v / (np.linalg.norm(v) + 1e-8)


def thumbnail_jpeg(img: object, size: int = 128) -> bytes:
    """A JPEG thumbnail at most ``size`` pixels on its longer side."""
    from PIL import Image

    assert isinstance(img, Image.Image)
    t = img.convert("RGB")
    t.thumbnail((size, size))
    buf = io.BytesIO()
    t.save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def image_files(root: Path, per_class: int | None = None, classes: Iterable[str] | None = None) -> list[tuple[str, Path]]:
    """(class, path) of the images under ``root/<class>/``, sorted; at most ``per_class`` each."""
    if not root.is_dir():
        from geoseek.errors import NotFoundError

        raise NotFoundError(f"image folder {root} does not exist")
    wanted = set(classes) if classes is not None else None
    out: list[tuple[str, Path]] = []
    for cls_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        if wanted is not None and cls_dir.name not in wanted:
            continue
        files = sorted(p for p in cls_dir.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        out.extend((cls_dir.name, p) for p in files[:per_class])
    return out


def build_image_collection(root: Path, out: Path, *, per_class: int | None = None, classes: Iterable[str] | None = None,
                           footprints: dict[str, tuple[float, float, float, float]] | None = None,
                           overwrite: bool = True, progress: bool = True) -> Path:
    """Build a collection of the images in ``root/<class>/*`` with :func:`image_embedding`.

    Items: id ``<class>/<stem>``, label = class, JPEG thumbnail. UC Merced has no geolocation,
    so items have no footprint unless ``footprints`` (id → (w, s, e, n)) gives one.
    """
    from PIL import Image
    from tqdm import tqdm

    from geoseek.collection import Collection, Item

    files = image_files(root, per_class=per_class, classes=classes)
    if not files:
        from geoseek.errors import NotFoundError

        raise NotFoundError(f"no images under {root}/<class>/")
    items: list[Item] = []
    vectors = np.zeros((len(files), EMBED_DIM), dtype=np.float32)
    for i, (cls, path) in enumerate(tqdm(files, desc=f"embedding {root.name}", unit="img", disable=not progress)):
        with Image.open(path) as img:
            img.load()
            vectors[i] = image_embedding(img)
            thumb = thumbnail_jpeg(img)
        item_id = f"{cls}/{path.stem}"
        fp = (footprints or {}).get(item_id)
        items.append(Item(id=item_id, name=path.stem, label=cls, source=str(path.relative_to(root.parent)),
                          footprint=fp, thumbnail=thumb))
    with Collection.create(out, modality="images", model_id=BASELINE_MODEL_ID, model_checksum="none", dim=EMBED_DIM,
                           metric="ip", backend="faiss", overwrite=overwrite,
                           extra={"source": str(root.name), "embedding": "colour histograms + 4x4 layout + orientation histograms"}) as b:
        b.add(items, vectors)
    return out


def grid_footprints(ids: list[str]) -> dict[str, tuple[float, float, float, float]]:
    """id → (w, s, e, n): one row of 0.01° cells per class, one column per image."""
    out = {}
    for i, item_id in enumerate(sorted(ids)):
        row, col = divmod(i, PER_CLASS)
        w, s = GRID_ORIGIN[0] + col * CELL, GRID_ORIGIN[1] + row * CELL
        out[item_id] = (round(w, 6), round(s, 6), round(w + CELL, 6), round(s + CELL, 6))
    return out


def build_test_collection(shared_data: Path, out: Path) -> Path:
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
    from geoseek.capabilities.sketchmap.build import build_scene_collection

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
    from geoseek.capabilities.tiles.build import build_osm_collection

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


@pytest.fixture(scope="session")
def far_off_points(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 401-point collection: a 20 × 20 grid of 0.01° over Malta (14.2–14.39 E, 35.8–35.99 N) and one
    point far out at sea (14.83 E, 36.70 N), as a ferry line's tile is in the Malta OSM tiles."""
    from geoseek.collection import Collection, Item

    out = tmp_path_factory.mktemp("points") / "pts"
    lon, lat = np.meshgrid(14.2 + 0.01 * np.arange(20), 35.8 + 0.01 * np.arange(20))
    pts = np.c_[lon.ravel(), lat.ravel()].tolist() + [[14.83, 36.70]]
    items = [Item(id=f"p{i}", name=f"p{i}", centroid=(x, y)) for i, (x, y) in enumerate(pts)]
    vecs = np.random.default_rng(0).normal(size=(len(items), 4)).astype(np.float32)
    with Collection.create(out, modality="points", model_id="none", model_checksum="none", dim=4, metric="ip",
                           backend="faiss") as b:
        b.add(items, vecs / np.linalg.norm(vecs, axis=1, keepdims=True))
    return out
