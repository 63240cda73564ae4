"""Where partitions run: in this process, in a local process pool, or on a Ray cluster.

Every executor runs the same top-level partition function ``fn(context, spec) -> Shard`` and
yields ``(partition_id, shard, seconds)`` as partitions finish (in any order). ``context`` is
sent once per worker process (pool initializer, or one ``ray.put``), never once per partition.
Worker processes run torch with one thread each (the parallelism is the processes).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any

from geoseek.build.shardfile import Shard
from geoseek.errors import InvalidInputError

PartitionFn = Callable[[Any, Any], Shard]
Done = tuple[int, Shard, float]

_worker_context: Any = None


def available_cores() -> int:
    """Cores this process may use (affinity ∩ cgroup quota, via :mod:`geoseek.runtime`)."""
    try:
        from geoseek.runtime.hardware import available_cores as cores

        return cores()
    except ImportError:  # pragma: no cover - runtime is part of geoseek
        return max(1, len(os.sched_getaffinity(0)))


def _single_thread() -> None:
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


def _init_worker(context: Any) -> None:
    global _worker_context
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    _single_thread()
    _worker_context = context


def _run_in_worker(fn: PartitionFn, pid: int, spec: Any) -> Done:
    t = time.perf_counter()
    shard = fn(_worker_context, spec)
    return pid, shard, time.perf_counter() - t


def run_inprocess(fn: PartitionFn, context: Any, todo: Sequence[tuple[int, Any]]) -> Iterator[Done]:
    """Run the partitions one after the other in this process, torch on one thread like a worker
    (``--workers 1`` means one core; the previous thread count is restored afterwards)."""
    import torch

    keep = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for pid, spec in todo:
            t = time.perf_counter()
            shard = fn(context, spec)
            yield pid, shard, time.perf_counter() - t
    finally:
        torch.set_num_threads(keep)


def _start_method() -> str:
    """``fork`` where the OS has it: a worker starts in milliseconds and shares the context (the
    region's parsed features...) copy-on-write instead of importing torch and unpickling it (≈ 1.4 s
    per worker for Malta, a tenth of a 2-worker build). Safe here because workers run torch on one
    thread (:func:`_init_worker`), so no OpenMP pool inherited from this process is used.
    ``GEOSEEK_BUILD_START=spawn`` (or forkserver) overrides it."""
    import multiprocessing as mp

    wanted = os.environ.get("GEOSEEK_BUILD_START", "").strip() or "fork"
    if wanted not in mp.get_all_start_methods():
        if os.environ.get("GEOSEEK_BUILD_START"):
            raise InvalidInputError(f"GEOSEEK_BUILD_START={wanted!r}: this system offers {', '.join(mp.get_all_start_methods())}")
        return "spawn"
    return wanted


def run_pool(fn: PartitionFn, context: Any, todo: Sequence[tuple[int, Any]], workers: int) -> Iterator[Done]:
    """Run the partitions in ``workers`` worker processes (forked where possible, see
    :func:`_start_method`); at most 2 per worker are in flight."""
    import multiprocessing as mp

    ctx = mp.get_context(_start_method())
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(context,))
    pending: dict[Future, int] = {}
    queue = list(todo)
    try:
        while queue or pending:
            while queue and len(pending) < 2 * workers:
                pid, spec = queue.pop(0)
                pending[pool.submit(_run_in_worker, fn, pid, spec)] = pid
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in sorted(finished, key=lambda f: pending[f]):
                del pending[fut]
                yield fut.result()
    finally:
        for fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def _ray_module() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise InvalidInputError("--ray needs the 'ray' package: pip install 'ray>=2.9' "
                                "(it is in geoseek's test extras: pip install -e '.[test]')") from None
    return ray


def _ray_task(fn: PartitionFn, context: Any, pid: int, spec: Any) -> Done:
    _single_thread()
    t = time.perf_counter()
    shard = fn(context, spec)
    return pid, shard, time.perf_counter() - t


def run_ray(fn: PartitionFn, context: Any, todo: Sequence[tuple[int, Any]], address: str | None,
            workers: int) -> Iterator[Done]:
    """Run the partitions as Ray tasks (one CPU each) on the cluster at ``address``.

    ``address`` None: a local cluster of ``workers`` CPUs, bound to 127.0.0.1, no dashboard,
    no usage statistics; it is shut down at the end. With an address, the inputs named in
    ``context`` (e.g. the model file) must be readable at the same path on every node.
    """
    ray = _ray_module()
    started = False
    if not ray.is_initialized():
        if address:
            try:
                ray.init(address=address, log_to_driver=False, configure_logging=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise InvalidInputError(f"--ray {address}: cannot join that Ray cluster ({str(exc)[:200]}); "
                                        "start one with `ray start --head`, then pass its address or 'auto'") from None
        else:
            ray.init(num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                     log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "RAY_USAGE_STATS_ENABLED": "0"}})
        started = True
    try:
        task = ray.remote(num_cpus=1)(_ray_task)
        ctx_ref = ray.put(context)
        in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", workers)))
        queue = list(todo)
        pending: dict[Any, int] = {}
        while queue or pending:
            while queue and len(pending) < in_flight:
                pid, spec = queue.pop(0)
                pending[task.remote(fn, ctx_ref, pid, spec)] = pid
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                del pending[ref]
                yield ray.get(ref)
    finally:
        if started:
            ray.shutdown()
