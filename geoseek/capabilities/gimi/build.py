"""Geo-image build: located images → fusion-model vectors → a ``geo-images`` collection."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geoseek.build.shardfile import Shard
from geoseek.capabilities.gimi.data import backbone_features
from geoseek.capabilities.gimi.search import DEFAULT_GEO_SCALE_M
from geoseek.errors import InvalidInputError

if TYPE_CHECKING:
    from geoseek.collection import Collection
    from geoseek.sources.geo_image_dataset import GeoImageDataset

TASK = "geo-image"
"""The models' registry task (``geoseek.encoders.registry``) and the collections' ``extra.task``."""
MODALITY = "geo-images"
"""The modality of the collections this module builds."""


def geo_image_partition(ctx: dict[str, Any], span: list[int]) -> Shard:
    """Embed images ``[start, stop)`` of ``ctx['images']`` (backbone, then fusion with their
    locations) into a shard. Top-level and picklable."""
    from geoseek.build.engine import process_model
    from geoseek.collection import Item
    from geoseek.sources.geo_image_dataset import png_thumbnail

    start, stop = int(span[0]), int(span[1])
    model = process_model(ctx["model"], ctx["checksum"])
    t = time.perf_counter()
    if ctx.get("features") is not None:
        feats = np.asarray(ctx["features"][start:stop], np.float32)
    else:
        feats = backbone_features(model, ctx["images"][start:stop], progress=False)
    with torch.no_grad():
        vecs = model.embed_features(torch.from_numpy(feats),
                                    torch.from_numpy(ctx["lonlat"][start:stop].astype(np.float32))).numpy()
    items = [Item(**row, thumbnail=png_thumbnail(img))
             for row, img in zip(ctx["rows"][start:stop], ctx["images"][start:stop])]
    return Shard(items, vecs.astype(np.float32), stats={"embed_seconds": time.perf_counter() - t})


def build_collection(
    data: GeoImageDataset,
    model_path: str | Path,
    out: str | Path,
    *,
    overwrite: bool = False,
    geo_scale_m: float = DEFAULT_GEO_SCALE_M,
    backend: str = "faiss",
    progress: bool = True,
    features: np.ndarray | None = None,
    workers: int | None = 1,
    ray: str | bool | None = None,
    resume: bool = False,
    partition_size: int = 256,
    report: dict[str, Any] | None = None,
) -> Collection:
    """Embed every image of ``data`` (images kept) with the checkpoint at ``model_path`` into a collection.

    ``features`` (N, F): precomputed backbone features of ``data.images`` (row-aligned), to skip
    the backbone pass. A partitioned build (:mod:`geoseek.build`): partitions are batches of
    ``partition_size`` images; the engine's report is stored into ``report`` when given.
    """
    from geoseek.build import BuildPlan, file_stamp, run_build
    from geoseek.checkpoint import load_model
    from geoseek.collection import Collection

    if data.images is None:
        raise InvalidInputError("the dataset was loaded without its images; rebuild it")
    model, payload = load_model(model_path)
    feats = None
    if features is not None and len(features) == len(data.images) and model.image_size == data.info.get("image_size"):
        feats = np.asarray(features, np.float32)
    rows = [{"id": s.id, "name": s.id, "footprint": s.footprint, "centroid": s.lonlat, "label": s.label,
             "source": s.source, "metadata": {"kind": s.kind, "split": s.split, **s.metadata}} for s in data.samples]
    n = len(rows)
    digest = hashlib.sha256(np.ascontiguousarray(data.images).tobytes())
    digest.update(json.dumps(rows, sort_keys=True, default=str).encode())
    if feats is not None:
        digest.update(feats.tobytes())
    extra = {"task": TASK, "geo_scale_m": geo_scale_m, "dataset": data.info, "model_metrics": payload.get("metrics", {})}
    plan = BuildPlan(
        kind="geo-images", out=Path(out), fn=geo_image_partition,
        context={"images": data.images, "lonlat": np.asarray(data.lonlat), "rows": rows, "features": feats,
                 "model": payload["path"], "checksum": payload["checksum"]},
        partitions=[[i, min(i + partition_size, n)] for i in range(0, n, partition_size)],
        fingerprint={"data": digest.hexdigest(), "model": file_stamp(model_path), "checksum": payload["checksum"],
                     "backend": backend},
        collection={"modality": MODALITY, "model_id": payload["model"], "model_checksum": payload["checksum"],
                    "metric": "ip", "backend": backend, "extra": extra},
        files={"model.pt": Path(model_path)},
    )
    del model
    got = run_build(plan, workers=workers, ray=ray, resume=resume, overwrite=overwrite, progress=progress)
    if report is not None:
        report.update(got)
    return Collection.open(out)
