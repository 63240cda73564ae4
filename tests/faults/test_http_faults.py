"""Hostile requests against the REAL server: ``geoseek serve`` in a subprocess on a loopback port
(uvicorn, the guard middleware, the log config), over tiny random-vector collections
(:func:`geoseek.service.faultprobe.build_probe_collections`). Each test asserts exact statuses."""

from __future__ import annotations

import http.client
import json
import logging
import re
import threading
import time
from pathlib import Path

import pytest

from geoseek.service.faultprobe import (
    MIB,
    TOKEN,
    Server,
    build_probe_collections,
    chunked_flood,
    deep_json,
    multipart,
    request,
    sketch_map,
)

AUTH = {"Authorization": f"Bearer {TOKEN}"}
JSON = {"Content-Type": "application/json"}
N_ITEMS = 40


@pytest.fixture(scope="module")
def cols(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return build_probe_collections(tmp_path_factory.mktemp("faults"), n=N_ITEMS)


@pytest.fixture(scope="module")
def secured(cols: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """A server with a token and a 2 MiB upload limit."""
    s = Server(cols, tmp_path_factory.mktemp("log") / "secured.log", token=TOKEN, extra=["--max-upload-mb", "2"])
    yield s
    s.stop()


@pytest.fixture(scope="module")
def open_server(cols: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """A server without a token (loopback Host names only)."""
    s = Server(cols, tmp_path_factory.mktemp("log") / "open.log")
    yield s
    s.stop()


def _refused_bytes(server: Server, path: str) -> list[int]:
    """Body bytes the server read of each request it refused on ``path`` (from its log)."""
    time.sleep(0.2)
    pat = re.compile(rf"refused POST {re.escape(path)}: \w+ \((\d+) body bytes read\)")
    return [int(m.group(1)) for m in pat.finditer(server.log_text())]


def test_unauthenticated_200mib_chunked_body_is_refused_before_1mib(secured: Server) -> None:
    status, sent = chunked_flood(secured.port, "/collections/vec/search", {}, total=200 * MIB)
    assert status == 401
    assert sent < 1 * MIB  # what the client got to send; the server read none of it (auth is header-only)
    status, sent = chunked_flood(secured.port, "/collections/aerial/search/sketch",
                                 {"Content-Type": "multipart/form-data; boundary=x"}, total=200 * MIB)
    assert status == 401 and sent < 1 * MIB


def test_authenticated_oversized_chunked_bodies_are_refused_early(secured: Server) -> None:
    # upload route: limit 2 MiB (+1 MiB multipart allowance); 48 MiB offered
    part = b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png\r\n\r\n'
    status, sent = chunked_flood(secured.port, "/collections/aerial/search/sketch",
                                 {**AUTH, "Content-Type": "multipart/form-data; boundary=x"}, total=48 * MIB, prefix=part)
    assert status == 413
    assert sent < 3 * MIB + 4 * MIB  # the limit plus what socket buffers hold, not 48 MiB
    read = _refused_bytes(secured, "/collections/aerial/search/sketch")
    assert read and max(read) <= 3 * MIB + 256 * 1024  # the limit plus at most one buffered read
    # JSON route: limit 1 MiB
    status, sent = chunked_flood(secured.port, "/collections/vec/search", AUTH, total=48 * MIB)
    assert status == 413 and sent < 1 * MIB + 4 * MIB
    read = _refused_bytes(secured, "/collections/vec/search")
    assert read and max(read) <= 1 * MIB + 256 * 1024


def test_declared_oversized_body_is_413_without_reading(secured: Server) -> None:
    status, _, body = request(secured.port, "POST", "/collections/vec/search", {**AUTH, **JSON, "Content-Length": str(500 * MIB)})
    assert status == 413 and json.loads(body)["error"] == "payload_too_large"


@pytest.mark.parametrize("path", ["/collections/vec/search", "/collections/scenes/search/sketch-map",
                                  "/collections/scenes/feedback"])
def test_json_nested_3000_deep_is_422_on_each_json_route(secured: Server, path: str) -> None:
    status, _, body = request(secured.port, "POST", path, {**AUTH, **JSON}, deep_json(3000))
    assert status == 422, body
    assert "nested" in json.loads(body)["detail"]


def test_strokes_nested_3000_deep_is_422(secured: Server) -> None:
    body, ctype = multipart({"strokes": deep_json(3000).decode()})
    status, _, out = request(secured.port, "POST", "/collections/aerial/search/sketch", {**AUTH, "Content-Type": ctype}, body)
    assert status == 422 and "nested" in json.loads(out)["detail"]


@pytest.mark.parametrize("layer", [["building"], {"name": "building"}, 3])
def test_layer_that_is_not_a_string_is_422(secured: Server, layer: object) -> None:
    status, _, out = request(secured.port, "POST", "/collections/scenes/search/sketch-map", {**AUTH, **JSON},
                             json.dumps(sketch_map(layer)).encode())
    assert status == 422 and "properties.layer must be a string" in json.loads(out)["detail"]
    fb = json.dumps({"sketch": sketch_map(layer), "item_id": "scenes/0"}).encode()
    status, _, out = request(secured.port, "POST", "/collections/scenes/feedback", {**AUTH, **JSON}, fb)
    assert status == 422 and "properties.layer" in json.loads(out)["detail"]


def test_huge_k_answers_200_with_at_most_the_collection(secured: Server) -> None:
    status, _, out = request(secured.port, "POST", "/collections/vec/search", {**AUTH, **JSON},
                             b'{"id": "vec/1", "k": 1000000000}')
    assert status == 200
    assert 0 < json.loads(out)["count"] <= N_ITEMS
    status, _, out = request(secured.port, "GET", "/collections/vec/similar?lon=24.905&lat=60.105&k=1000000000", AUTH)
    assert status == 200 and 0 < json.loads(out)["count"] <= N_ITEMS


@pytest.mark.parametrize("strokes", ['[[[1e308, -1e308], [0, 0]]]', '[[[-1e308, 1e308], [1e308, -1e308]]]',
                                     '[[[5, 5], [5, 5]], [[1e308, 1e308], [1e308, 1e308]]]'])
def test_blank_or_huge_strokes_are_422(secured: Server, strokes: str) -> None:
    body, ctype = multipart({"strokes": strokes})
    status, _, out = request(secured.port, "POST", "/collections/aerial/search/sketch", {**AUTH, "Content-Type": ctype}, body)
    assert status == 422, out


def test_bad_host_is_refused_without_a_token(open_server: Server) -> None:
    port = open_server.port
    assert request(port, "GET", "/collections", {"Host": "evil.example"})[0] == 421
    assert request(port, "GET", "/health", {"Host": f"rebind.attacker.test:{port}"})[0] == 421
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        assert request(port, "GET", "/collections", {"Host": host})[0] == 200, host


def test_token_in_query_string_is_not_in_the_log(secured: Server) -> None:
    secret = "leak-me-0123456789"
    assert request(secured.port, "GET", f"/collections?token={secret}&x=1", AUTH)[0] == 200
    time.sleep(0.3)
    log = secured.log_text()
    assert '"GET /collections HTTP/1.1" 200' in log
    assert secret not in log


def test_error_bodies_carry_no_reprs_or_server_paths(secured: Server, cols: dict[str, Path]) -> None:
    garbage, ctype = multipart({}, {"file": ("x.png", b"\x89PNG not really an image" * 20)})
    status, _, out = request(secured.port, "POST", "/collections/geo/search/image", {**AUTH, "Content-Type": ctype}, garbage)
    assert status == 422
    text = out.decode()
    assert " at 0x" not in text and "<_io" not in text
    assert str(cols["geo"].parent) not in text and "/tmp" not in text


def test_damaged_collection_is_503_and_the_others_keep_serving(cols: dict[str, Path], tmp_path: Path) -> None:
    import shutil

    good = tmp_path / "good"
    bad = tmp_path / "bad"
    shutil.copytree(cols["vec"], good)
    shutil.copytree(cols["vec"], bad)
    s = Server({"good": good, "bad": bad}, tmp_path / "dmg.log")
    try:
        db = next(p for p in bad.rglob("*.sqlite"))
        with open(db, "r+b") as f:  # 4 KB of garbage over the SQLite header and first page
            f.write(b"\xa5" * 4096)
        status, _, out = request(s.port, "GET", "/collections", {"Host": "localhost"})
        assert status == 200
        listed = {c["name"]: c for c in json.loads(out)["collections"]}
        assert listed["good"]["status"] == "ok" and listed["good"]["count"] == N_ITEMS
        assert listed["bad"]["status"] == "damaged"
        status, _, out = request(s.port, "POST", "/collections/bad/search", {**JSON, "Host": "localhost"},
                                 b'{"vector": [1, 0, 0, 0, 0, 0, 0, 0]}')
        assert status == 503, out
        assert str(bad) not in out.decode()
        status, _, _ = request(s.port, "POST", "/collections/good/search", {**JSON, "Host": "localhost"},
                               b'{"vector": [1, 0, 0, 0, 0, 0, 0, 0]}')
        assert status == 200
        assert s.log_text().count("Traceback") <= 1
    finally:
        s.stop()


def test_unhandled_exception_is_one_500_one_traceback_and_keeps_the_connection(
        cols: dict[str, Path], caplog: pytest.LogCaptureFixture) -> None:
    import uvicorn

    from geoseek.service.app import create_app
    from geoseek.service.faultprobe import free_port

    app = create_app({"vec": cols["vec"]})

    def boom() -> None:
        raise RuntimeError("kaboom internal state")

    app.add_api_route("/boom", boom)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, log_level="info"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        caplog.set_level(logging.INFO)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/boom", headers={"Host": "localhost"})
        resp = conn.getresponse()
        body = json.loads(resp.read())
        assert resp.status == 500 and body["error"] == "internal_error"
        assert "kaboom" not in json.dumps(body)
        sock = conn.sock
        conn.request("GET", "/health", headers={"Host": "localhost"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200 and conn.sock is sock  # the same keep-alive connection
        conn.close()
        assert caplog.text.count("Traceback") == 1
        assert "kaboom internal state" in caplog.text  # the detail is in the log, not the body
    finally:
        server.should_exit = True
        thread.join(10)


def test_slow_body_times_out_with_408(cols: dict[str, Path], tmp_path: Path) -> None:
    import socket

    s = Server({"vec": cols["vec"]}, tmp_path / "slow.log", extra=["--body-timeout", "1"])
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(b"POST /collections/vec/search HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"id\":")  # then nothing
            data = sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 408")
    finally:
        s.stop()


def test_silent_connection_is_closed_after_the_header_timeout(cols: dict[str, Path], tmp_path: Path) -> None:
    import socket

    s = Server({"vec": cols["vec"]}, tmp_path / "hdr.log", extra=["--header-timeout", "1"])
    try:
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: local")  # headers never finish
            t0 = time.monotonic()
            assert sock.recv(4096) == b""  # closed by the server
            assert time.monotonic() - t0 < 5
    finally:
        s.stop()
