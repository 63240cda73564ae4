"""The IVF-PQ side of :class:`geoseek.index.faiss_index.FaissIndex` (a mixin: build, calibrate, search).

Rules and helpers: :mod:`geoseek.index.ivfpq`. The FAISS ``IndexIVFPQ`` holds codes under ids =
positions; the float32 vectors of every position (dead ones included until the next repack) are
rows of ``self._vectors`` (a :class:`~geoseek.index.ivfpq.VectorFile`).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from geoseek.index import ivfpq as pq
from geoseek.index._faiss import faiss

ADD_CHUNK = 262_144
"""Vectors encoded per ``add_with_ids`` call (bounds the temporary RAM of PQ encoding)."""


class IvfPqMixin:
    """IVF-PQ methods; relies on FaissIndex's attributes (_index, _keys, _alive, _vectors, ...)."""

    def _drop_vector_file(self) -> None:
        if self._vectors is not None:
            self._vectors.close()
            self._vectors = None

    def _live_chunks(self, live: np.ndarray):
        """The live vectors in position order, chunk by chunk (from the vector file or the index)."""
        for s in range(0, len(live), pq.CHUNK_ROWS):
            yield self._reconstruct(live[s:s + pq.CHUNK_ROWS])

    def _add_pq(self, keys: np.ndarray, vectors: np.ndarray, lonlat: np.ndarray, codes: np.ndarray,
                retrain: bool) -> None:
        """Add to an IVF-PQ; ``retrain``: write a compacted vector file (live + new), train, re-encode."""
        if retrain:
            live = np.flatnonzero(self._alive)
            n = len(live) + len(vectors)
            new_chunks = (vectors[s:s + pq.CHUNK_ROWS] for s in range(0, len(vectors), pq.CHUNK_ROWS))
            store = pq.VectorFile.write(pq.spill_path(self.spill_dir), self.dim, n,
                                        itertools.chain(self._live_chunks(live), new_chunks))
            self._drop_vector_file()
            self._vectors = store
            params = pq.choose_params(n, self.dim, self.budget_bytes(), nlist=self.nlist if self.kind == "ivfpq" else None,
                                      m=self.pq_m)
            sample_size = max(40 * params.nlist, 40 * 2**params.nbits)
            sample = store.gather(pq.sample_rows(n, sample_size))
            index = pq.train_ivfpq(sample, self.dim, params, self._faiss_metric)
            del sample
            for s in range(0, n, ADD_CHUNK):
                e = min(n, s + ADD_CHUNK)
                index.add_with_ids(np.ascontiguousarray(store.array[s:e]), np.arange(s, e, dtype=np.int64))
            self._index = index
            self.nlist, self.pq_m, self._trained_at = params.nlist, params.m, n
            self._keys = np.concatenate([self._keys[live], keys])
            self._lonlat = np.concatenate([self._lonlat[live], lonlat])
            self._label_codes = np.concatenate([self._label_codes[live], codes])
            self._alive = np.ones(n, dtype=bool)
            self._n_dead = 0
        else:
            start = len(self._keys)
            old = self._vectors
            store = pq.VectorFile.write(pq.spill_path(self.spill_dir), self.dim, start + len(vectors),
                                        itertools.chain(old.chunks(), [vectors]))
            old.close()
            self._vectors = store
            self._index.add_with_ids(vectors, np.arange(start, start + len(vectors), dtype=np.int64))
            self._append_rows(keys, lonlat, codes, recalibrate=retrain)
            return
        self._sorted = None
        self._geo_order = None
        if retrain and (self.nprobe is None or self._auto_nprobe):
            self._auto_nprobe = True
            self.calibrate()

    def _calibrate_pq(self, target: float, n_queries: int, k: int) -> int:
        """Smallest nprobe (then refine factor) reaching recall@k >= target; see ivfpq's docstring."""
        live = np.flatnonzero(self._alive)
        qpos = np.sort(np.random.default_rng(0).choice(live, min(n_queries, len(live)), replace=False))
        queries = self._vectors.gather(qpos)
        _, truth = pq.exact_search(queries, self._vectors, k + 1, self.metric,
                                   positions=None if self._n_dead == 0 else live)
        nlist = self._index.nlist
        factors = pq.REFINE_FACTORS if self._auto_refine else (int(self.refine_factor),)
        chosen = (nlist, factors[-1])
        for rf in factors:
            found = False
            for nprobe in self._nprobe_choices(nlist):
                _, got = self._pq_candidates(queries, k + 1, nprobe, rf, None, len(self))
                rec = np.mean([len((set(g) - {p}) & (set(t) - {p})) / max(len(set(t) - {p}), 1)
                               for g, t, p in zip(got.tolist(), truth.tolist(), qpos.tolist())])
                if rec >= target:
                    chosen, found = (nprobe, rf), True
                    break
            if found:
                break
        self.nprobe, self.refine_factor = int(chosen[0]), int(chosen[1])
        return self.nprobe

    @staticmethod
    def _nprobe_choices(nlist: int) -> list[int]:
        from geoseek.index.faiss_index import NPROBE_CHOICES

        return [p for p in NPROBE_CHOICES if p < nlist] + [nlist]

    def _pq_candidates(self, queries: np.ndarray, k: int, nprobe: int, rf: int, mask: np.ndarray | None,
                       n_sel: int) -> tuple[np.ndarray, np.ndarray]:
        """PQ search for k·rf candidates (restricted to ``mask``), re-ranked exactly: (scores, positions)."""
        kr = max(k, min(k * rf, n_sel))
        bitmap = None
        if mask is not None:
            bitmap = np.packbits(mask, bitorder="little")
            sel = faiss.IDSelectorBitmap(len(mask), faiss.swig_ptr(bitmap))
            params = faiss.SearchParametersIVF(nprobe=nprobe, sel=sel)
        else:
            params = faiss.SearchParametersIVF(nprobe=nprobe)
        _, cand = self._index.search(queries, kr, params=params)
        del bitmap
        return pq.refine(queries, cand, self._vectors, k, self.metric)

    def _search_pq(self, queries: np.ndarray, k: int, mask: np.ndarray | None, n_sel: int,
                   filtered: bool) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores higher-is-better, positions) on the IVF-PQ; exact for small selections."""
        sel_pos = np.flatnonzero(mask) if mask is not None else None
        if filtered and n_sel <= self.exact_threshold:
            return pq.exact_search(queries, self._vectors, k, self.metric, positions=sel_pos)
        nlist = self._index.nlist
        frac = n_sel / max(len(self._keys), 1)
        base = self.nprobe or min(32, nlist)
        nprobe = int(min(nlist, math.ceil(base / max(frac, 1e-9))))
        rf = int(self.refine_factor or pq.REFINE_FACTORS[0])
        scores, pos = self._pq_candidates(queries, k, nprobe, rf, mask if filtered else None, n_sel)
        short = (pos < 0).any(axis=1) if n_sel >= k else (pos >= 0).sum(axis=1) < n_sel
        if short.any():  # the approximate search lost some: answer those queries exactly
            if sel_pos is None and self._n_dead:
                sel_pos = np.flatnonzero(self._alive)
            s2, p2 = pq.exact_search(queries[short], self._vectors, k, self.metric, positions=sel_pos)
            scores[short], pos[short] = s2, p2
        return scores, pos
