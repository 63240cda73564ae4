"""Import FAISS the way geoseek wants it: ``from geoseek.index._faiss import faiss``.

FAISS's OpenMP worker threads spin-wait after every parallel region by default (libgomp's
OMP_WAIT_POLICY=ACTIVE). On a machine with few, busy cores they then steal the CPU from the
Python code that consumes the results: in ``geoseek bench index`` on this project's 2 shared
cores, the collection search ran at 0.62-0.71 of raw FAISS's throughput with spinning workers
and 0.88-0.99 with passive ones, and raw FAISS itself was not slower. So geoseek asks for
passive waiting before FAISS's OpenMP runtime loads; a value the user set wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import faiss  # noqa: E402  (after the environment is set)

__all__ = ["faiss"]
