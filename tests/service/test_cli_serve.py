"""``geoseek serve`` arguments and token sources, and ``geoseek bench load`` end to end
(which runs ``geoseek serve`` in a subprocess on loopback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geoseek.cli import main
from geoseek.cli.serve import parse_collection_args
from geoseek.service.deps import read_token
from geoseek.errors import InvalidInputError


def test_parse_collection_args(tmp_path: Path) -> None:
    assert parse_collection_args([str(tmp_path / "malta"), f"x={tmp_path / 'y'}"]) == {
        "malta": tmp_path / "malta", "x": tmp_path / "y"}
    with pytest.raises(InvalidInputError):
        parse_collection_args([str(tmp_path / "a" / "c"), str(tmp_path / "b" / "c")])
    with pytest.raises(InvalidInputError):
        parse_collection_args(["=nowhere"])


def test_read_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GEOSEEK_TOKEN", raising=False)
    assert read_token("GEOSEEK_TOKEN", None) is None
    monkeypatch.setenv("GEOSEEK_TOKEN", "  from-env \n")
    assert read_token("GEOSEEK_TOKEN", None) == "from-env"
    f = tmp_path / "token"
    f.write_text("from-file\nignored\n")
    assert read_token("GEOSEEK_TOKEN", str(f)) == "from-file"  # the file wins
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(InvalidInputError):
        read_token(None, str(tmp_path / "empty"))
    with pytest.raises(InvalidInputError):
        read_token(None, str(tmp_path / "missing"))


def test_serve_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["serve", str(tmp_path), "--port", "70000"]) == 2
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--token-file" in capsys.readouterr().out


def test_no_token_flag_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "--token " not in out and "--token=" not in out


def test_bench_load_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bench", "load", "--n", "400", "--dim", "16", "--clients", "4", "--seconds", "0.5", "--requests", "40",
               "--modes", "vector+bbox,similar", "--collection", str(tmp_path / "bench"), "--json"])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    figures = json.loads(out[-1])
    assert figures["n"] == 400 and figures["errors"] == 0
    assert [m["mode"] for m in figures["modes"]] == ["vector+bbox", "similar"]
    for m in figures["modes"]:
        assert 0 < m["requests"] <= 40 and 0 < m["p50_ms"] <= m["p99_ms"]
    assert any(line.startswith("| vector+bbox |") for line in out)
    assert main(["bench", "load", "--modes", "nope", "--n", "10", "--collection", str(tmp_path / "bench")]) == 2


def test_bench_load_model_modes_on_real_collections(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                   sketch_scenes: Path, osm_tiles: Path) -> None:
    """``--with``: real collections served beside the benchmark's, loaded by the model-backed
    modes whose modality they have (sketch maps on OSM scenes, "near" on OSM tiles)."""
    rc = main(["bench", "load", "--n", "200", "--dim", "16", "--clients", "2", "--seconds", "0.5", "--requests", "6",
               "--modes", "vector", "--collection", str(tmp_path / "bench"), "--workers", "1",
               "--with", f"scenes={sketch_scenes}", str(osm_tiles), "--json"])
    assert rc == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [m["mode"] for m in figures["modes"]] == ["vector", "sketch-map", "near"]
    assert figures["errors"] == 0 and figures["sketch_map_errors"] == 0
    for m in figures["modes"]:
        assert 0 < m["requests"] <= 6 and 0 < m["p50_ms"] <= m["p99_ms"]
    rc = main(["bench", "load", "--n", "200", "--dim", "16", "--collection", str(tmp_path / "bench"),
               "--with", str(tmp_path / "nowhere")])
    assert rc == 2 and "no such collection" in capsys.readouterr().err
    rc = main(["bench", "load", "--n", "200", "--dim", "16", "--collection", str(tmp_path / "bench"),
               "--with", f"bench={osm_tiles}"])
    assert rc == 2


def test_multipart_body_is_parsed_by_the_service_stack() -> None:
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from starlette.testclient import TestClient

    from geoseek.service.loadmodes import multipart

    async def echo(request):  # the form parser FastAPI's File / Form parameters use
        form = await request.form()
        f = form["file"]
        return JSONResponse({"name": f.filename, "size": len(await f.read()), "lon": form["lon"], "type": f.content_type})

    body = multipart({"lon": "14.5"}, {"file": ("q.png", b"\x89PNG....", "image/png")})
    r = TestClient(Starlette(routes=[Route("/echo", echo, methods=["POST"])])).post(
        "/echo", content=body.data, headers={"content-type": body.content_type})
    assert r.status_code == 200 and r.json() == {"name": "q.png", "size": 8, "lon": "14.5", "type": "image/png"}


def test_serve_workers_share_settings_and_token(tmp_path: Path) -> None:
    """``--workers 2``: both worker processes serve the collection and require the token from the environment."""
    import os
    import subprocess
    import sys
    import time

    import httpx

    from geoseek.service.loadbench import _free_port, build_random_collection

    col = build_random_collection(tmp_path / "w", 200, 8, progress=False)
    port = _free_port()
    env = dict(os.environ, GEOSEEK_TEST_TOKEN="s3cret")
    server = subprocess.Popen([sys.executable, "-m", "geoseek", "serve", f"w={col}", "--port", str(port), "--workers", "2",
                               "--token-env", "GEOSEEK_TEST_TOKEN", "--log-level", "warning"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else "server exited"
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.2)
        body = {"id": "r1", "k": 3}
        assert httpx.post(base + "/collections/w/search", json=body).status_code == 401
        for _ in range(6):  # new connections, so both workers answer some
            r = httpx.post(base + "/collections/w/search", json=body, headers={"Authorization": "Bearer s3cret"})
            assert r.status_code == 200 and len(r.json()["hits"]) == 3
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_serve_rejects_bad_worker_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", str(tmp_path), "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_model_mode_sources(tmp_path: Path, shared_data: Path) -> None:
    import numpy as np

    from geoseek.errors import NotFoundError
    from geoseek.service.loadmodes import RawBody, sketch_map_requests, sketch_requests
    from geoseek.sources.sketchmap import parse_sketch_map

    with pytest.raises(NotFoundError, match="Quick, Draw!"):
        sketch_requests("ucm", tmp_path, np.random.default_rng(0), tmp_path)
    method, path, body = sketch_requests("ucm", tmp_path, np.random.default_rng(0), shared_data)()
    assert (method, path) == ("POST", "/collections/ucm/search/sketch") and isinstance(body, RawBody)
    assert body.content_type == "application/x-www-form-urlencoded" and body.data.startswith(b"strokes=")
    make = sketch_map_requests("scenes", tmp_path, np.random.default_rng(0), None)
    for _ in range(20):  # every random sketch map is valid by the schema and the parser
        method, path, sketch = make()
        assert path == "/collections/scenes/search/sketch-map?k=10"
        parse_sketch_map(sketch, window_m=480.0)
