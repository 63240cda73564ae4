"""Import FAISS the way geoseek wants it: ``from geoseek.index._faiss import faiss``.

FAISS's OpenMP worker threads spin-wait after every parallel region by default (libgomp spins
300,000 times, about a millisecond, before it sleeps). On a machine with few, busy cores they
then steal the CPU from the Python code that consumes the results: in ``geoseek bench index``
on this project's 2 shared cores, the collection search ran at 0.62-0.71 of raw FAISS's
throughput with spinning workers and 0.88-0.99 with passive ones (``OMP_WAIT_POLICY=PASSIVE``).
But passive workers must be woken by the kernel for every parallel region, and torch shares
the setting: the sketch encoder (EfficientNet-Lite0, hundreds of small parallel regions) took
33 ms per query instead of 19 ms on 2 threads (``bench/sketch_stages.py``). A short spin (``GOMP_SPINCOUNT``
20,000, tens of microseconds) keeps both: it must be set before an OpenMP runtime loads, so
geoseek sets it when FAISS is first imported, unless the user set ``OMP_WAIT_POLICY`` or
``GOMP_SPINCOUNT`` themselves (their choice wins).
"""

from __future__ import annotations

import os

SHORT_SPIN = "20000"

if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = SHORT_SPIN

import faiss  # noqa: E402  (after the environment is set)

__all__ = ["faiss"]
