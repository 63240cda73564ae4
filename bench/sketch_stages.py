"""Where a sketch query's time goes, and the backbone variants side by side.

    python bench/sketch_stages.py COLLECTION [--queries 30] [--threads 2] [--json]

COLLECTION is one built by ``geoseek build images`` (e.g. the demo's ``.demo/ucmerced``).
Reports, per query (ms): the EfficientNet-Lite0 pass over one 224-px image, eager vs traced
and frozen, in float32 and (where the CPU has native bf16) in bf16 — geoseek runs the frozen
one in the precision the collection's model was trained with (``sketch_backbone_dtype``;
bf16 features differ from float32 ones, see ``bf16_min_cosine``); then the stages of
``search_ink_maps`` one query at a time: encode (backbone + tokenizer + blocks), ANN search,
token gather, cross-attention rerank of the top 100, item join. Run it twice, once with
``OMP_WAIT_POLICY=PASSIVE`` in the environment, to see the OpenMP wait policy's cost.
The last line with ``--json`` is one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F


def _ms(f, n: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            f()
        t = time.perf_counter()
        for _ in range(n):
            f()
    return (time.perf_counter() - t) / n * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("collection")
    p.add_argument("--queries", type=int, default=30)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from geoseek.capabilities.common import collection_model
    from geoseek.capabilities.sketch_image.encode import encode_sketches
    from geoseek.cli.sketch_image import bench_queries
    from geoseek.collection import Collection
    from geoseek.encoders import sketch_image as si
    from geoseek.paths import default_data_dir
    from geoseek.sources.sketch import load_sketch

    out: dict = {"threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                 "gomp_spincount": os.environ.get("GOMP_SPINCOUNT")}
    col = Collection.open(args.collection)  # imports FAISS, which sets the OpenMP spin
    out["gomp_spincount"] = os.environ.get("GOMP_SPINCOUNT")
    x = torch.rand(1, 3, si.IMAGE_SIZE, si.IMAGE_SIZE)
    eager = si.image_backbone()
    out["backbone_eager_ms"] = _ms(lambda: eager.forward_features(x), args.queries)
    frozen = si.frozen_image_backbone()
    xc = x.contiguous(memory_format=torch.channels_last)
    out["backbone_frozen_ms"] = _ms(lambda: frozen(xc), args.queries) if frozen is not None else None
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        fb = si.frozen_image_backbone("bfloat16")
        if fb is not None:
            out["backbone_bf16_ms"] = _ms(lambda: fb(xc.bfloat16()), args.queries)
        with torch.no_grad():
            xs = torch.rand(8, 3, si.IMAGE_SIZE, si.IMAGE_SIZE)
            a, b = si.image_backbone_features(xs), si.image_backbone_features(xs, "bfloat16")
        out["bf16_min_cosine"] = float(F.cosine_similarity(a.flatten(1), b.flatten(1)).min())

    net = collection_model(col)
    out["model_sketch_backbone_dtype"] = net.sketch_backbone_dtype
    qs = bench_queries(default_data_dir(), args.queries, net.sketch_size)
    inks = [load_sketch(raw, net.sketch_size, filename=name) for name, raw, _ in qs]
    encode_sketches(net, inks[0][None])
    stages = dict(encode=0.0, ann=0.0, gather=0.0, rerank=0.0, items=0.0)
    tokens = col.array("tokens")
    with torch.inference_mode():
        for ink in inks:
            t0 = time.perf_counter()
            es, st = encode_sketches(net, ink[None])
            t1 = time.perf_counter()
            _, keys = col.index.search(es.astype(np.float32), 100, None)
            t2 = time.perf_counter()
            keys = np.asarray(keys)
            uniq = np.unique(keys[keys >= 0])
            it = torch.from_numpy(np.asarray(tokens[uniq], np.float32))
            t3 = time.perf_counter()
            pos = np.searchsorted(uniq, np.where(keys >= 0, keys, uniq[0]))
            net.cross_score_candidates(st, it, torch.from_numpy(pos))
            t4 = time.perf_counter()
            col.store.items_by_keys(uniq[:10].tolist())
            t5 = time.perf_counter()
            for k, (a, b) in zip(stages, [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)]):
                stages[k] += (b - a) * 1000 / len(inks)
    out.update({f"{k}_ms": v for k, v in stages.items()})
    out["queries"] = len(inks)
    col.close()
    out = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in out.items()}
    from geoseek.runtime import describe_runtime

    out["runtime"] = describe_runtime()
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
