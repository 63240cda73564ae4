"""HTTP load benchmark of the service on loopback: concurrent clients, latency per query mode.

Builds (or reuses) a collection of unit vectors with random footprints, starts
``geoseek serve`` on 127.0.0.1 in a subprocess, and runs ``clients`` concurrent clients
(asyncio streams, one keep-alive HTTP/1.1 connection each) against each query mode for at most ``seconds`` or
``requests``, whichever comes first. Reports p50 / p99 latency (ms, client side, the full
HTTP round trip), requests/s and the error count per mode.

Vectors (``--data``): ``clustered`` (default) draws items and query vectors from the gaussian
mixture of the index benchmark (:func:`geoseek.collection.benchmark.clustered_vectors`), which has
the neighbourhood structure of real embeddings; ``random`` draws structureless unit vectors,
the worst case for an approximate index (its recall calibration ends at scanning every cell).

Modes (all on the same collection): ``vector`` (POST /search with a random vector),
``vector+bbox`` (the same with a bbox keeping ~10% of items), ``vector+radius`` (a 5 km
circle), ``item`` (POST /search by a random item id) and ``similar`` (GET /similar at a random
item's centre).

With ``--with COLLECTION...`` the same server also serves real collections, and the model-backed
modes of :mod:`geoseek.service.loadmodes` run against those whose modality they need:
``sketch`` (aerial images), ``sketch-map`` (OSM scenes), ``image`` (geo-located images, with a
location) and ``near`` (OSM tiles). Their latency is mostly model inference, not the index.

Besides the client-side latencies it reports the server process's CPU time per request (from
/proc), which depends much less than latency on what else the machine is running.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import urlencode
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoseek.service.loadmodes import MODEL_MODES, RawBody, modes_for

BBOX = (14.18, 35.80, 14.58, 36.08)
"""Where the random items lie (west, south, east, north): about Malta and Gozo."""

LABELS = tuple(f"class{i}" for i in range(10))
MODES = ("vector", "vector+bbox", "vector+radius", "item", "similar")


@dataclass
class ModeResult:
    mode: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    server_cpu_ms: float = float("nan")
    """Server process CPU time (user + system) per request, ms: independent of other load."""
    client_cpu_ms: float = float("nan")
    """The load generator's CPU time per request, ms (it shares the machine with the server)."""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "requests": self.requests, "errors": self.errors, "seconds": round(self.seconds, 2),
                "rps": round(self.rps, 1), "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "mean_ms": round(self.mean_ms, 2), "server_cpu_ms": round(self.server_cpu_ms, 2),
                "client_cpu_ms": round(self.client_cpu_ms, 2)}


DATA = ("clustered", "random")


def bench_vectors(data: str, n: int, dim: int, seed: int) -> np.ndarray:
    """(n, dim) float32 unit vectors: ``clustered`` (gaussian mixture) or ``random`` (uniform on the sphere)."""
    if data == "clustered":
        from geoseek.collection.benchmark import clustered_vectors

        return clustered_vectors(n, dim, seed)
    if data != "random":
        raise ValueError(f"unknown data {data!r}; choose from {', '.join(DATA)}")
    vecs = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vecs / np.linalg.norm(vecs, axis=1, keepdims=True)


def build_random_collection(path: Path, n: int, dim: int, seed: int = 0, progress: bool = True,
                            data: str = "clustered") -> Path:
    """A collection of ``n`` unit vectors (dim ``dim``, see :func:`bench_vectors`) with 100 m footprints in :data:`BBOX`."""
    from tqdm import tqdm

    from geoseek.collection import Collection, Item

    rng = np.random.default_rng(seed)
    w, s, e, nn = BBOX
    lon = rng.uniform(w, e, n)
    lat = rng.uniform(s, nn, n)
    half = 0.0005  # ~50 m
    labels = rng.integers(0, len(LABELS), n)
    vectors = bench_vectors(data, n, dim, seed)
    with Collection.create(path, modality="random", model_id=f"{data}-unit-vectors", model_checksum="none", dim=dim,
                           metric="ip", overwrite=True, extra={"seed": seed, "bbox": list(BBOX), "data": data}) as b:
        step = 20_000
        for start in tqdm(range(0, n, step), desc=f"building {data} collection", unit="batch", disable=not progress):
            stop = min(n, start + step)
            items = [Item(id=f"r{i}", footprint=(lon[i] - half, lat[i] - half, lon[i] + half, lat[i] + half),
                          label=LABELS[labels[i]]) for i in range(start, stop)]
            b.add(items, vectors[start:stop])
    return path


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of process ``pid`` and all its descendants (e.g. uvicorn's worker processes)."""
    total, todo, seen = 0.0, [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        total += process_cpu_s(p)
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return total


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request_factory(mode: str, dim: int, n: int, rng: np.random.Generator,
                     data: str = "clustered") -> Callable[[], tuple[str, str, Any]]:
    """A function returning (method, path, json body or query params) for one random request of ``mode``.

    Query vectors come from the collection's own distribution (``data``), drawn with another seed.
    """
    w, s, e, nn = BBOX
    pool = bench_vectors(data, 2000, dim, int(rng.integers(1 << 30)) + 1).round(5)

    def vec() -> list[float]:
        return pool[int(rng.integers(len(pool)))].tolist()

    def make() -> tuple[str, str, Any]:
        if mode == "vector":
            return "POST", "/collections/bench/search", {"vector": vec(), "k": 10}
        if mode == "vector+bbox":  # a random box of ~10% of the area
            bw, bh = (e - w) * 0.316, (nn - s) * 0.316
            x0, y0 = rng.uniform(w, e - bw), rng.uniform(s, nn - bh)
            return "POST", "/collections/bench/search", {"vector": vec(), "k": 10, "bbox": [x0, y0, x0 + bw, y0 + bh]}
        if mode == "vector+radius":
            return "POST", "/collections/bench/search", {
                "vector": vec(), "k": 10, "radius": {"lon": rng.uniform(w, e), "lat": rng.uniform(s, nn), "metres": 5000}}
        if mode == "item":
            return "POST", "/collections/bench/search", {"id": f"r{int(rng.integers(n))}", "k": 10}
        if mode == "similar":
            return "GET", "/collections/bench/similar", {"lon": rng.uniform(w, e), "lat": rng.uniform(s, nn), "k": 10}
        raise ValueError(f"unknown mode {mode!r}; modes are {', '.join(MODES)}")

    return make


class _StaleConnection(ConnectionError):
    """The server closed the connection before answering any byte of the request."""


class _Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a lean load generator (like wrk),
    so the clients spend little of the machine's CPU that the server under test needs."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, payload: Any) -> tuple[int, bytes]:
        """One request; like any HTTP client, a kept-alive connection that the server closed
        while it was idle (uvicorn's keep-alive timeout) is reopened once and the request resent."""
        reused = self.writer is not None
        try:
            return await self._request(method, path, payload)
        except _StaleConnection:
            if not reused:
                raise
            await self.close()
            return await self._request(method, path, payload)

    async def _request(self, method: str, path: str, payload: Any) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        ctype = "application/json"
        if method == "GET":
            target, body = f"{path}?{urlencode(payload)}", b""
        elif isinstance(payload, RawBody):
            target, body, ctype = path, payload.data, payload.content_type
        else:
            target, body = path, json.dumps(payload).encode()
        head = (f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n")
        self.writer.write(head.encode() + body)
        assert self.reader is not None
        try:
            status_line = await self.reader.readline()
        except ConnectionResetError as exc:
            raise _StaleConnection(f"the server reset the connection: {exc}") from None
        if not status_line:
            raise _StaleConnection("the server closed the connection")
        status = int(status_line.split()[1])
        length, close = None, False
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection" and value.strip().lower() == "close":
                close = True
        if length is None:
            raise ConnectionError("response without Content-Length")
        data = await self.reader.readexactly(length)
        if close:
            await self.close()
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass
        self.reader = self.writer = None


async def _run_mode(host: str, port: int, mode: str, make: Callable[[], tuple[str, str, Any]], clients: int,
                    seconds: float, max_requests: int, warmup: int) -> ModeResult:
    latencies: list[float] = []
    error_samples: list[str] = []
    errors = 0
    issued = 0
    stop_at = 0.0

    async def client(conn: _Connection, count_it: bool) -> None:
        nonlocal errors, issued
        while True:
            if count_it and (issued >= max_requests or time.perf_counter() >= stop_at):
                return
            issued += 1
            method, path, payload = make()
            t0 = time.perf_counter()
            try:
                status, body = await asyncio.wait_for(conn.request(method, path, payload), 30.0)
                ok = status == 200
                what = f"HTTP {status}: {body[:300].decode(errors='replace')}"
            except (OSError, ConnectionError, ValueError, IndexError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError) as exc:
                await conn.close()
                ok = False
                what = f"{type(exc).__name__}: {exc}"
            dt = (time.perf_counter() - t0) * 1000
            if count_it:
                latencies.append(dt)
                if not ok:
                    errors += 1
                    if len(error_samples) < 3:
                        error_samples.append(f"{method} {path} {str(payload)[:200]} -> {what}")
            elif issued >= warmup:
                return

    conns = [_Connection(host, port) for _ in range(clients)]
    try:
        await asyncio.gather(*(client(c, False) for c in conns[:min(clients, max(warmup, 1))]))
        issued = 0
        cpu0 = time.process_time()
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(*(client(c, True) for c in conns))
        elapsed = time.perf_counter() - start
        client_cpu = time.process_time() - cpu0
    finally:
        for c in conns:
            await c.close()
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    for sample in error_samples:
        print(f"geoseek bench load: {mode}: error: {sample}", file=sys.stderr, flush=True)
    return ModeResult(mode=mode, requests=len(latencies), errors=errors, seconds=elapsed,
                      p50_ms=float(np.percentile(lat, 50)), p99_ms=float(np.percentile(lat, 99)), mean_ms=float(lat.mean()),
                      client_cpu_ms=client_cpu * 1000 / max(len(latencies), 1))


def run_load(collection: Path, *, n: int, dim: int, clients: int = 16, seconds: float = 15.0, max_requests: int = 5000,
             modes: Sequence[str] = MODES, warmup: int = 50, seed: int = 0, data: str = "clustered",
             workers: int = 1, extra: dict[str, Path] | None = None, model_modes: dict[str, str] | None = None,
             data_dir: Path | None = None) -> list[ModeResult]:
    """Serve ``collection`` as ``bench`` on 127.0.0.1 in a subprocess (``workers`` processes) and load it mode by mode.

    ``extra`` {name: path} are served beside it; ``model_modes`` {mode: served name} then run
    the model-backed modes of :mod:`geoseek.service.loadmodes` after the vector ones.
    """
    extra, model_modes = dict(extra or {}), dict(model_modes or {})
    port = _free_port()
    env = dict(os.environ)
    env.pop("GEOSEEK_TOKEN", None)
    cmd = [sys.executable, "-m", "geoseek", "serve", f"bench={collection}", *(f"{k}={v}" for k, v in extra.items()),
           "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--token-env", "GEOSEEK_BENCH_NO_TOKEN", "--workers", str(workers)]
    # every request source is ready (and its errors raised) before the server starts
    plan = [(m, _request_factory(m, dim, n, np.random.default_rng(seed + 1000 + i), data)) for i, m in enumerate(modes)]
    for i, (m, cname) in enumerate(model_modes.items()):
        factory = MODEL_MODES[m][1]
        plan.append((m, factory(cname, extra[cname], np.random.default_rng(seed + 2000 + i), data_dir)))
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server)
        results = []
        for m, make in plan:
            cpu0 = tree_cpu_s(server.pid)
            r = asyncio.run(_run_mode("127.0.0.1", port, m, make, clients, seconds, max_requests, warmup))
            # warm-up requests are included in the CPU time, so count them too
            r.server_cpu_ms = (tree_cpu_s(server.pid) - cpu0) * 1000 / max(r.requests + warmup, 1)
            results.append(r)
        return results
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_ready(base: str, server: subprocess.Popen, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            err = server.stderr.read().decode(errors="replace") if server.stderr else ""
            raise RuntimeError(f"the server exited (code {server.returncode}): {err[-2000:]}")
        try:
            if httpx.get(base + "/health", timeout=1.0).status_code == 200:
                # first /collections call computes the cached extent; keep it out of the timings
                httpx.get(base + "/collections", timeout=60.0)
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout:.0f} s")


def format_table(results: Sequence[ModeResult], *, clients: int, n: int, dim: int, workers: int = 1) -> str:
    head = f"{clients} concurrent clients, {workers} server worker(s), {n:,} items, dim {dim}, k=10, loopback HTTP\n\n"
    rows = ["| mode | requests | errors | req/s | p50 ms | p99 ms | mean ms | server CPU ms/request | client CPU ms/request |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r.mode} | {r.requests} | {r.errors} | {r.rps:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.mean_ms:.1f} "
                    f"| {r.server_cpu_ms:.2f} | {r.client_cpu_ms:.2f} |")
    return head + "\n".join(rows)


def main(args: Any) -> dict[str, Any]:
    """Run the benchmark from parsed CLI args; prints the table, returns the JSON figures."""
    collection = Path(args.collection) if args.collection else None
    tmp = None
    t_build = 0.0
    if collection is None or not collection.exists():
        if collection is None:
            tmp = tempfile.TemporaryDirectory(prefix="geoseek-load-")
            collection = Path(tmp.name) / "bench"
        t0 = time.perf_counter()
        build_random_collection(collection, args.n, args.dim, seed=args.seed, data=args.data)
        t_build = time.perf_counter() - t0
    try:
        from geoseek.collection import Collection

        col = Collection.open(collection)
        n, dim = len(col), col.dim
        data = (col.manifest.get("extra") or {}).get("data", "random")
        if col.manifest.get("modality") != "random":
            from geoseek.errors import InvalidInputError

            raise InvalidInputError(f"{collection} is not a benchmark collection (modality {col.manifest.get('modality')!r})")
        col.close()
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        for m in modes:
            if m not in MODES:
                from geoseek.errors import InvalidInputError

                raise InvalidInputError(f"unknown mode {m!r}; modes are {', '.join(MODES)}")
        extra = _served_collections(getattr(args, "with_collections", None) or [])
        model_modes = modes_for(extra)
        if extra and not model_modes:
            from geoseek.errors import InvalidInputError

            raise InvalidInputError("--with: none of these collections is of a modality a model mode queries "
                                    "(aerial-image, osm-scenes, geo-images, osm-tiles)")
        data_dir = Path(args.data_dir) if getattr(args, "data_dir", None) else None
        if data_dir is None and "sketch" in model_modes:
            from geoseek.paths import default_data_dir

            data_dir = default_data_dir()
        results = run_load(collection, n=n, dim=dim, clients=args.clients, seconds=args.seconds,
                           max_requests=args.requests, modes=modes, seed=args.seed, data=data,
                           workers=args.workers, extra=extra, model_modes=model_modes, data_dir=data_dir)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(format_table(results, clients=args.clients, n=n, dim=dim, workers=args.workers), flush=True)
    out = {"n": n, "dim": dim, "data": data, "workers": args.workers, "clients": args.clients, "build_s": round(t_build, 1), "modes": [r.to_json() for r in results]}
    for r in results:
        key = r.mode.replace("+", "_").replace("-", "_")
        out[f"{key}_p50_ms"] = round(r.p50_ms, 2)
        out[f"{key}_p99_ms"] = round(r.p99_ms, 2)
        out[f"{key}_errors"] = r.errors
        out[f"{key}_server_cpu_ms"] = round(r.server_cpu_ms, 2)
    out["errors"] = sum(r.errors for r in results)
    return out


def _served_collections(specs: Sequence[str]) -> dict[str, Path]:
    """``NAME=PATH`` or ``PATH`` (named by its folder) or a folder of collections → {name: path}."""
    from geoseek.errors import InvalidInputError, NotFoundError

    out: dict[str, Path] = {}
    for spec in specs:
        name, sep, raw = spec.partition("=")
        p = Path(raw if sep else spec)
        if not p.exists():
            raise NotFoundError(f"--with: no such collection or folder: {p}")
        if not sep and not (p / "manifest.json").is_file():  # a folder of collections (e.g. .demo)
            found = {c.name: c for c in sorted(p.iterdir()) if (c / "manifest.json").is_file()}
            if not found:
                raise InvalidInputError(f"--with: {p} is neither a collection nor a folder of collections")
            out.update(found)
        else:
            out[name if sep else p.name] = p
    if "bench" in out:
        raise InvalidInputError("--with: the name 'bench' is the benchmark's own collection; rename it (NAME=PATH)")
    return out


def add_arguments(p: Any) -> None:
    p.add_argument("--n", type=int, default=100_000, help="items in the random collection (default 100000)")
    p.add_argument("--dim", type=int, default=128, help="vector dimension (default 128)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--seconds", type=float, default=15.0, help="time limit per mode, seconds (default 15)")
    p.add_argument("--requests", type=int, default=5000, help="request limit per mode (default 5000)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated modes (default {','.join(MODES)})")
    p.add_argument("--collection", help="reuse (or build once into) this folder instead of a temporary one")
    p.add_argument("--data", choices=DATA, default="clustered",
                   help="item and query vectors: clustered (a gaussian mixture, like real embeddings; default) or "
                        "random (structureless, the worst case for an approximate index)")
    p.add_argument("--workers", type=int, default=2,
                   help="server processes (`geoseek serve --workers`; default 2, one per core of the reference machine)")
    p.add_argument("--with", dest="with_collections", nargs="+", metavar="COLLECTION",
                   help="also serve these real collections (NAME=PATH, PATH, or a folder of collections such as "
                        "the demo's .demo) and load them with the model-backed modes sketch, sketch-map, image, "
                        "near (each where a collection of its modality is given)")
    p.add_argument("--data-dir", default=None,
                   help="the shared data folder, for the sketch mode's Quick, Draw! strokes (default ../shared/data)")
    p.add_argument("--seed", type=int, default=0)


def check_args(args: Any) -> None:
    from geoseek.errors import InvalidInputError

    if not (1 <= args.clients <= 256):
        raise InvalidInputError("--clients must be in 1..256")
    if not (0 < args.seconds <= 600):
        raise InvalidInputError("--seconds must be in (0, 600]")
    if not (1 <= args.requests <= 1_000_000):
        raise InvalidInputError("--requests must be in 1..1000000")
    if not (1 <= args.workers <= 64):
        raise InvalidInputError("--workers must be in 1..64")
    if not (1 <= args.n <= 10_000_000) or not (1 <= args.dim <= 4096):
        raise InvalidInputError("--n must be in 1..1e7 and --dim in 1..4096")


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps({"hint": "run `geoseek bench load` or `python bench/load.py`"}))
