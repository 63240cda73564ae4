"""The request guard: a pure ASGI middleware that decides what it can from the headers, before
the app reads or parses a single body byte, and bounds the body while it streams in.

In order, for every HTTP request:

1. **Host** (only when the server has no token): the ``Host`` header must be one of the allowed
   names (loopback by default: ``localhost``, ``127.0.0.1``, ``[::1]``, any port), else 421 JSON.
   This stops a DNS-rebinding web page from reaching a token-less server through the browser.
2. **Token**: on every route except the public ones (``/health``, ``/docs``, ``/openapi.json``,
   the web page and its files) a missing or wrong ``Authorization: Bearer`` answers 401 JSON
   right away; the body is never read.
3. **Body size**, per route: upload (multipart) routes accept ``max_upload_bytes``, every other
   route ``max_json_bytes``. A declared ``Content-Length`` over the limit answers 413 at once;
   chunked and fixed-length bodies alike are counted as they stream through ``receive`` and the
   413 goes out as soon as the count passes the limit (the body is never buffered here).
4. **JSON depth**: bodies of JSON routes are scanned while they stream
   (:class:`geoseek.safejson.DepthScanner`); past ``max_depth`` levels the answer is 422.
5. **Body deadline**: a body that has not fully arrived ``body_timeout_s`` seconds after the
   headers answers 408 (slow or half-open clients).
6. **Unhandled exceptions**: one log line with one traceback, and 500 JSON with a generic message;
   the exception does not reach uvicorn, so it neither logs it again nor drops the keep-alive.

A refusal sent while the body is still arriving carries ``Connection: close``, so uvicorn stops
reading the rest. After such a refusal the app sees ``http.disconnect`` and whatever it sends is
dropped.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from geoseek.safejson import MAX_JSON_DEPTH, DepthScanner, JSONDepthError

log = logging.getLogger("geoseek.service")

DEFAULT_MAX_JSON_BYTES = 1024 * 1024
"""Largest body of a JSON route (1 MiB)."""

DEFAULT_BODY_TIMEOUT_S = 30.0
"""Seconds a request body may take to arrive after its headers."""

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
"""Host names a token-less server answers by default."""

PUBLIC_PATHS = frozenset({"/health", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json", "/", "/favicon.ico"})
PUBLIC_PREFIXES = ("/static/",)

MULTIPART_OVERHEAD = 1 << 20
"""Extra bytes an upload route accepts on top of ``max_upload_bytes`` (form fields, boundaries)."""


@dataclass
class GuardSettings:
    """What the guard enforces; see the module docstring."""

    token: str | None = field(default=None, repr=False)
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES
    max_upload_bytes: int = 10 * 1024 * 1024
    max_depth: int = MAX_JSON_DEPTH
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S
    allowed_hosts: frozenset[str] | None = frozenset(LOOPBACK_HOSTS)
    """Host names (lower case, no port) answered when there is no token; None = any."""
    upload_routes: tuple[re.Pattern[str], ...] = ()
    """Path patterns of the multipart upload routes (the larger body limit)."""


def host_name(value: str) -> str:
    """``Host`` header value → the name without port, lower case (``[::1]:8765`` → ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


def allowed_host_names(bind_host: str | None, extra: Iterable[str] = ()) -> frozenset[str] | None:
    """The Host names a token-less server answers: loopback, the ``--host`` it listens on (unless a
    loopback or wildcard address) and ``extra``. None (no check) when it listens on a wildcard address
    and nothing extra was named: it is then reachable from the network anyway."""
    names = {host_name(h) for h in LOOPBACK_HOSTS} | {host_name(h) for h in extra if h}
    if bind_host:
        if bind_host in ("0.0.0.0", "::", "") and not any(extra):
            return None
        if bind_host not in ("0.0.0.0", "::"):
            names.add(host_name(bind_host if ":" not in bind_host or bind_host.startswith("[") else f"[{bind_host}]"))
    return frozenset(names)


def _json_bytes(status: int, error: str, detail: str) -> bytes:
    return json.dumps({"error": error, "detail": detail}).encode()


class _Refused(Exception):
    """Internal: the guard answered the request while the app was reading its body."""


class GuardMiddleware:
    """See the module docstring. ``settings`` may be a :class:`GuardSettings` or a callable returning one
    (read per request, so tests can change the app's settings)."""

    def __init__(self, app: ASGIApp, settings: GuardSettings | Callable[[], GuardSettings]) -> None:
        self.app = app
        self._settings = settings

    def settings(self) -> GuardSettings:
        s = self._settings
        return s() if callable(s) else s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        s = self.settings()
        headers = scope.get("headers") or ()
        host = auth = ctype = b""
        length: int | None = None
        chunked = False
        for key, value in headers:
            if key == b"host":
                host = value
            elif key == b"authorization":
                auth = value
            elif key == b"content-type":
                ctype = value
            elif key == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
            elif key == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        has_body = chunked or bool(length)
        path = scope.get("path", "")

        async def refuse(status: int, error: str, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
            body = _json_bytes(status, error, detail)
            hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())] + (extra or [])
            if has_body:
                hdrs.append((b"connection", b"close"))  # do not read (or discard) the rest of the body
            await send({"type": "http.response.start", "status": status, "headers": hdrs})
            await send({"type": "http.response.body", "body": body})

        if not s.token and s.allowed_hosts is not None:
            name = host_name(host.decode("latin-1"))
            if name not in s.allowed_hosts:
                await refuse(421, "misdirected_request",
                             "this server answers only requests addressed to its own host name (Host header); "
                             "start it with --allow-host NAME to accept another")
                return
        if s.token and path not in PUBLIC_PATHS and not path.startswith(PUBLIC_PREFIXES) and scope.get("method") != "OPTIONS":
            detail = _check_bearer(auth, s.token)
            if detail is not None:
                await refuse(401, "unauthorized", detail, [(b"www-authenticate", b"Bearer")])
                return
        if length is not None and length < 0:
            await refuse(400, "bad_request", "the Content-Length header is not a number")
            return
        upload = any(p.match(path) for p in s.upload_routes)
        limit = s.max_upload_bytes + MULTIPART_OVERHEAD if upload else s.max_json_bytes
        if length is not None and length > limit:
            await refuse(413, "payload_too_large", f"the request body is larger than the limit of {limit:,} bytes")
            return
        await self._guarded(scope, receive, send, s, limit, None if upload else DepthScanner(s.max_depth, "the request body"),
                            refuse, has_body)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, s: GuardSettings, limit: int,
                       scanner: DepthScanner | None, refuse: Any, has_body: bool) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + s.body_timeout_s
        state = {"read": 0, "done": not has_body, "refused": False, "started": False}

        async def guarded_receive() -> Message:
            if state["refused"]:
                return {"type": "http.disconnect"}
            if state["done"]:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
            except asyncio.TimeoutError:
                await stop(408, "request_timeout", f"the request body did not arrive within {s.body_timeout_s:g} s")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                chunk = message.get("body", b"")
                state["read"] += len(chunk)
                if state["read"] > limit:
                    await stop(413, "payload_too_large", f"the request body is larger than the limit of {limit:,} bytes")
                    return {"type": "http.disconnect"}
                if scanner is not None and chunk:
                    try:
                        scanner.feed(chunk)
                    except JSONDepthError as exc:
                        await stop(422, "invalid_input", str(exc))
                        return {"type": "http.disconnect"}
                if not message.get("more_body", False):
                    state["done"] = True
            else:
                state["done"] = True
            return message

        async def stop(status: int, error: str, detail: str) -> None:
            state["refused"] = True
            if not state["started"]:
                state["started"] = True
                log.info("refused %s %s: %s (%d body bytes read)", scope.get("method"), scope.get("path"), error, state["read"])
                await refuse(status, error, detail)

        async def guarded_send(message: Message) -> None:
            if state["refused"]:
                return  # the guard has answered; the app's late response is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception as exc:
            if state["refused"]:
                return  # the app noticed the disconnect the guard made; nothing to log
            log.error("internal error on %s %s: %s: %s", scope.get("method"), scope.get("path"), type(exc).__name__,
                      exc, exc_info=exc)
            if not state["started"]:
                state["started"] = True
                body = _json_bytes(500, "internal_error", "the server failed on this request; the server log has the details")
                await send({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})


def _check_bearer(auth: bytes, token: str) -> str | None:
    """None when ``auth`` (the Authorization header) carries the token, else the reason for a 401."""
    scheme, _, value = auth.decode("latin-1").strip().partition(" ")
    if not auth or scheme.lower() != "bearer":
        return "this server requires a bearer token: send the header 'Authorization: Bearer <token>'"
    if not hmac.compare_digest(value.strip().encode("utf-8", "surrogateescape"), token.encode("utf-8")):
        return "the bearer token is not valid"
    return None


# ---------------------------------------------------------------------------------------------
# logs


class ScrubQueryFilter(logging.Filter):
    """Drops the query string from uvicorn's access-log lines (a client may put a token there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (*args[:2], args[2].split("?", 1)[0], *args[3:])
        return True


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's logging config with :class:`ScrubQueryFilter` on the access log handler, and geoseek's
    own log lines (refusals, faults) written like uvicorn's."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg = copy.deepcopy(LOGGING_CONFIG)
    cfg.setdefault("filters", {})["scrub_query"] = {"()": "geoseek.service.guard.ScrubQueryFilter"}
    cfg["handlers"]["access"]["filters"] = ["scrub_query"]
    cfg["loggers"]["geoseek"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return cfg
