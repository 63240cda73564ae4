"""``geoseek serve COLLECTION...``: the HTTP API and the web map over one or more collections.

The bearer token is read from an environment variable (``GEOSEEK_TOKEN`` by default) or from a
file, never from the command line, so it stays out of shell history, ``ps`` and logs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from geoseek.errors import InvalidInputError

DEFAULT_PORT = 8765
from geoseek.service import TOKEN_ENV


def parse_collection_args(values: list[str]) -> dict[str, Path]:
    """``PATH`` or ``NAME=PATH`` → {name: path}; the name defaults to the folder's name."""
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep:
            name, path = Path(value).resolve().name, value
        if not name or not path:
            raise InvalidInputError(f"expected PATH or NAME=PATH, got {value!r}")
        if name in out:
            raise InvalidInputError(f"two collections are named {name!r}; name them explicitly as NAME=PATH")
        out[name] = Path(path)
    return out


def add_serve_arguments(p: argparse.ArgumentParser) -> None:
    from geoseek.cli._util import float_in, int_in

    p.add_argument("collections", nargs="+", metavar="COLLECTION", help="collection folder, or NAME=FOLDER")
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"TCP port (default {DEFAULT_PORT})")
    p.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="without a token, also answer requests whose Host header is NAME (repeatable; default: "
                        "loopback names and --host only)")
    p.add_argument("--token-env", default=TOKEN_ENV, metavar="NAME",
                   help=f"environment variable holding the bearer token (default {TOKEN_ENV}); unset = no auth")
    p.add_argument("--token-file", metavar="PATH", help="file whose first line is the bearer token (overrides --token-env)")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="allow browser calls from this origin (repeatable), e.g. http://localhost:3000")
    p.add_argument("--max-upload-mb", type=float_in(0, 4096, lo_open=True), default=10.0,
                   help="largest body of an upload (multipart) route, MiB (default 10)")
    p.add_argument("--max-json-kb", type=float_in(0, 1024 * 1024, lo_open=True), default=1024.0,
                   help="largest body of every other (JSON) route, KiB (default 1024)")
    p.add_argument("--max-pixels", type=int_in(1, 1_000_000_000), default=16_000_000,
                   help="largest decoded image, width*height (default 16e6)")
    p.add_argument("--body-timeout", type=float_in(0, 3600, lo_open=True), default=30.0, metavar="SECONDS",
                   help="a request body must arrive within this many seconds of its headers, else 408 (default 30)")
    p.add_argument("--header-timeout", type=float_in(0, 3600, lo_open=True), default=10.0, metavar="SECONDS",
                   help="a connection that has not sent a request's headers within this many seconds is closed (default 10)")
    p.add_argument("--keep-alive-timeout", type=int_in(1, 3600), default=5, metavar="SECONDS",
                   help="idle keep-alive connections are closed after this many seconds (default 5)")
    p.add_argument("--threads", type=int_in(1, 256), default=1,
                   help="threads per request for FAISS and torch (default 1: concurrency comes from parallel requests)")
    p.add_argument("--workers", type=int, default=1,
                   help="server processes (default 1); more use more cores, each holds its own copy of the collections")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from geoseek.service.app import create_app
    from geoseek.service.deps import read_token, set_threads
    from geoseek.service.guard import LOOPBACK_HOSTS, allowed_host_names, uvicorn_log_config
    from geoseek.service.protocol import HEADER_TIMEOUT_ENV, DeadlineHttpProtocol

    if not 0 < args.port < 65536:
        raise InvalidInputError(f"--port must be in 1..65535, got {args.port}")
    if args.max_upload_mb <= 0 or args.max_pixels <= 0:
        raise InvalidInputError("--max-upload-mb and --max-pixels must be > 0")
    if args.threads < 1:
        raise InvalidInputError(f"--threads must be >= 1, got {args.threads}")
    if not 1 <= args.workers <= 64:
        raise InvalidInputError(f"--workers must be in 1..64, got {args.workers}")
    set_threads(args.threads)
    token = read_token(args.token_env, args.token_file)
    collections = parse_collection_args(args.collections)
    max_upload_bytes = int(args.max_upload_mb * 1024 * 1024)
    max_json_bytes = int(getattr(args, "max_json_kb", 1024.0) * 1024)
    body_timeout_s = float(getattr(args, "body_timeout", 30.0))
    hosts = allowed_host_names(args.host, getattr(args, "allow_host", []))
    # built here even with several workers: bad collections or settings fail now, with a clear message
    app = create_app(collections, token=token, cors_origins=args.cors, max_upload_bytes=max_upload_bytes,
                     max_pixels=args.max_pixels, max_json_bytes=max_json_bytes, body_timeout_s=body_timeout_s,
                     allowed_hosts=hosts)
    os.environ[HEADER_TIMEOUT_ENV] = str(float(getattr(args, "header_timeout", 10.0)))
    server_opts = dict(http=DeadlineHttpProtocol, log_config=uvicorn_log_config(),
                       timeout_keep_alive=int(getattr(args, "keep_alive_timeout", 5)),
                       h11_max_incomplete_event_size=64 * 1024)
    host = args.host
    shown = f"[{host}]" if ":" in host else host
    print(f"geoseek: serving {', '.join(app.state.collections)} at http://{shown}:{args.port}/ "
          f"(API docs at /docs; auth {'on' if token else 'off'}; {args.workers} worker(s))", flush=True)
    if not token and host not in LOOPBACK_HOSTS:
        print(f"geoseek: warning: listening on {host} without a token; set ${args.token_env} or --token-file", file=sys.stderr)
    if args.workers == 1:
        uvicorn.run(app, host=host, port=args.port, log_level=args.log_level, **server_opts)
        return 0
    from geoseek.service.app import SERVE_CONFIG_ENV

    del app
    os.environ[SERVE_CONFIG_ENV] = json.dumps({
        "collections": {k: str(v.resolve()) for k, v in collections.items()}, "token_env": args.token_env,
        "token_file": str(Path(args.token_file).resolve()) if args.token_file else None, "cors": list(args.cors),
        "max_upload_bytes": max_upload_bytes, "max_pixels": args.max_pixels, "threads": args.threads,
        "max_json_bytes": max_json_bytes, "body_timeout_s": body_timeout_s,
        "allowed_hosts": sorted(hosts) if hosts is not None else None,
    })
    uvicorn.run("geoseek.service.app:app_from_env", factory=True, workers=args.workers, host=host, port=args.port,
                log_level=args.log_level, **server_opts)
    return 0


def run_bench_load(args: argparse.Namespace) -> int:
    from geoseek.cli import emit_json
    from geoseek.service import loadbench

    loadbench.check_args(args)
    out = loadbench.main(args)
    if args.json:
        emit_json(out)
    return 0


def run_bench_bad_requests(args: argparse.Namespace) -> int:
    import tempfile

    from geoseek.cli import emit_json
    from geoseek.service.faultprobe import run_soak

    with tempfile.TemporaryDirectory(prefix="geoseek-bad-requests-") as tmp:
        out = run_soak(Path(args.workdir or tmp), n=args.n, seconds=args.seconds)
    if args.json:
        emit_json(out)
    else:
        for key, value in out.items():
            print(f"{key:>24}: {value}")
    return 0 if out["responses_5xx"] == 0 and out["tracebacks_in_log"] == 0 else 1


def register(verbs: dict[str, argparse.ArgumentParser]) -> None:
    from geoseek.cli._util import add_json_flag, subparsers

    p = verbs["serve"]
    p.description = "Start the HTTP API (OpenAPI at /docs) and the web map over one or more collections."
    add_serve_arguments(p)
    p.set_defaults(func=run)

    from geoseek.cli._util import float_in, int_in

    b = subparsers(verbs["bench"]).add_parser(
        "bad-requests", help="soak geoseek serve with mixed hostile requests: 5xx, tracebacks, RSS (--json)",
        description="Serve small random-vector collections on 127.0.0.1 (with a token) and send N mixed bad requests "
        "(unauthenticated and oversized chunked bodies, deep JSON, bad GeoJSON types, huge k, blank strokes, "
        "bad Host, tokens in URLs, garbage images). Reports responses >= 500 (must be 0), tracebacks in the server "
        "log (0), server RSS after warm-up vs end, and how much of an unauthenticated 200 MiB chunked body was sent.")
    b.add_argument("-n", type=int_in(1, 1_000_000), default=2000, help="requests (default 2000)")
    b.add_argument("--seconds", type=float_in(0, 86400, lo_open=True), default=900.0, help="time bound (default 900)")
    b.add_argument("--workdir", help="where collections and the server log go (default: a temporary folder)")
    add_json_flag(b)
    b.set_defaults(func=run_bench_bad_requests)

    from geoseek.service.loadbench import add_arguments

    b = subparsers(verbs["bench"]).add_parser(
        "load", help="HTTP load on loopback: concurrent clients, p50/p99 latency and errors per query mode",
        description="Serve a random-vector collection on 127.0.0.1 and measure p50/p99 latency, req/s and errors "
        "per query mode with concurrent clients (bounded by --seconds and --requests per mode).")
    add_arguments(b)
    add_json_flag(b)
    b.set_defaults(func=run_bench_load)
