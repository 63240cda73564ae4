"""The workloads of the contention benchmark, at full size when ``scale`` is 1.

Each workload is a setup ``(scale) -> run``; ``run()`` does the timed work once through the
library's own paths and the threading policy (:mod:`geoseek.runtime.threads`) and returns how
many units it processed. Inputs are synthetic where only their shape matters (random points,
tiles, token sets, vectors) and real where the encoder's cost depends on them (Quick, Draw!
sketches when the shared data is present). The shipped default models are used.

| name | unit | full size |
|---|---|---|
| location | points | sphereM position encoding of 1,000,000 points |
| sketch | queries | 100 sketch queries (backbone + tokens, ANN, rerank of 100) over 5,000 images |
| tiles | tiles | 1,000 tile embeddings (default tile model, 128-px OSM-layer rasters) |
| sketchmap | queries | 100 sketch-map queries (default model, exact search over 5,000 scenes) |
| vector | queries | 10,000 vector queries (IVF, 100,000 × 128, batches of 100) |
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Run = Callable[[], int]

UNITS = {"location": "points", "sketch": "queries", "tiles": "tiles", "sketchmap": "queries", "vector": "queries"}
FULL = {"location": 1_000_000, "sketch": 100, "tiles": 1000, "sketchmap": 100, "vector": 10_000}


def _n(name: str, scale: float, least: int) -> int:
    return max(least, int(round(FULL[name] * scale)))


def location(scale: float) -> Run:
    import torch

    from geoseek.encoders.registry import create_location_encoder

    n = _n("location", scale, 1000)
    enc = create_location_encoder("sphereM").eval()
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(n, 2, generator=g) * torch.tensor([360.0, 180.0]) - torch.tensor([180.0, 90.0])
    out = torch.empty(n, enc.pos_dim)

    def run() -> int:
        with torch.no_grad():
            enc.encode_position(pts, out=out)
        return n

    return run


def _sketch_inks(n: int, size: int) -> np.ndarray:
    """``n`` Quick, Draw! sketches (N, size, size) in [0, 1]; random strokes without the shared data."""
    import json

    from geoseek.paths import default_data_dir
    from geoseek.sources.sketch import QUICKDRAW_TO_CLASS, load_sketch, read_quickdraw

    inks: list[np.ndarray] = []
    try:
        root = default_data_dir() / "sketches" / "quickdraw" / "strokes"
        words = list(QUICKDRAW_TO_CLASS)
        per = -(-n // len(words))
        for w in words:
            for rec in read_quickdraw(root / f"{w}.ndjson", limit=per):
                inks.append(load_sketch(json.dumps({"drawing": rec["drawing"]}).encode(), size, filename="q.json"))
    except (OSError, ValueError):
        inks = []
    rng = np.random.default_rng(0)
    while len(inks) < n:
        inks.append((rng.random((size, size)) > 0.97).astype(np.float32))
    return np.stack(inks[:n]).astype(np.float32)


def sketch(scale: float) -> Run:
    import torch
    import torch.nn.functional as F

    from geoseek.checkpoint import load_model
    from geoseek.index.faiss_index import FaissIndex
    from geoseek.runtime.threads import parallel_map

    nq, ndb, rerank = _n("sketch", scale, 4), _n("sketch", scale, 1) * 50, 100
    net = load_model("default", task="sketch-image")[0]
    inks = torch.from_numpy(_sketch_inks(nq, net.sketch_size))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        feats = torch.randn(ndb, 1280, 7, 7, generator=g).relu_()
        tokens = torch.cat([net.image_tokens_from(feats[i : i + 256]) for i in range(0, ndb, 256)])
        vecs = F.normalize(tokens[:, 0], dim=-1).numpy()
    index = FaissIndex(vecs.shape[1], "ip", kind="flat")
    index.add(np.arange(ndb, dtype=np.int64), vecs)

    @torch.no_grad()
    def one(i: int) -> np.ndarray:
        st = net.sketch_tokens(inks[i : i + 1, None])
        _, keys = index.search(net.embed(st).numpy(), min(rerank, ndb))
        cs = net.cross_score_candidates(st, tokens, torch.from_numpy(keys))
        return keys[0, np.argsort(-cs[0].numpy())[:10]]

    def run() -> int:
        parallel_map(one, list(range(nq)))
        return nq

    return run


def tiles(scale: float) -> Run:
    import torch

    from geoseek.checkpoint import load_model
    from geoseek.runtime.threads import parallel_chunks
    from geoseek.sources.layers import NUM_LAYERS

    n = _n("tiles", scale, 8)
    net = load_model("default", task="tiles")[0]
    g = torch.Generator().manual_seed(2)
    x = (torch.rand(n, NUM_LAYERS, 128, 128, generator=g) > 0.8).float()

    @torch.no_grad()
    def embed(a: int, b: int) -> int:
        for i in range(a, b, 32):
            net(x[i : min(b, i + 32)])
        return b - a

    def run() -> int:
        return sum(parallel_chunks(embed, n, min_chunk=8))

    return run


def sketchmap(scale: float) -> Run:
    import torch
    import torch.nn.functional as F

    from geoseek.checkpoint import load_model
    from geoseek.index.faiss_index import FaissIndex
    from geoseek.runtime.threads import parallel_map
    from geoseek.sources.layers import NUM_LAYERS

    nq, ndb = _n("sketchmap", scale, 4), _n("sketchmap", scale, 1) * 50
    net = load_model("default", task="sketchmap")[0]
    g = torch.Generator().manual_seed(3)
    q = (torch.rand(nq, NUM_LAYERS, 64, 64, generator=g) > 0.9).float()
    db = F.normalize(torch.randn(ndb, 128, generator=g), dim=-1).numpy()
    index = FaissIndex(db.shape[1], "ip", kind="flat")
    index.add(np.arange(ndb, dtype=np.int64), db)

    @torch.no_grad()
    def one(i: int) -> np.ndarray:
        v = F.normalize(net(q[i : i + 1]).float(), dim=-1).numpy()
        return index.search(v, 10)[1]

    def run() -> int:
        parallel_map(one, list(range(nq)))
        return nq

    return run


def vector(scale: float) -> Run:
    from geoseek.index.faiss_index import FaissIndex
    from geoseek.runtime.threads import parallel_chunks

    nq = _n("vector", scale, 200)
    ndb = max(2000, nq * 10)
    rng = np.random.default_rng(4)
    centers = rng.standard_normal((256, 128)).astype(np.float32)
    xb = centers[rng.integers(0, 256, ndb)] + 0.3 * rng.standard_normal((ndb, 128)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    xq = xb[rng.integers(0, ndb, nq)] + 0.05 * rng.standard_normal((nq, 128)).astype(np.float32)
    index = FaissIndex(128, "ip", kind="ivf" if ndb >= 20_000 else "flat")
    index.add(np.arange(ndb, dtype=np.int64), xb)

    def batch(a: int, b: int) -> int:
        for i in range(a, b, 100):
            index.search(xq[i : min(b, i + 100)], 10)
        return b - a

    def run() -> int:
        return sum(parallel_chunks(batch, nq, min_chunk=100))

    return run


WORKLOADS: dict[str, Callable[[float], Run]] = {
    "location": location, "sketch": sketch, "tiles": tiles, "sketchmap": sketchmap, "vector": vector,
}
