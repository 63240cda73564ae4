"""``python -m geoseek.demo``: build the demo collections from ../shared/data (when missing),
start the service over them and print its URL.

Collections (under ``--dir``):
- ``malta``: OSM tiles of Malta, built by ``geoseek build osm`` (similar places, basemap);
- ``malta-scenes``: Malta cut into scenes for sketch-map search, by ``geoseek build sketchmap``;
- ``geo-images``: located aerial chips and OSM tiles for image search (± location), by
  ``geoseek build geo-images``;
- ``ucmerced``: UC Merced aerial scenes, built by ``geoseek build images`` when that builder
  exists, else with :func:`image_embedding` below (colour, layout and texture statistics; a
  deterministic baseline that needs no trained model).
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

HIST_BINS = 8
GRID = 4
ORIENT_BINS = 8
EMBED_DIM = 3 * HIST_BINS + GRID * GRID * 3 + 4 * ORIENT_BINS
"""Dimension of :func:`image_embedding`: RGB histograms (24) + 4×4 colour layout (48) + 4 quadrant
gradient-orientation histograms (32) = 104."""

BASELINE_MODEL_ID = "demo-colour-layout-texture-v1"
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


# ---------------------------------------------------------------------------------------------
# the demo


def _has_builder(name: str) -> bool:
    """Whether ``geoseek build <name>`` exists (a capability engineer's builder)."""
    try:
        from geoseek.cli import build_parser

        parser = build_parser()
    except Exception:
        return False
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            build = action.choices.get("build")
            if build is None:
                return False
            for a in build._actions:
                if isinstance(a, argparse._SubParsersAction):
                    return name in a.choices
    return False


def _run_builder(argv: Sequence[str]) -> bool:
    print("geoseek demo: " + " ".join(["geoseek", *argv]), flush=True)
    rc = subprocess.call([sys.executable, "-m", "geoseek", *argv])
    if rc != 0:
        print(f"geoseek demo: `geoseek {' '.join(argv)}` failed (exit {rc}); continuing without it", file=sys.stderr)
    return rc == 0


def ensure_collections(data: Path, demo_dir: Path) -> dict[str, Path]:
    """Build the demo collections that are missing; returns {name: path} of those available."""
    from geoseek.collection import Collection

    demo_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    def usable(path: Path) -> bool:
        try:
            Collection.open(path)
            return True
        except Exception:
            return False

    malta = demo_dir / "malta"
    pbf = data / "osm" / "malta-2018-08.osm.pbf"
    if not usable(malta) and pbf.is_file() and _has_builder("osm"):
        _run_builder(["build", "osm", str(pbf), "--out", str(malta)])
    if usable(malta):
        out["malta"] = malta

    scenes = demo_dir / "malta-scenes"
    if not usable(scenes) and pbf.is_file() and _has_builder("sketchmap"):
        _run_builder(["build", "sketchmap", str(pbf), "--out", str(scenes)])
    if usable(scenes):
        out["malta-scenes"] = scenes

    geo = demo_dir / "geo-images"
    if not usable(geo) and _has_builder("geo-images"):
        _run_builder(["build", "geo-images", "--data", str(data), "--out", str(geo)])
    if usable(geo):
        out["geo-images"] = geo

    uc = demo_dir / "ucmerced"
    images = data / "imagery" / "ucmerced"
    baseline = usable(uc) and Collection.open(uc).manifest.get("model_id") == BASELINE_MODEL_ID
    if (not usable(uc) or baseline) and images.is_dir():
        built = False
        if _has_builder("images"):  # atomic: a failed build leaves the baseline collection in place
            built = _run_builder(["build", "images", str(images), "--out", str(uc), "--overwrite"])
        if not built and not usable(uc):
            print(f"geoseek demo: building {uc} from {images} with the colour/layout/texture baseline", flush=True)
            build_image_collection(images, uc)
    if usable(uc):
        out["ucmerced"] = uc
    return out


def main(argv: Sequence[str] | None = None) -> int:
    from geoseek.paths import default_data_dir

    p = argparse.ArgumentParser(prog="python -m geoseek.demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=default_data_dir(), help="the shared data folder (default ../shared/data)")
    p.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo collections are built (default .demo)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--build-only", action="store_true", help="build the collections and exit")
    args = p.parse_args(argv)
    from geoseek.errors import GeoseekError

    try:
        collections = ensure_collections(args.data.resolve(), args.dir.resolve())
    except GeoseekError as exc:
        print(f"geoseek demo: error: {exc}", file=sys.stderr)
        return 2
    if not collections:
        print(f"geoseek demo: error: no demo collection could be built from {args.data}", file=sys.stderr)
        return 2
    if args.build_only:
        print("geoseek demo: built " + ", ".join(f"{k} ({v})" for k, v in collections.items()))
        return 0
    import uvicorn

    from geoseek.cli.serve import TOKEN_ENV
    from geoseek.service.deps import read_token
    from geoseek.service.app import create_app

    token = read_token(TOKEN_ENV, None)
    app = create_app(collections, token=token)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"\ngeoseek demo: open http://{shown}:{args.port}/  (collections: {', '.join(collections)}; API docs at /docs)\n", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
