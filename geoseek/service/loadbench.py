"""HTTP load benchmark of the service on loopback: concurrent clients, latency per query mode.

Builds (or reuses) a collection of random unit vectors with random footprints, starts
``geoseek serve`` on 127.0.0.1 in a subprocess, and runs ``clients`` concurrent clients
(asyncio + httpx, one connection each) against each query mode for at most ``seconds`` or
``requests``, whichever comes first. Reports p50 / p99 latency (ms, client side, the full
HTTP round trip), requests/s and the error count per mode.

Modes (all on the same collection): ``vector`` (POST /search with a random vector),
``vector+bbox`` (the same with a bbox keeping ~10% of items), ``vector+radius`` (a 5 km
circle), ``item`` (POST /search by a random item id) and ``similar`` (GET /similar at a random
item's centre).

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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {"mode": self.mode, "requests": self.requests, "errors": self.errors, "seconds": round(self.seconds, 2),
                "rps": round(self.rps, 1), "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2),
                "mean_ms": round(self.mean_ms, 2), "server_cpu_ms": round(self.server_cpu_ms, 2)}


def build_random_collection(path: Path, n: int, dim: int, seed: int = 0, progress: bool = True) -> Path:
    """A collection of ``n`` random unit vectors (dim ``dim``) with 100 m footprints in :data:`BBOX`."""
    from tqdm import tqdm

    from geoseek.collection import Collection, Item

    rng = np.random.default_rng(seed)
    w, s, e, nn = BBOX
    lon = rng.uniform(w, e, n)
    lat = rng.uniform(s, nn, n)
    half = 0.0005  # ~50 m
    labels = rng.integers(0, len(LABELS), n)
    with Collection.create(path, modality="random", model_id="random-unit-vectors", model_checksum="none", dim=dim,
                           metric="ip", overwrite=True, extra={"seed": seed, "bbox": list(BBOX)}) as b:
        step = 20_000
        for start in tqdm(range(0, n, step), desc="building random collection", unit="batch", disable=not progress):
            stop = min(n, start + step)
            vecs = rng.standard_normal((stop - start, dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            items = [Item(id=f"r{i}", footprint=(lon[i] - half, lat[i] - half, lon[i] + half, lat[i] + half),
                          label=LABELS[labels[i]]) for i in range(start, stop)]
            b.add(items, vecs)
    return path


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc); NaN elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _request_factory(mode: str, dim: int, n: int, rng: np.random.Generator) -> Callable[[], tuple[str, str, Any]]:
    """A function returning (method, path, json body or query params) for one random request of ``mode``."""
    w, s, e, nn = BBOX

    def vec() -> list[float]:
        v = rng.standard_normal(dim).astype(np.float32)
        return (v / np.linalg.norm(v)).round(5).tolist()

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


async def _run_mode(base: str, mode: str, dim: int, n: int, clients: int, seconds: float, max_requests: int,
                    warmup: int, seed: int) -> ModeResult:
    import httpx

    rng = np.random.default_rng(seed)
    make = _request_factory(mode, dim, n, rng)
    latencies: list[float] = []
    error_samples: list[str] = []
    errors = 0
    issued = 0
    stop_at = 0.0

    async def client(http: httpx.AsyncClient, count_it: bool) -> None:
        nonlocal errors, issued
        while True:
            if count_it and (issued >= max_requests or time.perf_counter() >= stop_at):
                return
            issued += 1
            method, path, payload = make()
            t0 = time.perf_counter()
            try:
                if method == "GET":
                    r = await http.get(path, params=payload)
                else:
                    r = await http.post(path, json=payload)
                ok = r.status_code == 200
                what = f"HTTP {r.status_code}: {r.text[:300]}"
            except httpx.HTTPError as exc:
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

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30.0) as http:
        await asyncio.gather(*(client(http, False) for _ in range(min(clients, max(warmup, 1)))))
        issued = 0
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(*(client(http, True) for _ in range(clients)))
        elapsed = time.perf_counter() - start
    lat = np.asarray(latencies) if latencies else np.zeros(1)
    for sample in error_samples:
        print(f"geoseek bench load: {mode}: error: {sample}", file=sys.stderr, flush=True)
    return ModeResult(mode=mode, requests=len(latencies), errors=errors, seconds=elapsed,
                      p50_ms=float(np.percentile(lat, 50)), p99_ms=float(np.percentile(lat, 99)), mean_ms=float(lat.mean()))


def run_load(collection: Path, *, n: int, dim: int, clients: int = 16, seconds: float = 15.0, max_requests: int = 5000,
             modes: Sequence[str] = MODES, warmup: int = 50, seed: int = 0) -> list[ModeResult]:
    """Serve ``collection`` as ``bench`` on 127.0.0.1 in a subprocess and load it mode by mode."""
    port = _free_port()
    env = dict(os.environ)
    env.pop("GEOSEEK_TOKEN", None)
    cmd = [sys.executable, "-m", "geoseek", "serve", f"bench={collection}", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--token-env", "GEOSEEK_BENCH_NO_TOKEN"]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, server)
        results = []
        for i, m in enumerate(modes):
            cpu0 = process_cpu_s(server.pid)
            r = asyncio.run(_run_mode(base, m, dim, n, clients, seconds, max_requests, warmup, seed + i))
            # warm-up requests are included in the CPU time, so count them too
            r.server_cpu_ms = (process_cpu_s(server.pid) - cpu0) * 1000 / max(r.requests + warmup, 1)
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


def format_table(results: Sequence[ModeResult], *, clients: int, n: int, dim: int) -> str:
    head = f"{clients} concurrent clients, {n:,} items, dim {dim}, k=10, loopback HTTP\n\n"
    rows = ["| mode | requests | errors | req/s | p50 ms | p99 ms | mean ms | server CPU ms/request |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rows.append(f"| {r.mode} | {r.requests} | {r.errors} | {r.rps:.0f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} | {r.mean_ms:.1f} "
                    f"| {r.server_cpu_ms:.2f} |")
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
        build_random_collection(collection, args.n, args.dim, seed=args.seed)
        t_build = time.perf_counter() - t0
    try:
        from geoseek.collection import Collection

        col = Collection.open(collection)
        n, dim = len(col), col.dim
        if col.manifest.get("modality") != "random":
            from geoseek.errors import InvalidInputError

            raise InvalidInputError(f"{collection} is not a benchmark collection (modality {col.manifest.get('modality')!r})")
        col.close()
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        for m in modes:
            if m not in MODES:
                from geoseek.errors import InvalidInputError

                raise InvalidInputError(f"unknown mode {m!r}; modes are {', '.join(MODES)}")
        results = run_load(collection, n=n, dim=dim, clients=args.clients, seconds=args.seconds,
                           max_requests=args.requests, modes=modes, seed=args.seed)
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(format_table(results, clients=args.clients, n=n, dim=dim), flush=True)
    out = {"n": n, "dim": dim, "clients": args.clients, "build_s": round(t_build, 1), "modes": [r.to_json() for r in results]}
    for r in results:
        key = r.mode.replace("+", "_")
        out[f"{key}_p50_ms"] = round(r.p50_ms, 2)
        out[f"{key}_p99_ms"] = round(r.p99_ms, 2)
        out[f"{key}_errors"] = r.errors
        out[f"{key}_server_cpu_ms"] = round(r.server_cpu_ms, 2)
    out["errors"] = sum(r.errors for r in results)
    return out


def add_arguments(p: Any) -> None:
    p.add_argument("--n", type=int, default=100_000, help="items in the random collection (default 100000)")
    p.add_argument("--dim", type=int, default=128, help="vector dimension (default 128)")
    p.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    p.add_argument("--seconds", type=float, default=15.0, help="time limit per mode, seconds (default 15)")
    p.add_argument("--requests", type=int, default=5000, help="request limit per mode (default 5000)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma-separated modes (default {','.join(MODES)})")
    p.add_argument("--collection", help="reuse (or build once into) this folder instead of a temporary one")
    p.add_argument("--seed", type=int, default=0)


def check_args(args: Any) -> None:
    from geoseek.errors import InvalidInputError

    if not (1 <= args.clients <= 256):
        raise InvalidInputError("--clients must be in 1..256")
    if not (0 < args.seconds <= 600):
        raise InvalidInputError("--seconds must be in (0, 600]")
    if not (1 <= args.requests <= 1_000_000):
        raise InvalidInputError("--requests must be in 1..1000000")
    if not (1 <= args.n <= 10_000_000) or not (1 <= args.dim <= 4096):
        raise InvalidInputError("--n must be in 1..1e7 and --dim in 1..4096")


if __name__ == "__main__":  # pragma: no cover
    print(json.dumps({"hint": "run `geoseek bench load` or `python bench/load.py`"}))
