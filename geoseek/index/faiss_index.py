"""The embedded default backend: FAISS, no server.

Layout: vectors live in one FAISS index under internal positions 0..n-1: exact
(``IndexFlatIP``/``IndexFlatL2``) up to ``ivf_threshold`` vectors, ``IndexIVFFlat`` above
(nlist ~ 2·sqrt(N) k-means cells, ``nprobe`` calibrated at build time for recall@10 >= 0.95),
``IndexHNSWFlat`` on request (``kind="hnsw"``), or, when IVF-Flat would not fit in the memory
budget, ``IndexIVFPQ`` whose candidates are re-ranked exactly from the float32 vectors kept in a
memory-mapped ``vectors.npy`` (rules: :mod:`geoseek.index.ivfpq`). Beside it, numpy arrays aligned
with the positions hold each vector's key, point (lon, lat), label code and an "alive" flag.

Filtered search (the true top-k among the items inside the filter, whenever k exist):
1. a numpy pre-filter over the stored points/labels selects the candidate positions;
2. flat: exact search over just those vectors (gathered, BLAS);
3. IVF: the selected positions go to FAISS as an ``IDSelectorBitmap``; few candidates
   (<= ``exact_threshold``): every cell is scanned (exact over the selection); otherwise
   ``nprobe`` is raised by 1 / selectivity so as many *selected* vectors are compared as an
   unfiltered search compares; HNSW likewise raises ``efSearch``; IVF-PQ: a selection of
   <= ``exact_threshold`` is searched exactly from the vector file, a larger one through the
   ``IDSelectorBitmap`` as IVF, then k·refine_factor candidates are re-ranked exactly;
4. queries that got fewer than k results although k exist are answered exactly.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geoseek.index._faiss import faiss
import numpy as np

from geoseek.errors import InvalidInputError
from geoseek.index import ivfpq as pq
from geoseek.index._faiss_pq import IvfPqMixin
from geoseek.index.base import BACKENDS, CONFIG_FILE, METRICS, Filter, check_add_args, check_vectors, clamp_k

VECTORS_FILE = "vectors.npy"
"""IVF-PQ: the float32 vectors (row = position), memory-mapped read-only."""

IVF_THRESHOLD = 50_000
"""Above this many vectors "auto" switches from exact (flat) to IVF."""

EXACT_THRESHOLD = 5_000
"""A filter selecting at most this many vectors is answered exactly (IVF: every cell scanned)."""

SMALL_BATCH = 4
"""Query batches up to this size run FAISS on one OpenMP thread: no parallelism to gain, and
idle OpenMP threads spin-waiting cost milliseconds on a busy machine."""

NPROBE_CHOICES = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
TARGET_RECALL = 0.97
"""Calibration target for recall@10 (on held-in vectors as queries, their own hit excluded)."""


@contextmanager
def single_thread(enabled: bool = True) -> Iterator[None]:
    """Run FAISS calls in the block on one OpenMP thread (this Python thread only)."""
    if not enabled:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


@BACKENDS.register("faiss")
class FaissIndex(IvfPqMixin):
    """FAISS vector index with geographic / label filters.

    Args:
        dim: vector dimension D.
        metric: "ip" (inner product) or "l2" (scores are negated squared distances).
        kind: "auto" (flat up to ``ivf_threshold`` vectors, IVF above, IVF-PQ when IVF exceeds
            ``memory_budget``), "flat", "ivf", "ivfpq" or "hnsw".
        nlist: IVF cells (default ~2·sqrt(N) when the IVF is trained).
        nprobe: IVF cells visited per query (default: calibrated when trained).
        hnsw_m, ef_construction, ef_search: HNSW graph degree and beam widths.
        ivf_threshold: size at which "auto" switches to IVF.
        exact_threshold: filtered searches over at most this many candidates are exact.
        memory_budget: bytes (int) or "2G" / "512M" / MB number the index may hold in RAM
            (default :func:`geoseek.index.ivfpq.default_memory_budget`).
        pq_m, refine_factor: IVF-PQ bytes per code and re-ranking factor (default: chosen).
        spill_dir: where IVF-PQ writes new vector files before they are saved (default: temp).
    """

    backend = "faiss"

    def __init__(
        self,
        dim: int,
        metric: str = "ip",
        *,
        kind: str = "auto",
        nlist: int | None = None,
        nprobe: int | None = None,
        hnsw_m: int = 32,
        ef_construction: int = 80,
        ef_search: int = 128,
        ivf_threshold: int = IVF_THRESHOLD,
        exact_threshold: int = EXACT_THRESHOLD,
        memory_budget: int | str | float | None = None,
        pq_m: int | None = None,
        refine_factor: int | None = None,
        spill_dir: str | Path | None = None,
    ) -> None:
        if metric not in METRICS:
            raise InvalidInputError(f"metric must be one of {METRICS}, got {metric!r}")
        if kind not in ("auto", "flat", "ivf", "ivfpq", "hnsw"):
            raise InvalidInputError(f"kind must be auto, flat, ivf, ivfpq or hnsw, got {kind!r}")
        if int(dim) <= 0:
            raise InvalidInputError(f"dim must be > 0, got {dim}")
        self.dim = int(dim)
        self.metric = metric
        self.kind = kind
        self.nlist = nlist
        self.nprobe = nprobe
        self._auto_nprobe = False  # True once nprobe was chosen by calibrate()
        self.hnsw_m = int(hnsw_m)
        self.ef_construction = int(ef_construction)
        self.ef_search = int(ef_search)
        self.ivf_threshold = int(ivf_threshold)
        self.exact_threshold = int(exact_threshold)
        if memory_budget is None:  # e.g. set by ``geoseek build ... --memory-budget``; recorded in config.json
            memory_budget = os.environ.get(pq.BUDGET_ENV) or None
        self.memory_budget = memory_budget if isinstance(memory_budget, int) else pq.parse_memory_budget(memory_budget)
        self.pq_m = pq_m
        self.refine_factor = refine_factor
        self._auto_refine = refine_factor is None
        self.spill_dir = spill_dir
        self._vectors: pq.VectorFile | None = None  # IVF-PQ: the float32 vectors, memory-mapped
        self._faiss_metric = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
        self._index: faiss.Index = self._new_hnsw() if kind == "hnsw" else self._new_flat()
        self._trained_at = 0  # size when the IVF was trained
        self._keys = np.zeros(0, dtype=np.int64)
        self._lonlat = np.zeros((0, 2), dtype=np.float64)
        self._label_codes = np.zeros(0, dtype=np.int32)
        self._labels: list[str] = []
        self._label_index: dict[str, int] = {}
        self._alive = np.zeros(0, dtype=bool)
        self._n_dead = 0
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None  # (sorted keys, positions)
        self._geo_order: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # by longitude

    # --- structure ------------------------------------------------------------------------------

    @property
    def index_type(self) -> str:
        """"flat", "ivf", "ivfpq" or "hnsw": what the FAISS index currently is."""
        if isinstance(self._index, faiss.IndexHNSW):
            return "hnsw"
        if isinstance(self._index, faiss.IndexIVFPQ):
            return "ivfpq"
        if isinstance(self._index, faiss.IndexIVF):
            return "ivf"
        return "flat"

    @property
    def faiss_index(self) -> faiss.Index:
        """The raw FAISS index (ids are positions, not keys); for benchmarks."""
        return self._index

    def _new_flat(self) -> faiss.Index:
        return faiss.IndexFlat(self.dim, self._faiss_metric)

    def _new_hnsw(self) -> faiss.Index:
        index = faiss.IndexHNSWFlat(self.dim, self.hnsw_m, self._faiss_metric)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.efSearch = self.ef_search
        return index

    def _new_ivf(self, train: np.ndarray, n_total: int) -> faiss.Index:
        """Train an IVF on (a sample of) ``train`` for a collection of ``n_total`` vectors."""
        nlist = self.nlist or int(min(max(2 * math.sqrt(n_total), 16), 65536))
        nlist = max(1, min(nlist, len(train) // 8))
        rng = np.random.default_rng(0)
        sample = train if len(train) <= 40 * nlist else train[np.sort(rng.choice(len(train), 40 * nlist, replace=False))]
        quantizer = faiss.IndexFlat(self.dim, self._faiss_metric)
        index = faiss.IndexIVFFlat(quantizer, self.dim, nlist, self._faiss_metric)
        index.cp.niter = 12
        index.cp.max_points_per_centroid = 40
        index.train(np.ascontiguousarray(sample))
        index.set_direct_map_type(faiss.DirectMap.Hashtable)  # reconstruct by position, with removals
        self.nlist = nlist
        self._trained_at = n_total
        return index

    def budget_bytes(self) -> int:
        """The memory budget in bytes (the default resolved now)."""
        return self.memory_budget if self.memory_budget is not None else pq.default_memory_budget()

    def _want(self, n: int) -> str:
        if self.kind == "auto":
            return pq.choose_kind(n, self.dim, self.budget_bytes(), self.ivf_threshold)
        return self.kind

    def _xb(self) -> np.ndarray:
        """Zero-copy (n, D) view of the stored vectors of a flat / HNSW index, in position order."""
        flat = self._index if self.index_type == "flat" else faiss.downcast_index(self._index.storage)
        n = flat.ntotal
        if n == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return faiss.rev_swig_ptr(flat.get_xb(), n * self.dim).reshape(n, self.dim)

    def _reconstruct(self, pos: np.ndarray) -> np.ndarray:
        """Vectors (len(pos), D) of live positions."""
        if len(pos) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        if self.index_type == "ivfpq":
            return self._vectors.gather(pos)
        if self.index_type == "ivf":
            return self._index.reconstruct_batch(np.ascontiguousarray(pos, dtype=np.int64))
        return self._xb()[pos]

    def __len__(self) -> int:
        return int(len(self._keys) - self._n_dead)

    def keys(self) -> np.ndarray:
        return self._keys[self._alive].copy()

    def _positions(self, keys: np.ndarray) -> np.ndarray:
        """Positions of live ``keys`` (-1 where absent)."""
        if self._sorted is None:
            live = np.flatnonzero(self._alive)
            order = np.argsort(self._keys[live], kind="stable")
            self._sorted = (self._keys[live][order], live[order])
        skeys, spos = self._sorted
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        if len(skeys) == 0:
            return np.full(len(keys), -1, dtype=np.int64)
        i = np.clip(np.searchsorted(skeys, keys), 0, len(skeys) - 1)
        return np.where(skeys[i] == keys, spos[i], -1)

    # --- mutation -------------------------------------------------------------------------------

    def add(self, keys: np.ndarray, vectors: np.ndarray, lonlat: np.ndarray | None = None,
            labels: list[str | None] | None = None) -> None:
        """Add vectors (N, D) with keys (N,), points (N, 2) (lon, lat) degrees (NaN = none) and labels."""
        keys, vectors, lonlat, labels = check_add_args(keys, vectors, lonlat, labels, self.dim)
        if len(keys) == 0:
            return
        present = self._positions(keys) >= 0
        if present.any():
            raise InvalidInputError(f"key {int(keys[np.flatnonzero(present)[0]])} is already in the index")
        codes = np.array([self._code(lab) for lab in labels], dtype=np.int32)
        n_after = len(self) + len(keys)
        want = self._want(n_after)
        if want == "ivfpq" or self.index_type == "ivfpq":
            retrain = self.index_type != "ivfpq" or n_after > 4 * self._trained_at
            self._add_pq(keys, vectors, lonlat, codes, retrain)
            return
        trained = False
        if want == "ivf" and (self.index_type != "ivf" or n_after > 4 * self._trained_at):
            self._rebuild("ivf", extra=vectors)  # (re)train on everything, old and new
            trained = True
        elif want == "hnsw" and self.index_type != "hnsw":
            self._rebuild("hnsw")
        start = len(self._keys)
        if self.index_type == "ivf":
            self._index.add_with_ids(vectors, np.arange(start, start + len(keys), dtype=np.int64))
        else:
            self._index.add(vectors)
        self._append_rows(keys, lonlat, codes, recalibrate=trained)

    def _append_rows(self, keys: np.ndarray, lonlat: np.ndarray, codes: np.ndarray, *, recalibrate: bool) -> None:
        """Append live rows' keys, (lon, lat) and label codes; drop the derived orders; re-tune
        ``nprobe`` after a (re)training unless the user fixed it."""
        self._keys = np.concatenate([self._keys, keys])
        self._lonlat = np.concatenate([self._lonlat, lonlat])
        self._label_codes = np.concatenate([self._label_codes, codes])
        self._alive = np.concatenate([self._alive, np.ones(len(keys), dtype=bool)])
        self._sorted = None
        self._geo_order = None
        if recalibrate and (self.nprobe is None or self._auto_nprobe):
            self._auto_nprobe = True
            self.calibrate()

    def _code(self, label: str | None) -> int:
        if label is None:
            return -1
        label = str(label)
        code = self._label_index.get(label)
        if code is None:
            code = self._label_index[label] = len(self._labels)
            self._labels.append(label)
        return code

    def remove(self, keys: np.ndarray) -> int:
        """Remove keys; returns how many were present."""
        pos = self._positions(keys)
        pos = np.unique(pos[pos >= 0]).astype(np.int64)
        if len(pos) == 0:
            return 0
        if self.index_type in ("ivf", "ivfpq"):
            self._index.remove_ids(faiss.IDSelectorArray(len(pos), faiss.swig_ptr(pos)))
        self._alive[pos] = False
        self._n_dead += len(pos)
        self._sorted = None
        self._geo_order = None
        want = self._want(len(self))
        if self.index_type == "flat" or want != self.index_type or self._n_dead > 0.3 * len(self._keys):
            self._rebuild(want)
        return int(len(pos))

    def _rebuild(self, kind: str, extra: np.ndarray | None = None) -> None:
        """Re-create the FAISS index as ``kind`` from the live vectors (dropping tombstones).

        ``extra``: vectors about to be added, used (with the live ones) to train an IVF.
        """
        if kind == "ivfpq":
            self._add_pq(np.zeros(0, np.int64), np.zeros((0, self.dim), np.float32), np.zeros((0, 2)),
                         np.zeros(0, np.int32), retrain=True)
            return
        live = np.flatnonzero(self._alive)
        xb = np.ascontiguousarray(self._reconstruct(live))
        self._drop_vector_file()
        if kind == "ivf":
            train = xb if extra is None else np.concatenate([xb, extra])
            index = self._new_ivf(train, len(train))
        elif kind == "hnsw":
            index = self._new_hnsw()
        else:
            index = self._new_flat()
        if len(xb):
            if kind == "ivf":
                index.add_with_ids(xb, np.arange(len(xb), dtype=np.int64))
            else:
                index.add(xb)
        self._index = index
        self._keys = self._keys[live]
        self._lonlat = self._lonlat[live]
        self._label_codes = self._label_codes[live]
        self._alive = np.ones(len(self._keys), dtype=bool)
        self._n_dead = 0
        self._sorted = None
        self._geo_order = None
        if kind == "ivf" and extra is None and (self.nprobe is None or self._auto_nprobe):
            self._auto_nprobe = True
            self.calibrate()

    def calibrate(self, target: float = TARGET_RECALL, n_queries: int = 200, k: int = 10) -> int:
        """Choose the smallest IVF ``nprobe`` reaching recall@k >= ``target`` on stored vectors used
        as queries (each one's own hit excluded); returns it. No-op unless the index is an IVF.
        IVF-PQ: also chooses ``refine_factor`` (see :mod:`geoseek.index.ivfpq`)."""
        if self.index_type == "ivfpq" and len(self) > k + 1:
            return self._calibrate_pq(target, n_queries, k)
        if self.index_type != "ivf" or len(self) <= k + 1:
            return self.nprobe or 0
        rng = np.random.default_rng(0)
        live = np.flatnonzero(self._alive)
        qpos = np.sort(rng.choice(live, min(n_queries, len(live)), replace=False))
        queries = np.ascontiguousarray(self._reconstruct(qpos))
        exact = faiss.SearchParametersIVF(nprobe=self._index.nlist)
        _, truth = self._index.search(queries, k + 1, params=exact)
        chosen = self._index.nlist
        for nprobe in NPROBE_CHOICES:
            if nprobe >= self._index.nlist:
                break
            _, got = self._index.search(queries, k + 1, params=faiss.SearchParametersIVF(nprobe=nprobe))
            rec = np.mean([len((set(g) - {p}) & (set(t) - {p})) / max(len(set(t) - {p}), 1)
                           for g, t, p in zip(got.tolist(), truth.tolist(), qpos.tolist())])
            if rec >= target:
                chosen = nprobe
                break
        self.nprobe = int(chosen)
        return self.nprobe

    # --- search ---------------------------------------------------------------------------------

    def vectors(self, keys: np.ndarray) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.int64).reshape(-1)
        pos = self._positions(keys)
        if (pos < 0).any():
            raise KeyError(f"key {int(keys[np.flatnonzero(pos < 0)[0]])} is not in the index")
        return np.array(self._reconstruct(pos), dtype=np.float32)

    def candidates(self, filter: Filter | None) -> np.ndarray | None:
        """Boolean mask over positions of live items passing ``filter`` (None: every live item)."""
        if filter is None or filter.empty:
            return None if self._n_dead == 0 else self._alive.copy()
        boxes = [b for b in (filter.bbox, filter.radius.bounds() if filter.radius else None) if b is not None]
        if boxes:
            west, east = max(b.west for b in boxes), min(b.east for b in boxes)
            south, north = max(b.south for b in boxes), min(b.north for b in boxes)
            mask = np.zeros(len(self._keys), dtype=bool)
            if west <= east and south <= north:
                mask[self._in_box(west, south, east, north)] = True
            mask &= self._alive
        else:
            mask = self._alive.copy()
        if filter.radius is not None:
            idx = np.flatnonzero(mask)
            mask[idx] = filter.radius.contains(self._lonlat[idx])
        if filter.labels is not None:
            codes = [self._label_index[lab] for lab in filter.labels if lab in self._label_index]
            mask &= np.isin(self._label_codes, np.array(codes, dtype=np.int32))
        return mask

    def _in_box(self, west: float, south: float, east: float, north: float) -> np.ndarray:
        """Positions whose point lies in the box (edges included), via points sorted by longitude."""
        if self._geo_order is None:
            order = np.argsort(self._lonlat[:, 0], kind="stable")  # NaN (no location) sorts last
            self._geo_order = (order, self._lonlat[order, 0], self._lonlat[order, 1])
        order, lon, lat = self._geo_order
        i0, i1 = np.searchsorted(lon, west, side="left"), np.searchsorted(lon, east, side="right")
        la = lat[i0:i1]
        return order[i0:i1][(la >= south) & (la <= north)]

    def search(
        self, queries: np.ndarray, k: int, filter: Filter | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k per query: (scores (Q, k) float32, keys (Q, k) int64); missing slots have key -1."""
        queries = check_vectors(queries, self.dim, name="queries")
        k = int(k)
        if k <= 0:
            raise InvalidInputError(f"k must be > 0, got {k}")
        k = clamp_k(k, len(self._keys))  # (Q, min(k, N)) slots at most, whatever k asks
        nq = len(queries)
        filtered = filter is not None and not filter.empty
        mask = self.candidates(filter) if filtered else None
        n_sel = len(self) if mask is None else int(mask.sum())
        if n_sel == 0 or nq == 0:
            return np.full((nq, k), -np.inf, dtype=np.float32), np.full((nq, k), -1, dtype=np.int64)
        with single_thread(nq <= SMALL_BATCH):
            return self._search(queries, k, filter, mask, n_sel, filtered)

    def _search(self, queries, k, filter, mask, n_sel, filtered):
        kind = self.index_type
        if kind == "ivfpq":
            s, p = self._search_pq(queries, k, mask, n_sel, filtered)
            return self._to_keys(s if self.metric == "ip" else -s, p)
        if kind == "flat":
            scores, pos = self._exact_flat(queries, k, mask if (filtered or self._n_dead) else None)
        else:
            sel_mask = mask if filtered else (self._alive if (self._n_dead and kind == "hnsw") else None)
            scores, pos = self._ann(queries, k, sel_mask, n_sel, exact=filtered and n_sel <= self.exact_threshold)
            short = (pos < 0).any(axis=1) if n_sel >= k else (pos >= 0).sum(axis=1) < n_sel
            if short.any():  # the approximate search lost some: answer those queries exactly
                s2, p2 = self._ann(queries[short], k, sel_mask, n_sel, exact=True)
                scores[short], pos[short] = s2, p2
        return self._to_keys(scores, pos)

    def _exact_flat(self, queries: np.ndarray, k: int, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        xb = self._xb()
        sel = None if mask is None else np.flatnonzero(mask)
        base = xb if sel is None else np.ascontiguousarray(xb[sel])
        kk = min(k, len(base))
        dist, idx = faiss.knn(queries, base, kk, metric=self._faiss_metric)
        if sel is not None:
            idx = np.where(idx >= 0, sel[np.clip(idx, 0, None)], -1)
        if kk < k:
            dist = np.pad(dist, ((0, 0), (0, k - kk)), constant_values=np.nan)
            idx = np.pad(idx, ((0, 0), (0, k - kk)), constant_values=-1)
        return dist, idx

    def _ann(self, queries: np.ndarray, k: int, mask: np.ndarray | None, n_sel: int, exact: bool):
        """IVF / HNSW search; ``mask`` restricts to positions (IDSelectorBitmap); ``exact`` scans all."""
        if exact and self.index_type == "hnsw":  # a graph walk is never exhaustive: brute force
            return self._exact_flat(queries, k, mask)
        frac = n_sel / max(len(self._keys), 1)
        sel = bitmap = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
        if self.index_type == "ivf":
            nlist = self._index.nlist
            base = self.nprobe or min(32, nlist)
            nprobe = nlist if exact else int(min(nlist, math.ceil(base / max(frac, 1e-9))))
            params = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel) if sel is not None else \
                faiss.SearchParametersIVF(nprobe=nprobe)
        else:
            ef = max(self.ef_search, k)
            if mask is not None:
                ef = int(min(max(ef / math.sqrt(frac), 2 * k / frac), 4096))
            params = faiss.SearchParametersHNSW(efSearch=ef, sel=sel) if sel is not None else \
                faiss.SearchParametersHNSW(efSearch=ef)
        dist, idx = self._index.search(queries, k, params=params)
        del bitmap
        return dist, idx

    def _to_keys(self, dist: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        valid = pos >= 0
        if valid.all():  # the common case: no empty slot to mask
            scores = dist if self.metric == "ip" else -dist
            return scores.astype(np.float32, copy=False), self._keys[pos].astype(np.int64, copy=False)
        keys = np.where(valid, self._keys[np.clip(pos, 0, None)], -1)
        scores = dist if self.metric == "ip" else -dist
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        return scores, keys.astype(np.int64)

    # --- persistence ----------------------------------------------------------------------------

    def config(self) -> dict:
        return {
            "backend": self.backend,
            "dim": self.dim,
            "metric": self.metric,
            "kind": self.kind,
            "index_type": self.index_type,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "auto_nprobe": self._auto_nprobe,
            "trained_at": self._trained_at,
            "hnsw_m": self.hnsw_m,
            "ef_construction": self.ef_construction,
            "ef_search": self.ef_search,
            "ivf_threshold": self.ivf_threshold,
            "exact_threshold": self.exact_threshold,
            "memory_budget": self.memory_budget,
            "pq_m": self.pq_m,
            "refine_factor": self.refine_factor,
            "auto_refine": self._auto_refine,
            "labels": self._labels,
            "count": len(self),
        }

    def save(self, path: Path) -> None:
        """Write ``faiss.index``, the aligned arrays and ``config.json`` into directory ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        faiss.write_index(self._index, str(path / "faiss.index"))
        if self._vectors is not None:
            self._vectors.save_to(path / VECTORS_FILE)
        else:
            (path / VECTORS_FILE).unlink(missing_ok=True)
        for name, arr in (("keys", self._keys), ("lonlat", self._lonlat),
                          ("label_codes", self._label_codes), ("alive", self._alive)):
            np.save(path / f"{name}.npy", arr)
        (path / CONFIG_FILE).write_text(json.dumps(self.config(), indent=1))

    @classmethod
    def load(cls, path: Path) -> FaissIndex:
        path = Path(path)
        try:
            config = json.loads((path / CONFIG_FILE).read_text())
            self = cls(
                config["dim"], config["metric"], kind=config["kind"], nlist=config.get("nlist"),
                nprobe=config.get("nprobe"), hnsw_m=config["hnsw_m"],
                ef_construction=config["ef_construction"], ef_search=config["ef_search"],
                ivf_threshold=config["ivf_threshold"], exact_threshold=config["exact_threshold"],
                memory_budget=config.get("memory_budget"), pq_m=config.get("pq_m"),
                refine_factor=config.get("refine_factor"),
            )
            self._auto_refine = bool(config.get("auto_refine", self._auto_refine))
            self._trained_at = int(config.get("trained_at", 0))
            self._auto_nprobe = bool(config.get("auto_nprobe", False))
            self._index = faiss.read_index(str(path / "faiss.index"))
            self._keys = np.load(path / "keys.npy")
            self._lonlat = np.load(path / "lonlat.npy")
            self._label_codes = np.load(path / "label_codes.npy")
            self._alive = np.load(path / "alive.npy")
            if self.index_type == "ivfpq":
                self._vectors = pq.VectorFile(path / VECTORS_FILE)
                if len(self._vectors) != len(self._keys) or self._vectors.array.shape[1] != self.dim:
                    raise ValueError(f"{VECTORS_FILE} holds {self._vectors.array.shape}, expected "
                                     f"({len(self._keys)}, {self.dim})")
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise InvalidInputError(f"cannot read the FAISS index in {path}: {exc}") from None
        if isinstance(self._index, faiss.IndexHNSW):
            self._index.hnsw.efSearch = self.ef_search
        self._labels = list(config["labels"])
        self._label_index = {lab: i for i, lab in enumerate(self._labels)}
        self._n_dead = int((~self._alive).sum())
        n = len(self._keys)
        stored = self._index.ntotal + (self._n_dead if self.index_type in ("ivf", "ivfpq") else 0)
        if not (stored == n == len(self._lonlat) == len(self._label_codes) == len(self._alive)):
            raise InvalidInputError(f"the FAISS index in {path} is inconsistent (sizes differ)")
        if self._index.d != self.dim:
            raise InvalidInputError(f"the FAISS index in {path} has dim {self._index.d}, config says {self.dim}")
        return self

    def close(self) -> None:
        self._drop_vector_file()
