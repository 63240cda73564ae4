"""Hostile-request probes against a real ``geoseek serve`` (a subprocess on a loopback port).

Used by the fault tests (``tests/faults/``) and by ``geoseek bench bad-requests``: tiny
random-vector collections of the modalities the JSON routes need, a server process whose log is
kept, a raw-socket HTTP client (chunked bodies, odd Host headers, half-open bodies) and the mix of
bad requests of the soak.
"""

from __future__ import annotations

import json
import os
import random
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

TOKEN = "probe-secret-token"
MIB = 1024 * 1024


def build_probe_collections(root: Path, n: int = 40, dim: int = 8) -> dict[str, Path]:
    """Four random-vector collections under ``root``: ``vec`` (vectors), ``scenes`` (osm-scenes),
    ``aerial`` (aerial-image) and ``geo`` (geo-images), ``n`` items each with 0.01° footprints. No model is needed: the
    probes are refused before any model would load."""
    from geoseek.collection import Collection, Item

    rng = np.random.default_rng(0)
    out: dict[str, Path] = {}
    for name, modality in (("vec", "vectors"), ("scenes", "osm-scenes"), ("aerial", "aerial-image"), ("geo", "geo-images")):
        path = Path(root) / name
        if not (path / "manifest.json").exists():
            items = [Item(id=f"{name}/{i}", footprint=(24.9 + i * 0.01, 60.1, 24.91 + i * 0.01, 60.11), label=f"l{i % 3}")
                     for i in range(n)]
            vecs = rng.normal(size=(n, dim)).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            with Collection.create(path, modality=modality, dim=dim, overwrite=True) as b:
                b.add(items, vecs)
        out[name] = path
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``geoseek serve`` in a subprocess on 127.0.0.1; stdout and stderr go to ``log_path``."""

    def __init__(self, collections: dict[str, Path], log_path: Path, *, token: str | None = None,
                 extra: list[str] | None = None, startup_s: float = 120.0) -> None:
        self.port = free_port()
        self.log_path = Path(log_path)
        env = dict(os.environ)
        env.pop("GEOSEEK_TOKEN", None)
        if token:
            env["GEOSEEK_TOKEN"] = token
        env["PYTHONUNBUFFERED"] = "1"
        args = [sys.executable, "-m", "geoseek", "serve", *[f"{k}={v}" for k, v in collections.items()],
                "--port", str(self.port), *(extra or [])]
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + startup_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"geoseek serve exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                if request(self.port, "GET", "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"geoseek serve did not answer /health within {startup_s:g} s:\n{self.log_text()[-3000:]}")

    def rss_mb(self) -> float:
        """Resident memory of the server process, MiB (Linux /proc)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def log_text(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


# ---------------------------------------------------------------------------------------------
# a raw HTTP/1.1 client


def _head(method: str, path: str, headers: dict[str, str], port: int) -> bytes:
    hdrs = {"Host": f"127.0.0.1:{port}", "Connection": "close", **headers}
    lines = [f"{method} {path} HTTP/1.1", *[f"{k}: {v}" for k, v in hdrs.items() if v is not None]]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _read_response(sock: socket.socket, timeout: float) -> tuple[int, dict[str, str], bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines or len(lines[0].split()) < 2:
        return 0, {}, b""
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    n = int(headers.get("content-length", "0") or 0)
    try:
        while len(body) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    except OSError:
        pass
    return status, headers, body


def request(port: int, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"",
            timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection → (status, lower-case headers, body)."""
    headers = dict(headers or {})
    if body and "Content-Length" not in headers and headers.get("Transfer-Encoding") != "chunked":
        headers["Content-Length"] = str(len(body))
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(_head(method, path, headers, port) + body)
        return _read_response(sock, timeout)


def chunked_flood(port: int, path: str, headers: dict[str, str] | None = None, total: int = 200 * MIB,
                  chunk: int = 64 * 1024, prefix: bytes = b"", timeout: float = 60.0) -> tuple[int, int]:
    """POST a chunked body of up to ``total`` bytes (``prefix`` then ``[`` filler), pausing briefly for
    the server's answer between chunks → (status, body bytes this client managed to send). Status 0:
    no answer arrived. The send buffer is kept small so the count is close to what the server read."""
    hdrs = {"Transfer-Encoding": "chunked", "Content-Type": "application/json", **(headers or {})}
    filler = b" " * chunk
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        sock.sendall(_head("POST", path, hdrs, port))
        deadline = time.monotonic() + timeout
        while sent < total and time.monotonic() < deadline:
            readable, _, _ = select.select([sock], [], [], 0.002)
            if readable:
                break
            data = prefix if sent == 0 and prefix else filler
            try:
                sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            except OSError:  # the server closed the connection after answering
                break
            sent += len(data)
        else:
            if sent >= total:
                try:
                    sock.sendall(b"0\r\n\r\n")
                except OSError:
                    pass
        try:
            status = _read_response(sock, 10.0)[0]
        except OSError:
            status = 0
    return status, sent


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body → (body, content type)."""
    boundary = "geoseekprobe7d1e"
    parts = []
    for k, v in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode())
    for k, (fname, data) in (files or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"; filename="{fname}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# ---------------------------------------------------------------------------------------------
# the bad requests


def deep_json(depth: int = 3000) -> bytes:
    return b"[" * depth + b"]" * depth


def sketch_map(layer: Any = "building") -> dict[str, Any]:
    return {"type": "FeatureCollection", "canvas": {"width": 100, "height": 100},
            "features": [{"type": "Feature", "properties": {"layer": layer},
                          "geometry": {"type": "Polygon", "coordinates": [[[10, 10], [50, 10], [50, 50], [10, 10]]]}}]}


def bad_request_kinds(token: str | None) -> dict[str, Any]:
    """Kind name → a function ``(port) -> status`` sending one bad request of that kind."""
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    js = {"Content-Type": "application/json", **auth}

    def post_json(path: str, body: bytes) -> Any:
        return lambda port: request(port, "POST", path, js, body)[0]

    def strokes(value: str) -> Any:
        body, ctype = multipart({"strokes": value})
        return lambda port: request(port, "POST", "/collections/aerial/search/sketch", {"Content-Type": ctype, **auth}, body)[0]

    garbage, gtype = multipart({}, {"file": ("x.png", b"\x89PNG not really" * 10)})
    return {
        "no_token_chunked": lambda port: chunked_flood(port, "/collections/vec/search", {}, total=4 * MIB)[0],
        "wrong_token": lambda port: request(port, "POST", "/collections/vec/search",
                                            {"Authorization": "Bearer nope", "Content-Type": "application/json"}, b'{"id": "x"}')[0],
        "oversized_json_chunked": lambda port: chunked_flood(port, "/collections/vec/search", auth, total=4 * MIB)[0],
        "oversized_declared": lambda port: request(port, "POST", "/collections/vec/search", {**js, "Content-Length": str(500 * MIB)})[0],
        "deep_json_search": post_json("/collections/vec/search", deep_json()),
        "deep_json_sketch_map": post_json("/collections/scenes/search/sketch-map", deep_json()),
        "deep_json_feedback": post_json("/collections/scenes/feedback", deep_json()),
        "deep_strokes": strokes(deep_json().decode()),
        "layer_list": post_json("/collections/scenes/search/sketch-map", json.dumps(sketch_map(["building"])).encode()),
        "layer_object": post_json("/collections/scenes/feedback",
                                  json.dumps({"sketch": sketch_map({"a": 1}), "item_id": "scenes/0"}).encode()),
        "huge_k": post_json("/collections/vec/search", b'{"id": "vec/1", "k": 1000000000}'),
        "huge_k_similar": lambda port: request(port, "GET", "/collections/vec/similar?lon=24.905&lat=60.105&k=1000000000", auth)[0],
        "blank_strokes": strokes('[[[1e308, -1e308], [0, 0]]]'),
        "not_json": post_json("/collections/scenes/search/sketch-map", b"{nope"),
        "garbage_image": lambda port: request(port, "POST", "/collections/geo/search/image",
                                              {"Content-Type": gtype, **auth}, garbage)[0],
        "bad_host": lambda port: request(port, "GET", "/collections", {"Host": "evil.example", **auth})[0],
        "token_in_query": lambda port: request(port, "GET", "/collections?token=leak-me-please", auth)[0],
        "unknown_collection": lambda port: request(port, "GET", "/collections/nope", auth)[0],
        "bad_content_length": lambda port: request(port, "POST", "/collections/vec/search", {**js, "Content-Length": "abc"})[0],
    }


def soak(port: int, token: str | None, n: int, seconds: float, seed: int = 0) -> Iterator[tuple[str, int]]:
    """``n`` bad requests of mixed kinds (round robin, shuffled), stopping after ``seconds`` → (kind, status)."""
    kinds = bad_request_kinds(token)
    names = list(kinds)
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    for i in range(n):
        if time.monotonic() > deadline:
            return
        if i % len(names) == 0:
            rng.shuffle(names)
        name = names[i % len(names)]
        try:
            status = kinds[name](port)
        except OSError:
            status = -1
        yield name, status


def run_soak(workdir: Path, n: int = 2000, seconds: float = 600.0, warmup: int = 100) -> dict[str, Any]:
    """Serve the probe collections (with a token), send ``n`` mixed bad requests (at most ``seconds``)
    and report: responses >= 500, tracebacks in the server log, RSS after ``warmup`` requests vs at
    the end (MiB), and the bytes an unauthenticated 200 MiB chunked body got to send before refusal."""
    cols = build_probe_collections(Path(workdir) / "collections")
    server = Server(cols, Path(workdir) / "server.log", token=TOKEN)
    statuses: dict[str, dict[int, int]] = {}
    rss_warm = rss_end = float("nan")
    t0 = time.monotonic()
    sent = 0
    try:
        for i, (kind, status) in enumerate(soak(server.port, TOKEN, n, seconds)):
            per = statuses.setdefault(kind, {})
            per[status] = per.get(status, 0) + 1
            sent = i + 1
            if sent == min(warmup, n):
                rss_warm = server.rss_mb()
        flood_status, flood_sent = chunked_flood(server.port, "/collections/vec/search", {}, total=200 * MIB)
        rss_end = server.rss_mb()
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace")
    all_status = [s for per in statuses.values() for s, c in per.items() for _ in range(c)]
    return {
        "requests": sent, "seconds": round(time.monotonic() - t0, 1),
        "responses_5xx": sum(1 for s in all_status if s >= 500),
        "no_response": sum(1 for s in all_status if s <= 0),
        "tracebacks_in_log": log.count("Traceback"),
        "rss_after_warmup_mb": round(rss_warm, 1), "rss_end_mb": round(rss_end, 1),
        "rss_growth_mb": round(rss_end - rss_warm, 1),
        "unauth_200mib_chunked": {"status": flood_status, "bytes_sent_before_refusal": flood_sent},
        "statuses": {k: {str(s): c for s, c in sorted(v.items())} for k, v in sorted(statuses.items())},
    }
