"""Scene collections: a region's OSM scenes embedded with a sketch-map encoder (``geoseek build sketchmap``)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from geoseek.build.shardfile import Shard
from geoseek.capabilities.sketchmap.data import DEFAULT_SIZE, DEFAULT_WINDOW_M, render_scene_cells, scene_grid
from geoseek.capabilities.sketchmap.vectors import RAW_POOL, RERANK, embed

if TYPE_CHECKING:
    from geoseek.collection import Collection

MODALITY = "osm-scenes"
TASK = "sketchmap"


def scene_id(bbox: np.ndarray) -> str:
    """Stable id of a scene: its centre (lon, lat) to 5 decimals."""
    return f"scene/{(bbox[0] + bbox[2]) / 2:.5f},{(bbox[1] + bbox[3]) / 2:.5f}"


def scene_partition(ctx: dict[str, Any], cells: list[list[int]]) -> Shard:
    """Render the candidate windows ``cells`` of ``ctx['grid']``, keep the scenes, embed them.

    Top-level and picklable (in-process, worker process or Ray task). Per-item array: ``rasters``.
    """
    from geoseek.build.engine import process_model
    from geoseek.collection import Item
    from geoseek.sources.osm import mercator_to_lonlat
    from geoseek.sources.render import png_bytes, to_rgb

    net = process_model(ctx["model"], ctx["checksum"])
    size, window_m = int(ctx["size"]), float(ctx["window_m"])
    t = time.perf_counter()
    rasters, bounds = render_scene_cells(ctx["osm"], ctx["grid"], cells, size)
    t_render = time.perf_counter() - t
    stack = np.stack(rasters) if rasters else np.zeros((0, len(ctx["osm"].layers), size, size), np.uint8)
    t = time.perf_counter()
    vecs = embed(net, stack) if len(stack) else np.zeros((0, ctx["dim"]), np.float32)
    t_embed = time.perf_counter() - t
    items = []
    if bounds:
        bm = np.asarray(bounds, dtype=np.float64)
        bbox = np.concatenate([mercator_to_lonlat(bm[:, :2]), mercator_to_lonlat(bm[:, 2:])], 1)
        for r, bb, b in zip(stack, bbox, bm):
            items.append(Item(
                id=scene_id(bb), name=f"{window_m:g} m scene", footprint=tuple(float(v) for v in bb),
                source=ctx["source"], thumbnail=png_bytes(to_rgb(r), ctx["thumb_px"]),
                metadata={"window_m": window_m, "bounds_m": [float(v) for v in b]},
            ))
    return Shard(items, vecs, {"rasters": stack}, stats={"render_seconds": t_render, "embed_seconds": t_embed})


def build_scene_collection(
    region: str | Path, out: str | Path, model: str | Path = "default", *, overwrite: bool = False, progress: bool = True,
    thumb_px: int = 64, fusion_weight: float | None = None, workers: int | None = 1, ray: str | bool | None = None,
    resume: bool = False, partition_size: int = 256, report: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Collection:
    """Cut ``region`` into scenes (the model's window and raster size), embed them, store a collection.

    Modality ``osm-scenes``; items carry footprints, RGB thumbnails and metadata (window, mercator
    bounds); the scene rasters are stored as array ``rasters`` (row-aligned with add order) and
    the model as ``model.pt``, so the collection answers sketch-map queries on its own.
    ``fusion_weight`` (default: the checkpoint's ``extra.fusion_weight``, else 0) turns on the
    raw-pixel rerank of the top 100 hits in
    :func:`geoseek.capabilities.sketchmap.search.search_scenes`. ``extra`` joins the manifest's
    ``extra`` (e.g. ``{"adaptation": ...}``, see :mod:`geoseek.capabilities.sketchmap.adapt`).

    A partitioned build (:mod:`geoseek.build`): partitions are blocks of ``partition_size``
    candidate windows; ``workers``/``ray``/``resume`` as in :func:`geoseek.build.run_build`,
    whose report is stored into ``report`` when given.
    """
    from geoseek.build import BuildPlan, file_stamp, run_build
    from geoseek.checkpoint import load_model
    from geoseek.collection import Collection
    from geoseek.sources.osm import read_osm

    region = Path(region)
    net, payload = load_model(model, TASK) if str(model) == "default" else load_model(model)
    s = payload.get("data", {})
    window_m, size = float(s.get("window_m", DEFAULT_WINDOW_M)), int(s.get("size", DEFAULT_SIZE))
    weight = float(payload.get("extra", {}).get("fusion_weight", 0.0)) if fusion_weight is None else float(fusion_weight)
    osm = read_osm(region)
    grid = scene_grid(osm, window_m)
    cells = grid["cells"]
    dim = int(getattr(net, "dim", 0)) or int(embed(net, np.zeros((1, len(osm.layers), size, size), np.uint8)).shape[1])
    plan = BuildPlan(
        kind="sketchmap", out=Path(out), fn=scene_partition,
        context={"osm": osm, "grid": grid, "model": payload["path"], "checksum": payload["checksum"], "size": size,
                 "window_m": window_m, "thumb_px": thumb_px, "source": region.name, "dim": dim},
        partitions=[cells[i : i + partition_size] for i in range(0, len(cells), partition_size)],
        fingerprint={"region": file_stamp(region), "model": payload["checksum"], "thumb_px": thumb_px,
                     "window_m": window_m, "size": size},
        collection={"modality": MODALITY, "model_id": f"{TASK}-{payload['model']}", "model_checksum": payload["checksum"],
                    "dim": dim, "metric": "ip", "backend": "faiss",
                    "extra": {"window_m": window_m, "size": size, "source": region.name, "model_file": "model.pt",
                              "model_name": payload["model"], "fusion_weight": weight, "raw_pool": RAW_POOL,
                              "rerank": RERANK, **(extra or {})}},
        files={"model.pt": Path(payload["path"])},
        finish=_check_scenes(osm.source, window_m),
    )
    got = run_build(plan, workers=workers, ray=ray, resume=resume, overwrite=overwrite, progress=progress)
    if report is not None:
        report.update(got)
    return Collection.open(out)


class _check_scenes:
    """Merge step: refuse a region without scenes (as :func:`region_scenes` does), store the rasters."""

    def __init__(self, source: str, window_m: float) -> None:
        self.source, self.window_m = source, window_m

    def __call__(self, builder: Any, arrays: dict[str, np.ndarray]) -> None:
        from geoseek.errors import InvalidInputError

        if "rasters" not in arrays or not len(arrays["rasters"]):
            raise InvalidInputError(f"{self.source}: no window of {self.window_m:g} m holds enough mapped objects "
                                    "to be a scene")
        builder.put_array("rasters", arrays["rasters"])
