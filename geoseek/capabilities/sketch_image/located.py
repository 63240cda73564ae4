"""Located sketch-searchable collections: GeoTIFFs (any CRS) → chips with (lon, lat) footprints
(``geoseek build images --raster A.tif [B.tif ...] --chip-m M [--stride-m S] --out COL``).

Chipping is geo-image search's (:func:`geoseek.sources.imagery.iter_chips`, rasterio windows,
footprints = the window corners transformed to WGS84 with densified edges); chip pixels are
shown with the raster's 2–98 % stretch (:func:`~geoseek.sources.imagery.to_rgb8`), resized to
the backbone's 224 px and embedded like image-folder collections. Items carry ``footprint``
(west, south, east, north) and ``centroid`` (lon, lat) in degrees, so hits lie on the web map and
``--bbox`` / ``--radius`` filters apply; ``label`` is the raster's name.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from geoseek.capabilities.sketch_image.data import MODALITY, TASK
from geoseek.encoders.sketch_image import IMAGE_SIZE, image_backbone_features
from geoseek.errors import InvalidInputError


def thumbnail_rgb(rgb: np.ndarray, size: int = 96) -> bytes:
    """JPEG bytes of an (H, W, 3) uint8 image shrunk to fit ``size`` × ``size`` px."""
    import io

    from PIL import Image

    img = Image.fromarray(rgb)
    img.thumbnail((size, size))
    b = io.BytesIO()
    img.save(b, "JPEG", quality=80)
    return b.getvalue()


def pixel_size_m(path: str | Path) -> float:
    """Ground size of one raster pixel in metres (x resolution; degrees converted at the raster's centre latitude)."""
    from geoseek.sources.imagery import _open

    with _open(path) as src:
        if src.crs is None:
            raise InvalidInputError(f"{path} has no coordinate reference system; cannot place it on Earth")
        res = float(abs(src.res[0]))
        if src.crs.is_geographic:
            lat = (src.bounds.bottom + src.bounds.top) / 2
            return res * 111_320.0 * max(math.cos(math.radians(lat)), 1e-6)
        return res * float(src.crs.linear_units_factor[1]) if src.crs.linear_units_factor else res


def raster_chips_px(path: str | Path, chip_m: float, stride_m: float | None = None) -> tuple[int, int]:
    """(chip, stride) in pixels of ``path`` for a chip side and stride in metres (stride default: the chip)."""
    if not chip_m > 0 or (stride_m is not None and not stride_m > 0):
        raise InvalidInputError(f"--chip-m and --stride-m must be > 0 metres, got {chip_m} and {stride_m}")
    px = pixel_size_m(path)
    chip = max(1, int(round(chip_m / px)))
    stride = max(1, int(round((stride_m or chip_m) / px)))
    if chip < 8:
        raise InvalidInputError(f"a {chip_m:g}-m chip is {chip} pixels of {Path(path).name} ({px:.3g} m/px): give --chip-m >= {8 * px:.3g}")
    return chip, stride


def build_raster_collection(
    rasters: Sequence[str | Path],
    out: str | Path,
    chip_m: float,
    stride_m: float | None = None,
    model: str | Path = "default",
    overwrite: bool = False,
    batch: int = 32,
    thumbnails: bool = True,
    progress: bool = True,
    backend: str = "faiss",
    max_nodata: float = 0.05,
) -> dict[str, Any]:
    """Chip GeoTIFFs and build a located sketch-searchable collection (module docstring); returns counts and seconds."""
    from geoseek.checkpoint import file_checksum, load_model, resolve_checkpoint
    from geoseek.collection import Collection, Item
    from geoseek.sources.geo_image_dataset import resize_rgb
    from geoseek.sources.imagery import iter_chips, raster_info, raster_stretch, to_rgb8

    t0 = time.perf_counter()
    if not rasters:
        raise InvalidInputError("give at least one raster (--raster A.tif)")
    ckpt = resolve_checkpoint(model, TASK)
    net, payload = load_model(ckpt)
    net.eval()
    vecs, toks, items = [], [], []
    per_raster: dict[str, int] = {}
    names = [Path(r).stem for r in rasters]
    for r, name in zip(rasters, names):
        info = raster_info(r)
        chip, stride = raster_chips_px(r, chip_m, stride_m)
        stretch = raster_stretch(r, info.rgb_bands)
        source = name if names.count(name) == 1 else f"{Path(r).parent.name}-{name}"
        chips = iter_chips(r, chip, stride, max_nodata=max_nodata, source=source, windowed=True)
        buf: list = []

        def flush(buf: list) -> None:
            rgb = [resize_rgb(to_rgb8(c.pixels, info.rgb_bands, stretch), IMAGE_SIZE) for c in buf]
            x = torch.from_numpy(np.stack(rgb).astype(np.float32) / 255.0).permute(0, 3, 1, 2)
            with torch.no_grad():
                tok = net.image_tokens_from(image_backbone_features(x))
            vecs.append(net.embed(tok).numpy())
            toks.append(tok.half().numpy())
            for c, im in zip(buf, rgb):
                items.append(Item(id=c.id, name=c.id, footprint=c.footprint, centroid=c.centroid, label=source, source=str(r),
                                  thumbnail=thumbnail_rgb(im) if thumbnails else None,
                                  metadata={**c.metadata, "window": list(c.window), "chip_m": chip_m}))

        n = 0
        for c in tqdm(chips, disable=not progress, desc=f"chips {source}"):
            buf.append(c)
            n += 1
            if len(buf) == batch:
                flush(buf)
                buf = []
        if buf:
            flush(buf)
        per_raster[source] = n
    if not items:
        raise InvalidInputError(f"the rasters gave no {chip_m:g}-m chips with at most {max_nodata:.0%} nodata")
    vectors = np.concatenate(vecs).astype(np.float32)
    tokens = np.concatenate(toks)
    with Collection.create(
        out, modality=MODALITY, dim=vectors.shape[1], model_id=f"{payload['model']}:{Path(ckpt).name}",
        model_checksum=file_checksum(ckpt), metric="ip", backend=backend, overwrite=overwrite,
        extra={"task": TASK, "tokens": list(tokens.shape[1:]), "sources": [str(r) for r in rasters], "chip_m": chip_m,
               "stride_m": stride_m or chip_m, "located": True},
    ) as b:
        b.add(items, vectors)
        b.put_array("tokens", tokens)
        b.put_file("model.pt", ckpt)
    return {"items": len(items), "per_raster": per_raster, "seconds": time.perf_counter() - t0, "tokens_bytes": int(tokens.nbytes)}
