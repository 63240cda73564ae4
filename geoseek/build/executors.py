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


def _ray_warm(warm: Callable[..., Any] | None, args: tuple[Any, ...]) -> int:
    """A Ray worker's first task: torch on one thread, then ``warm(*args)`` (e.g. load the model
    into the worker's process cache), so partitions find a ready worker. Returns the pid."""
    os.environ["OMP_NUM_THREADS"] = "1"
    _single_thread()
    if warm is not None:
        warm(*args)
    return os.getpid()


class RaySession:
    """A Ray connection made in a background thread while the build reads its inputs.

    Started by :class:`ray_session` before a build reads its region or images: ``ray.init``
    (≈ 3 s for a local cluster) and the workers' first task (:func:`_ray_warm`: a torch import and
    the model load, ≈ 1.5 s) then overlap the driver's reading instead of following it.
    :func:`run_ray` waits for it and uses it. When the partitions are done, a cluster this
    session started is shut down in the background (≈ 1.3 s) while the driver merges the
    shards; leaving the ``with`` block waits for that.

    The thread that starts a local cluster lives until it has shut the cluster down: Ray starts
    its processes with a parent-death signal, which Linux sends when the starting THREAD ends.
    """

    def __init__(self, address: str | None, workers: int, warm: Callable[..., Any] | None = None,
                 warm_args: tuple[Any, ...] = ()) -> None:
        import threading

        self.address, self.workers = address, int(workers)
        self.started = False
        self.error: BaseException | None = None
        self._warm, self._warm_args = warm, warm_args
        self._connected = threading.Event()
        self._released = threading.Event()
        self._thread = threading.Thread(target=self._own, name="geoseek-ray", daemon=True)
        self._thread.start()

    def _own(self) -> None:
        try:
            self.started = _ray_connect(self.address, self.workers, checked=True)
            ray = _ray_module()
            cpus = max(1, int(ray.cluster_resources().get("CPU", self.workers)))
            warm = ray.remote(num_cpus=1)(_ray_warm)
            for _ in range(cpus):  # fire and forget: each queues ahead of the partitions on a worker
                warm.remote(self._warm, self._warm_args)
        except BaseException as exc:  # re-raised in the driver by wait()
            self.error = exc
        finally:
            self._connected.set()
        self._released.wait()
        if self.started:  # also after a failure past ray.init: never leave a local cluster behind
            _ray_module().shutdown()

    def wait(self) -> None:
        """Block until connected; re-raise what connecting raised."""
        self._connected.wait()
        if self.error is not None:
            raise self.error

    def release(self) -> None:
        """The partitions are done: a cluster this session started is shut down in the background."""
        self._released.set()

    def close(self) -> None:
        """Release (if not yet) and wait until a started cluster is down."""
        self._released.set()
        self._thread.join()


_session: RaySession | None = None


class ray_session:  # noqa: N801 - used as a context manager, like open()
    """``with ray_session(ray, workers, warm, args):`` around a build that may run on Ray.

    ``ray``: None/False (nothing happens), True (a local cluster of ``workers`` CPUs) or an
    address. ``warm(*args)`` runs once in each Ray worker before any partition (top-level,
    picklable). Inside the block :func:`run_ray` uses this session's connection."""

    def __init__(self, ray: str | bool | None, workers: int | None, warm: Callable[..., Any] | None = None,
                 args: tuple[Any, ...] = ()) -> None:
        self.ray, self.workers, self.warm, self.args = ray, workers, warm, args
        self.session: RaySession | None = None

    def __enter__(self) -> RaySession | None:
        global _session
        if self.ray is None or self.ray is False or _session is not None:
            return None
        _ray_module()  # a clear error now when ray is missing
        workers = available_cores() if self.workers is None else int(self.workers)
        address = None if self.ray is True else str(self.ray)
        if address:
            _check_reachable(address)  # a bad address fails here, before the build reads anything
        self.session = _session = RaySession(address, max(1, workers), self.warm, self.args)
        return self.session

    def __exit__(self, *exc: Any) -> None:
        global _session
        if self.session is not None:
            try:
                self.session.close()
            finally:
                _session = None


RAY_CONNECT_TIMEOUT_ENV = "GEOSEEK_RAY_CONNECT_TIMEOUT"


def _check_reachable(address: str) -> None:
    """A clear error within seconds when ``HOST:PORT`` (or ``ray://HOST:PORT``) does not answer.

    ``ray.init`` itself retries an unreachable address for minutes. 'auto' and 'local' are left
    to Ray (it fails fast when no cluster is running). Timeout: ``$GEOSEEK_RAY_CONNECT_TIMEOUT``
    seconds (default 5)."""
    import socket

    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidInputError(f"--ray {address}: give a Ray cluster address as HOST:PORT (e.g. 10.0.0.5:6379), "
                                "ray://HOST:PORT or 'auto'")
    timeout = float(os.environ.get(RAY_CONNECT_TIMEOUT_ENV, "5") or 5)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise InvalidInputError(f"--ray {address}: nothing answers at {host}:{port} ({exc.strerror or exc}); start a "
                                "cluster with `ray start --head`, then pass its address or 'auto'") from None


def _ray_connect(address: str | None, workers: int, checked: bool = False) -> bool:
    """Connect to (or start) Ray; True when this call started it (and so must shut it down).
    ``checked``: the address was already found reachable (:class:`ray_session` checks it first)."""
    ray = _ray_module()
    if ray.is_initialized():
        return False
    if address:
        if not checked:
            _check_reachable(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise InvalidInputError(f"--ray {address}: cannot join that Ray cluster ({str(exc)[:200]}); "
                                    "start one with `ray start --head`, then pass its address or 'auto'") from None
        return True
    # The local cluster's processes inherit this environment: its workers start with one
    # OpenMP thread (a runtime_env would do the same but costs ≈ 1.5 s of agent start-up).
    keep = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        ray.init(address="local", num_cpus=workers, include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False)
    finally:
        if keep is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = keep
    return True


def run_ray(fn: PartitionFn, context: Any, todo: Sequence[tuple[int, Any]], address: str | None,
            workers: int) -> Iterator[Done]:
    """Run the partitions as Ray tasks (one CPU each) on the cluster at ``address``.

    ``address`` None: a local cluster of ``workers`` CPUs, bound to 127.0.0.1, no dashboard,
    no usage statistics; it is shut down at the end. With an address, the inputs named in
    ``context`` (e.g. the model file) must be readable at the same path on every node.

    Inside a :class:`ray_session` the session's connection (started while the inputs were
    read) is used. (Running partitions in this process while the session's workers warm up was
    tried: slower on 2 cores, three busy processes on two cores.)
    """
    ray = _ray_module()
    session = _session
    if session is not None:
        session.wait()  # re-raises a failed connection
        started = False
    else:
        started = _ray_connect(address, workers)
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
        if session is not None:
            session.release()
        elif started:
            ray.shutdown()
