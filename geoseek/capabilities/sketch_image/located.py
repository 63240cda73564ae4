"""Located sketch-searchable collections: GeoTIFFs (any CRS) → chips with (lon, lat) footprints
(``geoseek build images --raster A.tif [B.tif ...] --chip-m M [--stride-m S] --out COL``).

Chipping is geo-image search's (:func:`geoseek.sources.imagery.iter_chips`, rasterio windows,
footprints = the window corners transformed to WGS84 with densified edges); chip pixels are
shown with the raster's 2–98 % stretch (:func:`~geoseek.sources.imagery.to_rgb8`), resized to
the backbone's 224 px and embedded like image-folder collections. Items carry ``footprint``
(west, south, east, north) and ``centroid`` (lon, lat) in degrees, so hits lie on the web map and
``--bbox`` / ``--radius`` filters apply; ``label`` is the raster's name.
Built by the partitioned engine (:mod:`geoseek.build`): a partition is a window of one
raster's chip grid (``--workers``, ``--ray``, ``--resume``).
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geoseek.build.shardfile import Shard
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


def raster_partition(ctx: dict[str, Any], spec: list[int]) -> Shard:
    """Chip and embed one raster window into a shard; ``spec`` = [raster index, start, stop]
    (chips start..stop-1 of that raster's grid, row-major, see :func:`~geoseek.sources.imagery.chip_grid`).

    Top-level and picklable: reads only the span's pixels (rasterio window). Chips with more than
    ``ctx['max_nodata']`` nodata are skipped, so a shard may hold 0 items. Vectors are the [RT]
    embeddings; per-item arrays ``tokens`` (float16) and ``raster`` (int32, the raster index).
    """
    from geoseek.build.engine import process_model
    from geoseek.collection import Item
    from geoseek.sources.geo_image_dataset import resize_rgb
    from geoseek.sources.imagery import iter_chips, to_rgb8

    ri, start, stop = (int(v) for v in spec)
    r = ctx["rasters"][ri]
    net = process_model(ctx["model"], ctx["checksum"])
    t = time.perf_counter()
    chips = list(iter_chips(r["path"], r["chip"], r["stride"], max_nodata=ctx["max_nodata"], source=r["source"],
                            span=(start, stop)))
    rgb = [resize_rgb(to_rgb8(c.pixels, r["rgb_bands"], np.asarray(r["stretch"])), IMAGE_SIZE) for c in chips]
    t_read = time.perf_counter() - t
    t = time.perf_counter()
    vecs, toks = _embed_rgb(net, rgb, int(ctx["batch"]))
    t_enc = time.perf_counter() - t
    items = [Item(id=c.id, name=c.id, footprint=c.footprint, centroid=c.centroid, label=r["source"], source=r["label"],
                  thumbnail=thumbnail_rgb(im) if ctx["thumbnails"] else None,
                  metadata={**c.metadata, "window": list(c.window), "chip_m": ctx["chip_m"]})
             for c, im in zip(chips, rgb)]
    return Shard(items, vecs, {"tokens": toks, "raster": np.full(len(items), ri, np.int32)},
                 stats={"read_seconds": t_read, "encode_seconds": t_enc})


def _embed_rgb(net: Any, rgb: list[np.ndarray], batch: int) -> tuple[np.ndarray, np.ndarray]:
    """(vectors (N, D) float32, tokens (N, T, D) float16) of (224, 224, 3) uint8 images, ``batch`` at a time."""
    vecs, toks = [], []
    for i in range(0, max(len(rgb), 1), batch):
        part = rgb[i : i + batch]
        n = len(part)  # 0: one blank image gives the shapes of the empty arrays
        x = torch.from_numpy(np.stack(part or [np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)]).astype(np.float32) / 255.0)
        with torch.no_grad():
            tok = net.image_tokens_from(image_backbone_features(x.permute(0, 3, 1, 2)))
        vecs.append(net.embed(tok).numpy()[:n])
        toks.append(tok.half().numpy()[:n])
    return np.concatenate(vecs).astype(np.float32), np.concatenate(toks)


class _NoChips(InvalidInputError):
    """No chip survived the nodata filter (nothing committed)."""


class _FinishRasters:
    """Merge step: refuse an empty build, store ``tokens`` (shape in the manifest's extra), count chips per raster."""

    def __init__(self, sources: list[str], message: str) -> None:
        self.sources, self.message = sources, message
        self.per_raster: dict[str, int] = {}
        self.tokens_bytes = 0

    def __call__(self, builder: Any, arrays: dict[str, np.ndarray]) -> None:
        tokens = arrays["tokens"]
        if not len(tokens):
            raise _NoChips(self.message)
        counts = np.bincount(arrays["raster"], minlength=len(self.sources))
        self.per_raster = {s: int(n) for s, n in zip(self.sources, counts)}
        builder.manifest["extra"]["tokens"] = list(tokens.shape[1:])
        builder.put_array("tokens", tokens)
        self.tokens_bytes = int(tokens.nbytes)


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
    *,
    workers: int | None = 1,
    ray: str | bool | None = None,
    resume: bool = False,
    partition_size: int | None = None,
) -> dict[str, Any]:
    """Chip GeoTIFFs and build a located sketch-searchable collection (module docstring).

    A partitioned build (:mod:`geoseek.build`): partitions are raster windows of
    ``partition_size`` grid chips (default ``batch``; :func:`raster_partition`), run on
    ``workers`` local processes (None: the cores available) or on Ray (``ray``: True or an
    address); ``resume`` keeps the finished windows of an interrupted build. ``batch``: chips
    per forward pass. Returns the engine's report plus ``per_raster`` (chips kept per raster),
    ``tokens_bytes``, ``read_seconds``, ``encode_seconds`` (summed over workers) and ``seconds``.
    """
    from geoseek.build import BuildPlan, file_stamp, run_build, work_dir
    from geoseek.build.engine import process_model
    from geoseek.build.executors import ray_session
    from geoseek.checkpoint import file_checksum, load_model, resolve_checkpoint
    from geoseek.sources.imagery import chip_grid, raster_info, raster_stretch

    t0 = time.perf_counter()
    if not rasters:
        raise InvalidInputError("give at least one raster (--raster A.tif)")
    ckpt = resolve_checkpoint(model, TASK)
    payload = load_model(ckpt)[1]
    checksum = file_checksum(ckpt)
    model_path = str(Path(ckpt).absolute())
    size = int(partition_size or batch)
    if size < 1 or batch < 1:
        raise InvalidInputError(f"batch and partition size must be >= 1 chip, got {batch} and {partition_size}")
    names = [Path(r).stem for r in rasters]
    # With --ray the cluster starts, and its workers load the model, while the rasters are read.
    with ray_session(ray, workers, process_model, (model_path, checksum)):
        specs, partitions = [], []
        for ri, (r, name) in enumerate(zip(rasters, names)):
            info = raster_info(r)
            chip, stride = raster_chips_px(r, chip_m, stride_m)
            rows, cols = chip_grid(r, chip, stride)
            specs.append({"path": str(Path(r).absolute()), "label": str(r), "chip": chip, "stride": stride,
                          "source": name if names.count(name) == 1 else f"{Path(r).parent.name}-{name}",
                          "rgb_bands": [int(b) for b in info.rgb_bands],
                          "stretch": raster_stretch(r, info.rgb_bands).tolist()})
            partitions += [[ri, i, min(i + size, rows * cols)] for i in range(0, rows * cols, size)]
        finish = _FinishRasters([s["source"] for s in specs],
                                f"the rasters gave no {chip_m:g}-m chips with at most {max_nodata:.0%} nodata")
        plan = BuildPlan(
            kind="rasters", out=Path(out), fn=raster_partition,
            context={"rasters": specs, "model": model_path, "checksum": checksum, "chip_m": chip_m,
                     "max_nodata": max_nodata, "thumbnails": thumbnails, "batch": int(batch)},
            partitions=partitions,
            fingerprint={"rasters": [file_stamp(r) for r in rasters], "model": checksum, "chip_m": chip_m,
                         "stride_m": stride_m, "max_nodata": max_nodata, "thumbnails": thumbnails},
            collection={"modality": MODALITY, "model_id": f"{payload['model']}:{Path(ckpt).name}",
                        "model_checksum": checksum, "metric": "ip", "backend": backend,
                        "extra": {"task": TASK, "sources": [str(r) for r in rasters], "chip_m": chip_m,
                                  "stride_m": stride_m or chip_m, "located": True}},
            files={"model.pt": Path(ckpt)},
            finish=finish,
        )
        try:
            report = run_build(plan, workers=workers, ray=ray, resume=resume, overwrite=overwrite, progress=progress)
        except _NoChips as exc:  # nothing was committed; rerunning would give the same answer
            shutil.rmtree(work_dir(out), ignore_errors=True)
            raise InvalidInputError(str(exc)) from None
    report.update(per_raster=finish.per_raster, seconds=time.perf_counter() - t0, tokens_bytes=finish.tokens_bytes,
                  read_seconds=report.get("read_seconds", 0.0), encode_seconds=report.get("encode_seconds", 0.0))
    return report
