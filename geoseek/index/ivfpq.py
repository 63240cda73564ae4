"""IVF-PQ for collections larger than RAM allows: the choice rules, the vector file, exact re-ranking.

**Which index** (:func:`choose_kind`, used by ``FaissIndex(kind="auto")``), for N vectors of
dimension D and a memory budget B bytes (``memory_budget``; default :func:`default_memory_budget`):

* N <= ``ivf_threshold`` (50,000) and the flat index fits in B (or N < :data:`MIN_PQ_ITEMS`): flat (exact);
* else IVF-Flat if its RAM (:func:`estimate_ram_bytes`: 4·D bytes per vector + 8 for the IVF id +
  :data:`ARRAY_BYTES_PER_ITEM` for geoseek's aligned arrays + ~:data:`DIRECT_MAP_BYTES` for the
  direct map, + the centroids) fits in B;
* else IVF-PQ with exact re-ranking: RAM holds only the PQ codes, ids and centroids; the float32
  vectors stay in one ``vectors.npy`` read through a read-only memory map (the OS page cache
  holds what fits and evicts what does not; they are never all copied into process memory).

**IVF-PQ parameters** (:func:`choose_params`):

* ``nlist`` = the largest power of two <= 2·sqrt(N), clamped to [64, 65536] and to N / 39
  (k-means needs >= 39 training points per cell): 1 M → 1024, 10 M → 4096. Few large cells keep the
  cost of assigning N vectors at add time (N · nlist · D multiply-adds) to minutes on 2 cores.
* PQ ``m`` (bytes per code, ``nbits`` = 8 so each sub-quantizer has 256 centroids and is scanned by
  table look-up): the largest divisor of D that is <= D/4 (one byte per 4 dimensions: 32 B at
  D = 128) whose RAM fits in B; halved (D/8, D/16, ... never below 1 byte per 32 dims) while it
  does not fit. A budget too small even then is an error naming the minimum.
* ``nbits`` = 8, or log2(N / 40) rounded down (>= 4) below 10,240 vectors (256 centroids want ~40
  training points each).
* training sample: max(40·nlist, 40·256) vectors (both k-means want ~40 points per centroid),
  gathered by sorted random row indices from the vector file.
* ``refine_factor`` (k·refine_factor PQ candidates re-ranked exactly from the float32 vectors)
  and ``nprobe`` are calibrated after training on 200 stored vectors used as queries (their own
  hit excluded) against an exact brute-force ground truth over the vector file: the smallest
  ``nprobe`` in :data:`geoseek.index.faiss_index.NPROBE_CHOICES` reaching recall@10 >= 0.97 with
  ``refine_factor`` = :data:`REFINE_FACTORS`[0] (10), then the next factor (20, 40) if none does.

**Exact re-ranking** (:func:`refine`): the candidate rows of a whole query batch are de-duplicated
and sorted (``np.unique``), gathered from the memory map in one pass in file order, scored
exactly (inner product or squared L2 in float32) and the top k kept.
"""

from __future__ import annotations

import math
import os
import secrets
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from geoseek.errors import InvalidInputError
from geoseek.index._faiss import faiss

ARRAY_BYTES_PER_ITEM = 29
"""geoseek's per-vector arrays beside FAISS: key 8, (lon, lat) 16, label code 4, alive flag 1."""
IVF_ID_BYTES = 8
"""FAISS stores one int64 id per vector in the inverted lists."""
DIRECT_MAP_BYTES = 32
"""IVF-Flat's hashtable direct map (reconstruct by id), about 32 bytes per entry."""
REFINE_FACTORS = (10, 20, 40)
PQ_NBITS = 8
MIN_NLIST, MAX_NLIST = 64, 65536
CHUNK_ROWS = 262_144
"""Rows per chunk when streaming the vector file (128 MB at D = 128)."""
BUDGET_ENV = "GEOSEEK_INDEX_MEMORY_BUDGET"
MIN_PQ_ITEMS = 2_000
"""Fewer vectors than this always get a flat index (too few to train an IVF-PQ; a few MB at most)."""


@dataclass(frozen=True)
class IvfPqParams:
    """Structure of an IVF-PQ index: ``nlist`` cells, ``m`` bytes per PQ code of ``nbits`` each."""

    nlist: int
    m: int
    nbits: int = PQ_NBITS


def parse_memory_budget(value: str | float | int | None) -> int | None:
    """Bytes from ``"2G"``, ``"512M"``, ``"1.5GB"``, ``"2048"`` (a bare number is MB); None stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        mb = float(value)
    else:
        text = str(value).strip().upper().removesuffix("B").removesuffix("I")
        scale = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0**2}
        try:
            mb = float(text[:-1]) * scale[text[-1]] if text and text[-1] in scale else float(text)
        except ValueError:
            raise InvalidInputError(f"memory budget must look like 2G, 512M or 2048 (MB), got {value!r}") from None
    if not (mb > 0 and math.isfinite(mb)):
        raise InvalidInputError(f"memory budget must be > 0, got {value!r}")
    return int(mb * 2**20)


def default_memory_budget() -> int:
    """``$GEOSEEK_INDEX_MEMORY_BUDGET`` if set, else a quarter of the machine's physical memory (bytes)."""
    env = parse_memory_budget(os.environ.get(BUDGET_ENV))
    if env is not None:
        return env
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4)
    except (ValueError, OSError, AttributeError):
        return 4 * 2**30


def default_nlist(n: int) -> int:
    """The largest power of two <= 2·sqrt(n), clamped to [64, 65536] and to n / 39."""
    nlist = 2 ** int(math.floor(math.log2(max(2 * math.sqrt(max(n, 1)), 1))))
    nlist = min(max(nlist, MIN_NLIST), MAX_NLIST)
    return max(1, min(nlist, n // 39))


def default_nbits(n: int) -> int:
    """8 bits per sub-quantizer, fewer (>= 4) when n < 40·256 vectors to train them on."""
    return PQ_NBITS if n >= 40 * 2**PQ_NBITS else max(4, min(PQ_NBITS, int(math.log2(max(n // 40, 1)))))


def estimate_ram_bytes(kind: str, n: int, dim: int, *, m: int = 0, nlist: int | None = None) -> int:
    """Process memory of a FAISS index of ``kind`` ("flat", "ivf", "ivfpq") holding n vectors, plus
    geoseek's aligned arrays; IVF-PQ's float32 vectors (memory-mapped) are not counted."""
    nlist = default_nlist(n) if nlist is None else nlist
    per = ARRAY_BYTES_PER_ITEM
    if kind == "flat":
        return n * (4 * dim + per)
    if kind == "ivf":
        return n * (4 * dim + IVF_ID_BYTES + DIRECT_MAP_BYTES + per) + nlist * dim * 4
    if kind == "ivfpq":
        return n * (m + IVF_ID_BYTES + per) + nlist * dim * 4 + 256 * dim * 4
    raise ValueError(kind)


def choose_kind(n: int, dim: int, budget: int, ivf_threshold: int) -> str:
    """"flat", "ivf" or "ivfpq" for n vectors (see the module docstring)."""
    if n <= ivf_threshold and (n < MIN_PQ_ITEMS or estimate_ram_bytes("flat", n, dim) <= budget):
        return "flat"
    return "ivf" if estimate_ram_bytes("ivf", n, dim) <= budget else "ivfpq"


def choose_params(n: int, dim: int, budget: int, *, nlist: int | None = None, m: int | None = None) -> IvfPqParams:
    """IVF-PQ structure for n vectors of dimension dim within ``budget`` bytes (module docstring)."""
    nlist = nlist or default_nlist(n)
    if m is not None:
        if dim % m:
            raise InvalidInputError(f"PQ m must divide the dimension {dim}, got {m}")
        return IvfPqParams(nlist, m, default_nbits(n))
    floor = max(1, dim // 32)
    cand = max(d for d in range(1, max(dim // 4, 1) + 1) if dim % d == 0)
    while True:
        if estimate_ram_bytes("ivfpq", n, dim, m=cand, nlist=nlist) <= budget:
            return IvfPqParams(nlist, cand, default_nbits(n))
        smaller = [d for d in range(1, cand // 2 + 1) if dim % d == 0]
        if not smaller or smaller[-1] < floor:
            need = estimate_ram_bytes("ivfpq", n, dim, m=cand, nlist=nlist) / 2**20
            raise InvalidInputError(f"a memory budget of {budget / 2**20:.2f} MB cannot hold {n} vectors of "
                                    f"dimension {dim}: IVF-PQ needs at least {need:.2f} MB")
        cand = smaller[-1]


def train_ivfpq(sample: np.ndarray, dim: int, params: IvfPqParams, metric: int) -> faiss.Index:
    """An untrained-then-trained ``IndexIVFPQ`` (flat coarse quantizer) on ``sample`` (S, D)."""
    quantizer = faiss.IndexFlat(dim, metric)
    index = faiss.IndexIVFPQ(quantizer, dim, params.nlist, params.m, params.nbits, metric)
    index.cp.niter = 12
    index.cp.max_points_per_centroid = 40
    index.train(np.ascontiguousarray(sample, dtype=np.float32))
    return index


def sample_rows(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Sorted random row indices (at most n)."""
    if size >= n:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)).astype(np.int64)


class VectorFile:
    """Float32 vectors (N, D) in one ``.npy`` file, read through a read-only memory map.

    The file is never modified once written (appending writes a new file), so saving a
    collection can hard-link it instead of copying. ``owned`` files (spilled by this process)
    are deleted on :meth:`close`.
    """

    def __init__(self, path: Path, owned: bool = False) -> None:
        self.path = Path(path)
        self.owned = owned
        self.array: np.ndarray = np.load(self.path, mmap_mode="r")
        self._ino = os.stat(self.path).st_ino
        if self.array.dtype != np.float32 or self.array.ndim != 2:
            raise InvalidInputError(f"{self.path} must hold float32 (N, D) vectors")

    @classmethod
    def write(cls, path: Path, dim: int, n: int, chunks: Iterable[np.ndarray]) -> VectorFile:
        """Write ``n`` rows given as (m, D) chunks into ``path`` (never all in RAM); owned."""
        path = Path(path)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
        row = 0
        for chunk in chunks:
            chunk = np.asarray(chunk, dtype=np.float32)
            out[row:row + len(chunk)] = chunk
            row += len(chunk)
        if row != n:
            raise ValueError(f"wrote {row} rows into a vector file of {n}")
        out.flush()
        del out
        return cls(path, owned=True)

    def __len__(self) -> int:
        return len(self.array)

    def chunks(self, rows: np.ndarray | None = None, size: int = CHUNK_ROWS) -> Iterable[np.ndarray]:
        """Rows (all, or the sorted ``rows``) in chunks of at most ``size``, each a RAM copy."""
        if rows is None:
            for s in range(0, len(self.array), size):
                yield np.array(self.array[s:s + size])
        else:
            for s in range(0, len(rows), size):
                yield self.gather(rows[s:s + size])

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """Rows (len(rows), D) as a RAM copy; reads the map in sorted row order."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) > 1 and (np.diff(rows) < 0).any():
            order = np.argsort(rows, kind="stable")
            out = np.empty((len(rows), self.array.shape[1]), dtype=np.float32)
            out[order] = self.array[rows[order]]
            return out
        return self.array[rows]

    def save_to(self, dst: Path) -> None:
        """Put this file's bytes at ``dst``: a hard link when possible, else a streamed copy."""
        dst = Path(dst)
        if dst.exists():
            dst.unlink()
        try:
            if os.stat(self.path).st_ino == self._ino:
                os.link(self.path, dst)
                if self.owned:  # the saved copy is now the file: drop the spilled name
                    self.path.unlink(missing_ok=True)
                    self.path, self.owned = dst, False
                return
        except OSError:
            pass
        out = np.lib.format.open_memmap(dst, mode="w+", dtype=np.float32, shape=self.array.shape)
        for s in range(0, len(self.array), CHUNK_ROWS):
            out[s:s + CHUNK_ROWS] = self.array[s:s + CHUNK_ROWS]
        out.flush()
        del out

    def close(self) -> None:
        self.array = np.zeros((0, self.array.shape[1]), dtype=np.float32)
        if self.owned:
            self.path.unlink(missing_ok=True)
            self.owned = False


def spill_path(spill_dir: str | os.PathLike | None) -> Path:
    """A fresh file name for a vector file in ``spill_dir`` (default: the system temp directory)."""
    root = Path(spill_dir) if spill_dir is not None else Path(tempfile.gettempdir())
    root.mkdir(parents=True, exist_ok=True)
    return root / f".geoseek-vectors-{os.getpid()}-{secrets.token_hex(4)}.npy"


def _scores(queries: np.ndarray, rows: np.ndarray, metric: str) -> np.ndarray:
    """Scores (higher is better) of queries (Q, D) against per-query rows (Q, K, D)."""
    if metric == "ip":
        return np.matmul(rows, queries[:, :, None])[:, :, 0]
    diff = rows - queries[:, None, :]
    return -np.einsum("qkd,qkd->qk", diff, diff)


def _top(scores: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best (scores, positions) per row, best first; -inf / -1 where missing."""
    kk = min(k, scores.shape[1])
    if kk < scores.shape[1]:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        scores, pos = np.take_along_axis(scores, part, 1), np.take_along_axis(pos, part, 1)
    order = np.argsort(-scores, axis=1, kind="stable")
    scores, pos = np.take_along_axis(scores, order, 1), np.take_along_axis(pos, order, 1)
    pos = np.where(np.isfinite(scores), pos, -1)
    if kk < k:
        scores = np.pad(scores, ((0, 0), (0, k - kk)), constant_values=-np.inf)
        pos = np.pad(pos, ((0, 0), (0, k - kk)), constant_values=-1)
    return scores.astype(np.float32, copy=False), pos.astype(np.int64, copy=False)


def refine(queries: np.ndarray, cand: np.ndarray, vectors: VectorFile, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k among candidate positions ``cand`` (Q, K') (-1 = none), from the vector file.

    Returns (scores (Q, k) higher-is-better float32, positions (Q, k) int64, -1 where missing)."""
    valid = cand >= 0
    uniq, inv = np.unique(cand[valid], return_inverse=True)  # sorted rows: one pass over the file
    rows = vectors.gather(uniq)
    idx = np.zeros(cand.shape, dtype=np.int64)
    idx[valid] = inv
    scores = _scores(queries, rows[idx], metric)
    scores[~valid] = -np.inf
    return _top(scores, cand, k)


def exact_search(queries: np.ndarray, vectors: VectorFile | np.ndarray, k: int, metric: str,
                 positions: np.ndarray | None = None, chunk: int = CHUNK_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k over all rows (or the sorted ``positions``) of a vector file, chunk by chunk.

    Returns (scores (Q, k) higher-is-better, positions (Q, k)); -inf / -1 where fewer than k."""
    arr = vectors.array if isinstance(vectors, VectorFile) else vectors
    fm = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    nq = len(queries)
    best_s = np.full((nq, 0), -np.inf, dtype=np.float32)
    best_p = np.full((nq, 0), -1, dtype=np.int64)
    total = len(arr) if positions is None else len(positions)
    for s in range(0, total, chunk):
        if positions is None:
            block, pos = np.ascontiguousarray(arr[s:s + chunk]), np.arange(s, min(s + chunk, total), dtype=np.int64)
        else:
            pos = np.asarray(positions[s:s + chunk], dtype=np.int64)
            block = np.ascontiguousarray(arr[pos])
        kk = min(k, len(block))
        d, i = faiss.knn(np.ascontiguousarray(queries, dtype=np.float32), block, kk, metric=fm)
        sc = d if metric == "ip" else -d
        sc = np.where(i >= 0, sc, -np.inf)
        best_s = np.concatenate([best_s, sc.astype(np.float32)], axis=1)
        best_p = np.concatenate([best_p, np.where(i >= 0, pos[np.clip(i, 0, None)], -1)], axis=1)
        best_s, best_p = _top(best_s, best_p, k)
    if best_s.shape[1] < k:
        best_s, best_p = _top(best_s, best_p, k)
    return best_s, best_p
