"""Sketch → image collections: image folders (``FOLDER/<class>/*.jpg``) → items, [RT] vectors and
filtered token sets → a :class:`geoseek.collection.Collection` (``geoseek build images``)."""

from __future__ import annotations

import hashlib
import io
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from geoseek.capabilities.sketch_image.data import MODALITY, TASK, cached_features, load_image
from geoseek.encoders.sketch_image import image_backbone_features
from geoseek.build.shardfile import Shard
from geoseek.errors import InvalidInputError


def thumbnail(path: str | Path, size: int = 96) -> bytes:
    """JPEG bytes of the image at ``path`` shrunk to fit ``size`` × ``size`` px (aspect kept)."""
    img = Image.open(path).convert("RGB")
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80)
    return buf.getvalue()


def image_partition(ctx: dict[str, Any], span: list[int]) -> Shard:
    """Embed the images ``ctx['samples'][start:stop]`` (``span`` = [start, stop]) into a shard.

    Top-level and picklable. Vectors are the [RT] embeddings; per-item array ``tokens`` (float16).
    """
    from geoseek.build.engine import process_model
    from geoseek.collection import Item

    start, stop = int(span[0]), int(span[1])
    net = process_model(ctx["model"], ctx["checksum"])
    rows = ctx["samples"][start:stop]
    t = time.perf_counter()
    with torch.no_grad():
        if ctx.get("cached") is not None:
            feats = torch.from_numpy(np.asarray(ctx["cached"][start:stop], np.float32))
        else:
            x = torch.from_numpy(np.stack([load_image(path) for path, _l, _i in rows])).permute(0, 3, 1, 2)
            feats = image_backbone_features(x)
        tok = net.image_tokens_from(feats)
        vecs = net.embed(tok).numpy()
    t_feat = time.perf_counter() - t
    items = [Item(id=item_id, name=Path(path).name, label=label, source=str(path),
                  thumbnail=thumbnail(path) if ctx["thumbnails"] else None) for path, label, item_id in rows]
    return Shard(items, vecs, {"tokens": tok.half().numpy()}, stats={"encode_seconds": t_feat})


def build_image_collection(
    folder: str | Path | Sequence[str | Path],
    out: str | Path,
    model: str | Path = "default",
    overwrite: bool = False,
    batch: int = 32,
    thumbnails: bool = True,
    progress: bool = True,
    backend: str = "faiss",
    features_cache: str | Path | None = None,
    *,
    workers: int | None = 1,
    ray: str | bool | None = None,
    resume: bool = False,
    partition_size: int | None = None,
) -> dict[str, Any]:
    """Build a sketch-searchable collection from image folders (``FOLDER/<class>/*.jpg``).

    Item ids are ``<class>/<file stem>`` (prefixed by the folder name when several are given);
    items carry their class folder as ``label``; vectors are the images' [RT] embeddings; the
    filtered token sets are stored float16 as array ``tokens`` (row i ↔ key i) and the model
    as file ``model.pt``. ``features_cache`` reuses backbone features cached there (they do not
    depend on the trained model). A partitioned build (:mod:`geoseek.build`): partitions are
    batches of ``partition_size`` images (default ``batch``). Returns counts and timings
    (seconds) with the engine's report.
    """
    from geoseek.build import BuildPlan, run_build
    from geoseek.checkpoint import file_checksum, load_model, resolve_checkpoint
    from geoseek.sources.datasets import read_class_folders

    t0 = time.perf_counter()
    ckpt = resolve_checkpoint(model, TASK)
    net, payload = load_model(ckpt)
    folders = [Path(folder)] if isinstance(folder, (str, Path)) else [Path(f) for f in folder]
    if not folders:
        raise InvalidInputError("give at least one image folder")
    samples, roots = [], []
    for f in folders:
        got = read_class_folders(f)
        samples += got
        roots += [f] * len(got)
    if not samples:
        raise InvalidInputError(f"no images found in {', '.join(str(f) for f in folders)}")
    cached = cached_features([s.path for s in samples], Path(features_cache), progress) if features_cache else None
    rows = []
    for s, root in zip(samples, roots):
        rel = str(s.path.relative_to(root).with_suffix("")).replace("\\", "/")
        rows.append((str(s.path), s.label, f"{root.name}/{rel}" if len(folders) > 1 else rel))
    checksum = file_checksum(ckpt)
    size = int(partition_size or batch)
    stamps = [[p, st.st_size, st.st_mtime_ns] for p, st in ((r[0], Path(r[0]).stat()) for r in rows)]
    listing = hashlib.sha256(json.dumps(stamps).encode()).hexdigest()
    plan = BuildPlan(
        kind="images", out=Path(out), fn=image_partition,
        context={"samples": rows, "cached": None if cached is None else np.asarray(cached), "model": str(ckpt),
                 "checksum": checksum, "thumbnails": thumbnails},
        partitions=[[i, min(i + size, len(rows))] for i in range(0, len(rows), size)],
        fingerprint={"images": listing, "model": checksum, "thumbnails": thumbnails, "cached": cached is not None,
                     "backend": backend},
        collection={"modality": MODALITY, "model_id": f"{payload['model']}:{Path(ckpt).name}", "model_checksum": checksum,
                    "metric": "ip", "backend": backend,
                    "extra": {"task": TASK, "sources": [str(f) for f in folders]}},
        files={"model.pt": Path(ckpt)},
        finish=_store_tokens,
    )
    del net
    report = run_build(plan, workers=workers, ray=ray, resume=resume, overwrite=overwrite, progress=progress)
    tokens_bytes = np.load(Path(out) / "arrays" / "tokens.npy", mmap_mode="r").nbytes
    report.update(seconds=time.perf_counter() - t0, encode_seconds=report.get("encode_seconds", 0.0),
                  tokens_bytes=int(tokens_bytes))
    return report


def _store_tokens(builder: Any, arrays: dict[str, np.ndarray]) -> None:
    """Merge step: store the token sets and record their shape in the manifest's extra."""
    tokens = arrays["tokens"]
    builder.manifest["extra"]["tokens"] = list(tokens.shape[1:])
    builder.put_array("tokens", tokens)
