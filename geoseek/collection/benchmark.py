"""``geoseek bench index``: our collection search vs raw FAISS, numpy brute force and scikit-learn's
BallTree (the search of the published DeepSSN and Geobacter code), side by side in one run.

Data: N clustered float32 vectors of dimension D (a gaussian mixture of 1,000 components in a
32-d latent space, embedded in D dims plus isotropic noise, L2-normalized; metric "ip", i.e.
cosine), each with a point spread uniformly over a 1° × 1° region; 1,000 queries from the same
mixture. Ground truth: exact top-10 by FAISS flat search (``faiss.knn``), over everything and
over the items inside the bbox filter (about 10% of the area).

"Ours" is ``Collection.search`` on the collection reopened from disk, returning ranked hits whose
item ids are read (``qps``); ``qps_items`` also materializes every hit's ``Item``. Throughput is
measured on batches of ``batch`` queries for both ours and raw FAISS (same
batches, all OpenMP threads, ours and raw alternating batch by batch so that a busy machine
slows both alike); latency (p50/p99) with one query per call (FAISS on one thread,
for ours and raw alike; see :data:`geoseek.index.faiss_index.SMALL_BATCH`). BallTree answers a subset of the queries
(it is slow at this dimension; the JSON says how many).
"""

from __future__ import annotations

import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from geoseek.index._faiss import faiss
import numpy as np

REGION = (14.0, 35.5, 15.0, 36.5)
"""Where the benchmark's points lie: (west, south, east, north) degrees."""


def clustered_vectors(n: int, dim: int, seed: int, components: int = 1000, latent: int = 32) -> np.ndarray:
    """(n, dim) float32 unit vectors from a fixed gaussian mixture (same mixture for every seed)."""
    mix = np.random.default_rng(12345)
    centres = mix.normal(size=(components, latent))
    proj = mix.normal(size=(latent, dim)) / math.sqrt(latent)
    rng = np.random.default_rng(seed)
    out = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, 100_000):
        m = min(100_000, n - s)
        z = centres[rng.integers(0, components, m)] + 0.6 * rng.normal(size=(m, latent))
        x = z @ proj + 0.35 * rng.normal(size=(m, dim))
        out[s:s + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def _rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def recall_at_k(got: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean |got[:k] ∩ truth[:k]| / |truth[:k]| over queries (ignoring -1 slots)."""
    vals = []
    for g, t in zip(got[:, :k].tolist(), truth[:, :k].tolist()):
        t = {x for x in t if x >= 0}
        if t:
            vals.append(len(t & set(g)) / len(t))
    return float(np.mean(vals)) if vals else float("nan")


def _latency(fn, queries: np.ndarray) -> tuple[float, float]:
    """(p50, p99) in ms of ``fn(q[None])`` over the queries, one per call."""
    times = []
    for q in queries:
        t = time.perf_counter()
        fn(q[None])
        times.append((time.perf_counter() - t) * 1000)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def _throughput(fn, queries: np.ndarray, batch: int) -> tuple[float, list]:
    """(queries/s, results per batch) of ``fn(batch_of_queries)`` over all queries."""
    out = []
    t = time.perf_counter()
    for s in range(0, len(queries), batch):
        out.append(fn(queries[s:s + batch]))
    return len(queries) / (time.perf_counter() - t), out


def _dir_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def _log(msg: str) -> None:
    print(f"[bench index] {msg}", file=sys.stderr, flush=True)


def run(
    n: int = 1_000_000,
    dim: int = 256,
    n_queries: int = 1000,
    k: int = 10,
    batch: int = 100,
    latency_queries: int = 200,
    balltree_queries: int = 20,
    filter_fraction: float = 0.10,
    workdir: str | os.PathLike | None = None,
    seed: int = 0,
    skip_balltree: bool = False,
) -> dict[str, Any]:
    """Run the benchmark; returns the figures (see the module docstring)."""
    from tqdm import tqdm

    from geoseek.collection import Collection, Item
    from geoseek.geo import BBox
    from geoseek.index.base import Filter
    from geoseek.index.faiss_index import single_thread

    if n < 1000 or dim < 2:
        raise ValueError("bench index needs --n >= 1000 and --dim >= 2")
    res: dict[str, Any] = {"n": n, "dim": dim, "k": k, "queries": n_queries, "batch": batch,
                           "latency_queries": latency_queries, "threads": faiss.omp_get_max_threads()}
    t0 = time.perf_counter()
    _log(f"generating {n} x {dim} clustered vectors and {n_queries} queries")
    xb = clustered_vectors(n, dim, seed)
    xq = clustered_vectors(n_queries, dim, seed + 1)
    rng = np.random.default_rng(seed + 2)
    w, s, e, nn = REGION
    lonlat = np.stack([rng.uniform(w, e, n), rng.uniform(s, nn, n)], axis=1)
    side = math.sqrt(filter_fraction)
    bbox = BBox(w, s, w + side * (e - w), s + side * (nn - s))
    inside = bbox.contains(lonlat)
    res["filter_bbox"] = list(bbox.as_tuple())
    res["filter_selected"] = int(inside.sum())
    res["filter_fraction"] = float(inside.mean())
    res["data_s"] = time.perf_counter() - t0

    _log("exact ground truth (faiss flat)")
    t = time.perf_counter()
    _, truth = faiss.knn(xq, xb, k, metric=faiss.METRIC_INNER_PRODUCT)
    sel = np.flatnonzero(inside)
    _, ftruth = faiss.knn(xq, np.ascontiguousarray(xb[sel]), k, metric=faiss.METRIC_INNER_PRODUCT)
    ftruth = sel[ftruth]
    res["ground_truth_s"] = time.perf_counter() - t

    tmp = Path(tempfile.mkdtemp(prefix="geoseek-bench-", dir=workdir))
    try:
        # --- ours: build a collection on disk, reopen it, search ---------------------------------
        _log("building our collection")
        rss0 = _rss_mb()
        t = time.perf_counter()
        step = 100_000
        with Collection.create(tmp / "bench", modality="bench", dim=dim, metric="ip") as b:
            for st in tqdm(range(0, n, step), desc="collection add", unit="batch", file=sys.stderr):
                m = min(step, n - st)
                items = [Item(id=str(st + i), centroid=(float(lonlat[st + i, 0]), float(lonlat[st + i, 1])))
                         for i in range(m)]
                b.add(items, xb[st:st + m])
        res["build_s"] = time.perf_counter() - t
        col = Collection.open(tmp / "bench")
        idx = col.index
        res["index_type"] = idx.index_type
        res["nlist"] = getattr(idx, "nlist", None) if idx.index_type == "ivf" else None
        res["nprobe"] = getattr(idx, "nprobe", None) if idx.index_type == "ivf" else None
        res["disk_mb"] = _dir_mb(tmp / "bench")
        res["index_mb"] = _dir_mb(tmp / "bench" / "index")
        res["rss_delta_mb"] = _rss_mb() - rss0

        def ours(q: np.ndarray, flt: Filter | None = None) -> list[list[str]]:
            """Ranked item ids of our collection search (one list per query)."""
            return [hs.ids for hs in col.search(q, k, flt)]

        def as_keys(batches: list[list[list[str]]]) -> np.ndarray:
            """Ranked ids (item ids are str(position) here) → an int matrix for recall, -1 padded."""
            return np.array([[int(i) for i in ids] + [-1] * (k - len(ids)) for b in batches for ids in b])

        def ours_items(q: np.ndarray) -> list:
            """The same, materializing every hit's Item (id, name, geometry, label, metadata)."""
            hits = col.search(q, k)
            return [[h.item for h in hs] for hs in hits]

        # --- raw FAISS, same index type and parameters -----------------------------------------
        _log(f"building raw FAISS ({idx.index_type})")
        t = time.perf_counter()
        if idx.index_type == "ivf":
            nlist = int(idx.nlist)
            quantizer = faiss.IndexFlatIP(dim)
            raw = faiss.IndexIVFFlat(quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            raw.cp.niter = 12
            raw.cp.max_points_per_centroid = 40
            pick = np.sort(np.random.default_rng(0).choice(n, min(n, 40 * nlist), replace=False))
            raw.train(np.ascontiguousarray(xb[pick]))
            raw.add(xb)
            raw.nprobe = int(idx.nprobe)
        elif idx.index_type == "hnsw":
            raw = faiss.IndexHNSWFlat(dim, idx.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            raw.hnsw.efConstruction = idx.ef_construction
            raw.add(xb)
            raw.hnsw.efSearch = idx.ef_search
        else:
            raw = faiss.IndexFlatIP(dim)
            raw.add(xb)
        res["faiss_build_s"] = time.perf_counter() - t
        res["faiss_mb"] = len(faiss.serialize_index(raw)) / 2**20

        _log("searching: ours and raw FAISS, batch by batch in turn")
        t = time.perf_counter()
        col.search(xq[:1], k)  # loads the in-memory item columns
        res["first_search_s"] = time.perf_counter() - t
        col.search(xq[:batch], k)
        raw.search(xq[:batch], k)  # warm-up
        got: dict[str, list] = {"ours": [], "raw": []}
        spent = {"ours": 0.0, "raw": 0.0}
        searches = (("ours", ours), ("raw", lambda q: raw.search(q, k)[1]))
        for bi, st in enumerate(range(0, n_queries, batch)):
            q = xq[st:st + batch]
            # who goes first alternates: the second search of a batch finds the same inverted
            # lists already in the CPU caches, which would favour whoever always ran second
            for who, search in (searches if bi % 2 == 0 else searches[::-1]):
                t = time.perf_counter()
                got[who].append(search(q))
                spent[who] += time.perf_counter() - t
        got_ours, got_raw = got["ours"], got["raw"]
        res["qps"], res["faiss_qps"] = n_queries / spent["ours"], n_queries / spent["raw"]
        res["recall_at_10"] = recall_at_k(as_keys(got_ours), truth, k)
        res["faiss_recall_at_10"] = recall_at_k(np.concatenate(got_raw), truth, k)
        res["qps_items"], _ = _throughput(ours_items, xq, batch)
        lat = xq[:latency_queries]
        res["p50_ms"], res["p99_ms"] = _latency(ours, lat)
        with single_thread():  # as ours does for single queries
            res["faiss_p50_ms"], res["faiss_p99_ms"] = _latency(lambda q: raw.search(q, k), lat)
        flt = Filter(bbox=bbox)
        res["filtered_qps"], outs = _throughput(lambda q: ours(q, flt), xq, batch)
        res["filtered_recall_at_10"] = recall_at_k(as_keys(outs), ftruth, k)
        res["filtered_p50_ms"], res["filtered_p99_ms"] = _latency(lambda q: ours(q, flt), lat)
        del raw

        # --- numpy brute force ------------------------------------------------------------------
        _log("searching: numpy brute force")

        def brute(q: np.ndarray) -> np.ndarray:
            scores = q @ xb.T
            top = np.argpartition(-scores, k, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(scores, top, 1), axis=1)
            return np.take_along_axis(top, order, 1)

        nb = min(n_queries, 200)
        res["numpy_queries"] = nb
        res["numpy_qps"], outs = _throughput(brute, xq[:nb], batch)
        res["numpy_recall_at_10"] = recall_at_k(np.concatenate(outs), truth[:nb], k)
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # one query: BLAS threads only spin
            res["numpy_p50_ms"], res["numpy_p99_ms"] = _latency(brute, xq[:min(nb, 50)])
        res["numpy_mb"] = xb.nbytes / 2**20

        # --- scikit-learn BallTree (DeepSSN / Geobacter) ---------------------------------------
        if not skip_balltree:
            from sklearn.neighbors import BallTree

            _log(f"building BallTree, then {balltree_queries} queries one by one (slow at this dimension)")
            t = time.perf_counter()
            tree = BallTree(xb)  # euclidean on unit vectors: same ranking as cosine
            res["balltree_build_s"] = time.perf_counter() - t
            res["balltree_mb"] = sum(a.nbytes for a in tree.get_arrays() if hasattr(a, "nbytes")) / 2**20
            res["balltree_queries"] = balltree_queries
            times, got = [], []
            for q in tqdm(xq[:balltree_queries], desc="BallTree", unit="query", file=sys.stderr):
                t = time.perf_counter()
                _, ind = tree.query(q[None].astype(np.float64), k=k)
                times.append(time.perf_counter() - t)
                got.append(ind[0])
            res["balltree_qps"] = balltree_queries / sum(times)
            res["balltree_p50_ms"] = float(np.percentile(times, 50) * 1000)
            res["balltree_p99_ms"] = float(np.percentile(times, 99) * 1000)
            res["balltree_recall_at_10"] = recall_at_k(np.array(got), truth[:balltree_queries], k)
            del tree
        col.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res["qps_vs_faiss"] = res["qps"] / res["faiss_qps"]
    if "balltree_qps" in res:
        res["qps_vs_balltree"] = res["qps"] / res["balltree_qps"]
    res["peak_rss_mb"] = _peak_rss_mb()
    res["total_s"] = time.perf_counter() - t0
    return {key: (round(v, 4) if isinstance(v, float) else v) for key, v in res.items()}


def table(res: dict[str, Any]) -> str:
    """A markdown table of the figures."""
    def f(key: str, fmt: str = "{:.3f}") -> str:
        v = res.get(key)
        return "—" if v is None else fmt.format(v)

    rows = [
        ("geoseek collection (ranked ids)", "recall_at_10", "qps", "p50_ms", "p99_ms", "build_s", "index_mb"),
        ("geoseek collection, every hit's Item built", "recall_at_10", "qps_items", None, None, None, None),
        ("geoseek collection, bbox filter", "filtered_recall_at_10", "filtered_qps", "filtered_p50_ms",
         "filtered_p99_ms", None, None),
        (f"raw FAISS ({res.get('index_type')})", "faiss_recall_at_10", "faiss_qps", "faiss_p50_ms", "faiss_p99_ms",
         "faiss_build_s", "faiss_mb"),
        (f"numpy brute force ({res.get('numpy_queries')} queries)", "numpy_recall_at_10", "numpy_qps",
         "numpy_p50_ms", "numpy_p99_ms", None, "numpy_mb"),
        (f"scikit-learn BallTree ({res.get('balltree_queries')} queries)", "balltree_recall_at_10", "balltree_qps",
         "balltree_p50_ms", "balltree_p99_ms", "balltree_build_s", "balltree_mb"),
    ]
    lines = ["| method | recall@10 | queries/s | p50 ms | p99 ms | build s | memory MB |",
             "|---|---|---|---|---|---|---|"]
    for name, r, q, p50, p99, b, m in rows:
        lines.append(f"| {name} | {f(r)} | {f(q, '{:.0f}')} | {f(p50, '{:.2f}') if p50 else '—'} | "
                     f"{f(p99, '{:.2f}') if p99 else '—'} | "
                     f"{f(b, '{:.1f}') if b else '—'} | {f(m, '{:.0f}') if m else '—'} |")
    return "\n".join(lines)
