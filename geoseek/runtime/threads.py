"""How geoseek uses the cores: torch threads per kind of work, OpenMP waiting, coarse parallelism.

Policy (``kind`` of work → torch intra-op threads):

* ``"batch"`` (build, eval, train, benchmarks): the cores available
  (:func:`geoseek.runtime.hardware.available_cores`: affinity ∩ cgroup quota). Large work is split
  by :func:`parallel_chunks` into a few large chunks run by that many worker threads, each with
  **one** intra-op thread, so no parallel region waits at a barrier for a descheduled thread.
* ``"service"``: 1 thread per request; concurrency comes from parallel requests (and ``--workers``).
* ``"api"`` (the Python API, a notebook): the cores available, never more than torch's own
  default (torch counts the machine's cores and ignores affinity and cgroup quotas).

``GEOSEEK_THREADS`` overrides the number for every kind (:func:`default_threads`). OpenMP waiting: libgomp spins 300,000 times (~1 ms) at every barrier by
default, stealing the CPU from whoever shares it; ``OMP_WAIT_POLICY=PASSIVE`` sleeps at once but
makes each of the backbone's hundreds of small regions pay a kernel wake-up. geoseek asks for a
short spin, ``GOMP_SPINCOUNT`` = :data:`SHORT_SPIN`, unless the user set either variable. libgomp
reads them when it loads, so :func:`configure_openmp_env` must run before ``import torch`` (the
``geoseek`` CLI does it first thing; Python API users set the variable themselves).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

SHORT_SPIN = "20000"
"""libgomp spins (~tens of µs) before a waiting OpenMP thread sleeps (default 300,000, ~1 ms)."""

ENV_THREADS = "GEOSEEK_THREADS"
KINDS = ("batch", "service", "api")


def configure_openmp_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set ``GOMP_SPINCOUNT`` to a short spin unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set.

    Effective only before an OpenMP runtime (torch's or FAISS's) is loaded. Returns what was set.
    """
    env = os.environ if environ is None else environ
    if "OMP_WAIT_POLICY" in env or "GOMP_SPINCOUNT" in env:
        return {}
    env["GOMP_SPINCOUNT"] = SHORT_SPIN
    return {"GOMP_SPINCOUNT": SHORT_SPIN}


def configure_threads_env(kind: str = "batch", environ: dict[str, str] | None = None) -> dict[str, str]:
    """Set ``OMP_NUM_THREADS`` to the policy's threads for ``kind`` unless the user set it.

    torch and FAISS take their default thread count from it when they load; without it torch counts
    the machine's cores and ignores affinity and cgroup quotas (a 1-CPU container on a 64-core host
    would run 64 threads). Effective only before they load. Returns what was set."""
    env = os.environ if environ is None else environ
    if "OMP_NUM_THREADS" in env:
        return {}
    n = str(default_threads(kind))
    env["OMP_NUM_THREADS"] = n
    return {"OMP_NUM_THREADS": n}


def default_threads(kind: str = "api") -> int:
    """Torch intra-op threads for ``kind`` (see the module docstring); ``$GEOSEEK_THREADS`` wins."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    env = os.environ.get(ENV_THREADS, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            raise ValueError(f"{ENV_THREADS} must be a positive integer, got {env!r}") from None
        if n < 1:
            raise ValueError(f"{ENV_THREADS} must be a positive integer, got {env!r}")
        return n
    if kind == "service":
        return 1
    from geoseek.runtime.hardware import available_cores

    cores = available_cores()
    if kind == "api" and "torch" in sys.modules:
        return max(1, min(cores, _torch_default_threads()))
    return cores


def _torch_default_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def apply_threads(kind: str = "api", n: int | None = None) -> int:
    """Set torch's (and FAISS's, when loaded) threads to ``n`` or the policy's default; returns it."""
    import torch

    n = default_threads(kind) if n is None else int(n)
    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    torch.set_num_threads(n)
    faiss = sys.modules.get("faiss")
    if faiss is not None and hasattr(faiss, "omp_set_num_threads"):
        faiss.omp_set_num_threads(n)
    return n


def current_threads() -> int:
    """torch's intra-op threads in the calling thread."""
    import torch

    return int(torch.get_num_threads())


# ------------------------------------------------------------------------------ coarse parallelism
_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _single_threaded_worker() -> None:
    """Pool-thread initializer: one intra-op thread for torch and FAISS in this thread only.

    torch's OpenMP thread count is per OS thread, but ``torch.set_num_threads`` also stores a
    process-wide default that threads read lazily on first use: initialize first, then set 1.
    """
    import torch

    torch.get_num_threads()  # lazy per-thread init now, so a later global change cannot undo ours
    torch.set_num_threads(1)
    faiss = sys.modules.get("faiss")
    if faiss is not None and hasattr(faiss, "omp_set_num_threads"):
        faiss.omp_set_num_threads(1)


def _pool(workers: int) -> ThreadPoolExecutor:
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            import torch

            keep = torch.get_num_threads()
            pool = ThreadPoolExecutor(workers, thread_name_prefix="geoseek-chunk", initializer=_single_threaded_worker)
            # start every worker now (each waits at a barrier until all exist), then restore the
            # process-wide default the initializers changed
            barrier = threading.Barrier(workers)
            list(pool.map(lambda _: barrier.wait(), range(workers)))
            torch.set_num_threads(keep)
            _pools[workers] = pool
        return pool


def chunk_bounds(n: int, chunks: int) -> list[tuple[int, int]]:
    """``chunks`` near-equal ``[start, stop)`` ranges covering ``range(n)`` (fewer when n is small)."""
    chunks = max(1, min(chunks, n))
    step, extra = divmod(n, chunks)
    out, start = [], 0
    for i in range(chunks):
        stop = start + step + (1 if i < extra else 0)
        if stop > start:
            out.append((start, stop))
        start = stop
    return out


def parallel_chunks(
    fn: Callable[[int, int], T],
    n: int,
    *,
    workers: int | None = None,
    chunks_per_worker: int = 4,
    min_chunk: int = 1,
) -> list[T]:
    """Run ``fn(start, stop)`` over a few large chunks of ``range(n)``; results in chunk order.

    ``workers`` threads (default: the calling thread's torch threads) take chunks from a shared
    queue as they finish (dynamic scheduling), each with one intra-op thread: a worker the OS
    deschedules delays only its own chunk, where one parallel region per small block would stall
    every barrier. ``fn`` must release the GIL for most of its time (torch / numpy / FAISS calls).
    With one worker, or fewer than ``2 * min_chunk`` items, ``fn(0, n)`` runs in the calling thread.
    """
    if n <= 0:
        return []
    if workers is None:
        workers = current_threads()
    workers = max(1, int(workers))
    if workers == 1 or n < 2 * max(1, min_chunk):
        return [fn(0, n)]
    chunks = min(workers * max(1, chunks_per_worker), max(1, n // max(1, min_chunk)))
    bounds = chunk_bounds(n, chunks)
    if len(bounds) == 1:
        return [fn(0, n)]
    if threading.current_thread().name.startswith("geoseek-chunk"):
        return [fn(a, b) for a, b in bounds]  # already inside a chunk: no nested pools
    futures = [_pool(workers).submit(fn, a, b) for a, b in bounds]
    return [f.result() for f in futures]


def parallel_map(fn: Callable[[T], object], items: Sequence[T], *, workers: int | None = None) -> list:
    """``[fn(x) for x in items]`` with :func:`parallel_chunks`' scheduling (one chunk per few items)."""
    parts = parallel_chunks(lambda a, b: [fn(x) for x in items[a:b]], len(items), workers=workers)
    return [r for part in parts for r in part]
