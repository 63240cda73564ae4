"""The tiles collection build: every non-empty XYZ tile of a region, rendered, embedded, stored.

Each tile's model input is :func:`~geoseek.capabilities.tiles.data.render_tile`'s: a window of
``tile_ground_m`` ground metres centred on the tile (default
:data:`~geoseek.capabilities.tiles.data.TILE_GROUND_M`; 0: the XYZ tile itself), recorded in the
manifest's ``extra.tile_ground_m`` so that query tiles are rendered alike.

:func:`build_osm_collection` (``geoseek build osm``) writes an ``osm-tiles``
:class:`~geoseek.collection.Collection` that carries its own OSM file and model, so it serves
basemap tiles and embeds new places with no other file.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.build.shardfile import Shard
from geoseek.capabilities.tiles.data import (
    DEFAULT_ZOOM, MODALITY, TASK, TILE_GROUND_M, TILE_PX, as_ground_m, embed_tiles, load_features, render_tile,
    tile_ground_width_m,
)


def osm_partition(ctx: dict[str, Any], spec: list[list[int]]) -> Shard:
    """Render and embed one block of tiles ``spec`` ([[x, y], ...] at ``ctx['zoom']``) into a shard.

    Top-level and picklable: runs in-process, in a worker process or as a Ray task. Tiles that
    render empty are skipped. ``ctx``: features, model path and checksum, zoom, thumb_px, source,
    ground_m (the input window in ground metres; None: the XYZ tile). Label, land-use fractions and
    thumbnail come from the rendered input, so they show what the model saw; the footprint is the
    XYZ tile.
    """
    from geoseek.build.engine import process_model
    from geoseek.collection import Item
    from geoseek.geo import tile_bounds
    from geoseek.sources.render import dominant_land_use, land_use_fractions, png_bytes, to_rgb

    zoom, features, ground_m = int(ctx["zoom"]), ctx["features"], ctx.get("ground_m")
    net = process_model(ctx["model"], ctx["checksum"])
    ts = time.perf_counter()
    chunk = [(int(x), int(y)) for x, y in spec]
    tiles = np.stack([render_tile(features, zoom, x, y, TILE_PX, ground_m) for x, y in chunk])
    keep = tiles.reshape(len(chunk), -1).any(1)
    chunk = [c for c, k in zip(chunk, keep) if k]
    tiles = tiles[keep]
    t_render = time.perf_counter() - ts
    te = time.perf_counter()
    vecs = embed_tiles(net, tiles) if len(chunk) else np.zeros((0, ctx["dim"]), np.float32)
    t_embed = time.perf_counter() - te
    items = []
    for (x, y), t in zip(chunk, tiles):
        fr = land_use_fractions(t)
        items.append(Item(
            id=f"{zoom}/{x}/{y}", name=f"tile {zoom}/{x}/{y}", footprint=tile_bounds(x, y, zoom).as_tuple(),
            label=dominant_land_use(t), source=ctx["source"], thumbnail=png_bytes(to_rgb(t), ctx["thumb_px"]),
            metadata={"z": zoom, "x": x, "y": y, "ground_m": round(tile_ground_width_m(zoom, x, y, ground_m), 1),
                      "land_use": {k: round(v, 4) for k, v in fr.items() if v > 0}},
        ))
    return Shard(items, vecs, stats={"render_seconds": t_render, "embed_seconds": t_embed})


def build_osm_collection(
    region: str | Path,
    out: str | Path,
    model: str | Path = "default",
    *,
    zoom: int = DEFAULT_ZOOM,
    batch: int = 256,
    thumb_px: int = 64,
    overwrite: bool = False,
    progress: bool = True,
    workers: int | None = 1,
    ray: str | bool | None = None,
    resume: bool = False,
    partition_size: int | None = None,
    extra: dict[str, Any] | None = None,
    tile_ground_m: float | None = TILE_GROUND_M,
) -> dict[str, Any]:
    """Render every non-empty XYZ tile of ``region`` at ``zoom``, embed, and store as a collection.

    Each tile's model input is a window of ``tile_ground_m`` ground metres centred on it
    (:func:`~geoseek.capabilities.tiles.data.render_tile`; None or 0: the XYZ tile itself), the
    same ground scale at every latitude; the manifest's ``extra.tile_ground_m`` records it (0 for
    the XYZ render) and searches render their query tiles with it.

    Items: id ``"z/x/y"``, footprint (the XYZ tile's (west, south, east, north) degrees), dominant
    land-use label of the input (None when no land use covers 20 %), RGB PNG thumbnail of the
    input, metadata (z, x, y, ``ground_m``: ground metres across the input, land-use fractions).
    The OSM file and the model are copied into the collection (``osm.pbf``-like name,
    ``model.pt``) so it serves basemap tiles and renders new query tiles with no other file.
    ``extra`` joins the manifest's ``extra`` (e.g. ``{"adaptation": ...}`` of a model adapted to
    the region, see :mod:`geoseek.capabilities.tiles.adapt`).

    A partitioned build (:mod:`geoseek.build`): partitions are blocks of ``partition_size``
    tiles (default ``batch``) in the order of :func:`nonempty_tiles`, run on ``workers`` local
    processes (None: the cores available) or on Ray (``ray``: True or an address);
    ``resume`` keeps the finished blocks of an interrupted build. Returns the engine's report
    plus ``candidate_tiles, zoom, read_seconds, render_seconds, embed_seconds`` (CPU seconds,
    summed over workers) and ``tiles_per_s``.
    """
    from geoseek.build import BuildPlan, file_stamp, run_build
    from geoseek.build.engine import process_model
    from geoseek.build.executors import ray_session
    from geoseek.checkpoint import load_model
    from geoseek.sources.render import nonempty_tiles

    t0 = time.perf_counter()
    region = Path(region)
    ground_m = as_ground_m(tile_ground_m)
    net, payload = load_model(model, TASK) if str(model) == "default" else load_model(model)
    # With --ray the cluster starts, and its workers load the model, while the region is read.
    with ray_session(ray, workers, process_model, (payload["path"], payload["checksum"])):
        features = load_features(region)
        t_read = time.perf_counter() - t0
        xy = nonempty_tiles(features, zoom)
        dim = int(getattr(net, "dim", 0)) or int(embed_tiles(net, np.zeros((1, len(features.layers), TILE_PX, TILE_PX), np.uint8)).shape[1])
        osm_name = "source" + "".join(region.suffixes[-2:]) if region.suffixes else "source.osm.pbf"
        size = int(partition_size or batch)
        plan = BuildPlan(
            kind="osm", out=Path(out), fn=osm_partition,
            context={"features": features, "model": payload["path"], "checksum": payload["checksum"], "zoom": zoom,
                     "thumb_px": thumb_px, "source": region.name, "dim": dim, "ground_m": ground_m},
            partitions=[[list(c) for c in xy[i : i + size]] for i in range(0, len(xy), size)],
            fingerprint={"region": file_stamp(region), "model": payload["checksum"], "zoom": zoom, "thumb_px": thumb_px,
                         "tile_px": TILE_PX, "tile_ground_m": ground_m or 0.0},
            collection={"modality": MODALITY, "model_id": f"tiles-{payload['model']}", "model_checksum": payload["checksum"],
                        "dim": dim, "metric": "ip", "backend": "faiss",
                        "extra": {"zoom": zoom, "tile_px": TILE_PX, "tile_ground_m": ground_m or 0.0,
                                  "osm_file": osm_name, "source": region.name,
                                  "model_file": "model.pt", "model_name": payload["model"], **(extra or {})}},
            files={osm_name: region, "model.pt": Path(payload["path"])},
        )
        report = run_build(plan, workers=workers, ray=ray, resume=resume, overwrite=overwrite, progress=progress)
    seconds = time.perf_counter() - t0
    report.update(candidate_tiles=len(xy), zoom=zoom, tile_ground_m=ground_m or 0.0, seconds=seconds, read_seconds=t_read,
                  render_seconds=report.get("render_seconds", 0.0), embed_seconds=report.get("embed_seconds", 0.0),
                  items_per_s=report["items"] / max(seconds, 1e-9), tiles_per_s=report["items"] / max(seconds, 1e-9))
    return report
