"""FastAPI dependencies and helpers shared by every route module.

- :func:`get_collection`: path parameter ``name`` → the opened :class:`~geoseek.collection.Collection`
  held by the app (404 JSON when unknown).
- :func:`require_token`: bearer-token auth when the app has a token (constant-time compare; the
  token is only ever read from the ``Authorization`` header, never from a URL).
- :func:`read_upload_limited` / :func:`decode_image_limited`: uploads bounded in bytes and in
  decoded pixels (decompression bombs answer 413, not a crash).
- :func:`install_error_handlers`: every error is JSON ``{"error": code, "detail": message}``:
  :class:`~geoseek.errors.GeoseekError` → its 4xx status, request validation → 422,
  :class:`~geoseek.errors.DamagedDataError` and library failures on server data → 503 for that
  collection, anything unexpected → 500 (see :mod:`geoseek.service.guard`); messages carry no
  object reprs or server paths (:func:`public_detail`).
"""

from __future__ import annotations

import hmac
import io
import logging
import os
import re
import sqlite3
import sys
import threading
from pathlib import Path as FilePath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO

from fastapi import Depends, Path, Request

from geoseek.service import TOKEN_ENV  # noqa: F401  (re-exported)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from geoseek.errors import DamagedDataError, GeoseekError, InvalidInputError, NotFoundError

if TYPE_CHECKING:
    from fastapi import FastAPI
    from PIL import Image

    from geoseek.collection import Collection

log = logging.getLogger("geoseek.service")

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
"""Largest accepted upload (10 MiB)."""

DEFAULT_MAX_PIXELS = 16_000_000
"""Largest accepted decoded image, width × height (16 megapixels)."""


class ApiError(GeoseekError):
    """An HTTP error with a status, a short machine-readable code and a message for people."""

    def __init__(self, status_code: int, error: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status_code = status_code
        self.error = error
        self.detail = detail
        self.headers = headers


class Unauthorized(ApiError):
    def __init__(self, detail: str):
        super().__init__(401, "unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


class PayloadTooLarge(ApiError):
    def __init__(self, detail: str):
        super().__init__(413, "payload_too_large", detail)


@dataclass
class ServiceSettings:
    """What the app was configured with; ``request.app.state.settings``."""

    token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


@dataclass
class CollectionEntry:
    """An opened collection with its name and path. Collections are thread-safe for reads (SQLite
    behind a lock, FAISS searches with per-call parameters); ``lock`` guards the app's own caches."""

    name: str
    path: str
    collection: Collection
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)


def read_token(token_env: str | None, token_file: str | None) -> str | None:
    """The token from ``token_file`` (first line, stripped) or else ``$token_env``; None when neither is set."""
    if token_file:
        path = FilePath(token_file)
        if not path.is_file():
            raise InvalidInputError(f"token file {path} does not exist")
        lines = path.read_text(encoding="utf-8").strip().splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise InvalidInputError(f"token file {path} is empty")
        return token
    if token_env:
        token = os.environ.get(token_env, "").strip()
        return token or None
    return None


def set_threads(n: int) -> None:
    """Threads each request's FAISS search and torch inference may use (OpenMP/intra-op)."""
    os.environ["OMP_NUM_THREADS"] = str(n)
    from geoseek.index._faiss import faiss

    faiss.omp_set_num_threads(n)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def get_settings(request: Request) -> ServiceSettings:
    """The app's :class:`ServiceSettings` (limits, token, CORS)."""
    return request.app.state.settings


def get_entries(request: Request) -> dict[str, CollectionEntry]:
    """All collections the app serves, by name, in the order given."""
    return request.app.state.collections


async def get_entry(request: Request, name: str = Path(..., description="collection name (see GET /collections)")) -> CollectionEntry:
    """The served collection called ``name``, with its lock; 404 JSON when unknown."""
    entries: dict[str, CollectionEntry] = request.app.state.collections
    entry = entries.get(name)
    if entry is None:
        known = ", ".join(entries) or "none"
        raise NotFoundError(f"no collection named {name!r}; served collections: {known}")
    return entry


async def get_collection(entry: CollectionEntry = Depends(get_entry)) -> Collection:
    """FastAPI dependency: path parameter ``name`` → the opened Collection (404 JSON if unknown).

    The dependencies here are ``async`` because they never block: FastAPI then runs them on the
    event loop instead of handing each to a worker thread."""
    return entry.collection


_bearer = HTTPBearer(auto_error=False, description="Bearer token, required when the server was started with one")


async def require_token(request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """Bearer-token check when the app has a token; a no-op otherwise.

    The comparison is constant-time (:func:`hmac.compare_digest` over bytes) and the token is
    read only from the ``Authorization: Bearer ...`` header, so it never lands in access logs.
    """
    token = request.app.state.settings.token
    if not token:
        return
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("this server requires a bearer token: send the header 'Authorization: Bearer <token>'")
    if not hmac.compare_digest(credentials.credentials.encode("utf-8"), token.encode("utf-8")):
        raise Unauthorized("the bearer token is not valid")


# ---------------------------------------------------------------------------------------------
# uploads


def read_upload_limited(file: Any, max_bytes: int, *, what: str = "upload") -> bytes:
    """Read an upload (FastAPI ``UploadFile``, a binary file object or bytes), at most ``max_bytes``.

    Reads in chunks and stops as soon as the limit is passed, so a huge upload costs at most
    ``max_bytes`` of memory. Raises 413 JSON when larger, 422 when empty.
    """
    if isinstance(file, (bytes, bytearray, memoryview)):
        data = bytes(file)
    else:
        stream: BinaryIO = getattr(file, "file", file)  # UploadFile wraps a SpooledTemporaryFile
        try:
            stream.seek(0)
        except (AttributeError, OSError, ValueError):
            pass
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = stream.read(min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                break
        data = b"".join(chunks)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"the {what} is larger than the limit of {max_bytes:,} bytes")
    if not data:
        raise InvalidInputError(f"the {what} is empty")
    return data


def decode_image_limited(data: bytes, max_pixels: int) -> Image.Image:
    """Decode image bytes with PIL into a loaded image, refusing more than ``max_pixels`` pixels.

    The size is checked from the header before any pixel is decoded; PIL's own
    decompression-bomb guard is caught as well. Raises 413 JSON for too many pixels and 422
    JSON for bytes that are not an image PIL can read.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        img = Image.open(io.BytesIO(data))  # lazy: reads the header only
        w, h = img.size
        if w <= 0 or h <= 0:
            raise InvalidInputError("the image has no pixels")
        if w * h > max_pixels:
            raise PayloadTooLarge(f"the image is {w}×{h} = {w * h:,} pixels, more than the limit of {max_pixels:,}")
        img.load()
    except GeoseekError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise PayloadTooLarge(f"the image is too large to decode: {exc}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidInputError(f"the upload is not an image that can be read (PNG, JPEG, ...): "
                                f"{public_detail(str(exc))}") from None
    except Exception as exc:  # malformed files reach odd corners of the decoders
        raise InvalidInputError(f"the image could not be decoded: {type(exc).__name__}") from None
    return img


# ---------------------------------------------------------------------------------------------
# errors


def error_response(status_code: int, error: str, detail: Any, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The JSON body every error has: ``{"error": code, "detail": message, ...extra}``."""
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status_code, headers=headers)


_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
          406: "not_acceptable", 409: "conflict", 413: "payload_too_large", 415: "unsupported_media_type",
          422: "invalid_input", 429: "too_many_requests"}


_REPR = re.compile(r"<[^<>\n]{0,200}? at 0x[0-9a-fA-F]+>")
_ABS_PATH = re.compile(r"(?<![\w.:/~-])/(?:[^\s'\"/:,;()<>]+/)+([^\s'\"/:,;()<>]*)")


def public_detail(message: str) -> str:
    """An error message fit for a client: object reprs (``<_io.BytesIO object at 0x…>``) and absolute
    server paths (only the file name is kept) removed, and at most 1000 characters."""
    message = _REPR.sub("<object>", message)
    message = _ABS_PATH.sub(lambda m: m.group(1) or "<path>", message)
    return message if len(message) <= 1000 else message[:1000] + "…"


def _raised_outside_geoseek(exc: BaseException) -> bool:
    """Whether the innermost Python frame of ``exc``'s traceback is outside the geoseek package
    (a library failing on server-side data, not a check of the client's input)."""
    if isinstance(exc, GeoseekError):
        return False
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return not tb.tb_frame.f_code.co_filename.startswith(_PACKAGE_DIR)


_PACKAGE_DIR = str(FilePath(__file__).resolve().parents[1]) + os.sep


def _server_fault(request: Request, exc: BaseException) -> JSONResponse:
    """503 (a collection's data cannot be read) with a generic message; the detail goes to the server
    log once per collection and message, without a traceback for a damaged collection."""
    name = request.path_params.get("name") if hasattr(request, "path_params") else None
    where = f"collection {name!r}" if name else f"{request.method} {request.url.path}"
    seen: set[tuple[str, str]] = getattr(request.app.state, "logged_faults", None) or set()
    request.app.state.logged_faults = seen
    key = (where, f"{type(exc).__name__}: {exc}")
    if key not in seen and len(seen) < 10_000:
        seen.add(key)
        if isinstance(exc, DamagedDataError):
            log.error("%s is damaged: %s", where, exc)
        else:
            log.error("server-side fault on %s: %s", where, key[1], exc_info=exc)
    if isinstance(exc, DamagedDataError):
        detail = (f"{where} is damaged and cannot answer; the server log names the file "
                  "(`geoseek collection verify` / `repair`)")
        return error_response(503, "damaged_collection", detail)
    return error_response(503, "server_fault", f"the server could not read the data of {where}; the server log has the details")


def _loc(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(p) for p in loc) or "request"


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with JSON ``{"error", "detail"}`` and a fitting status."""
    from geoseek.geo import CoordinateError
    from geoseek.registry import UnknownNameError

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status_code, exc.error, exc.detail, headers=exc.headers)

    @app.exception_handler(GeoseekError)
    async def _geoseek_error(request: Request, exc: GeoseekError) -> JSONResponse:
        status = int(getattr(exc, "status_code", 400))
        if isinstance(exc, DamagedDataError) or status >= 500:
            return _server_fault(request, exc)
        if not 400 <= status < 500:
            status = 400
        return error_response(status, _CODES.get(status, "bad_request"), public_detail(str(exc)))

    @app.exception_handler(CoordinateError)
    @app.exception_handler(ValueError)
    async def _value_error(request: Request, exc: ValueError) -> JSONResponse:
        if _raised_outside_geoseek(exc):  # e.g. numpy on a damaged file: the server's fault, not the client's
            return _server_fault(request, exc)
        return error_response(422, "invalid_input", public_detail(str(exc)))

    @app.exception_handler(sqlite3.DatabaseError)
    async def _db_error(request: Request, exc: sqlite3.DatabaseError) -> JSONResponse:
        return _server_fault(request, exc)

    @app.exception_handler(OSError)
    async def _os_error(request: Request, exc: OSError) -> JSONResponse:
        if isinstance(exc, FileNotFoundError):
            return error_response(404, "not_found", "a file this request needs does not exist")
        return _server_fault(request, exc)

    @app.exception_handler(UnknownNameError)
    async def _unknown_name(request: Request, exc: UnknownNameError) -> JSONResponse:
        return error_response(404, "not_found", str(exc))

    @app.exception_handler(FileNotFoundError)
    async def _missing_file(request: Request, exc: FileNotFoundError) -> JSONResponse:
        return error_response(404, "not_found", "a file this request needs does not exist")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
                  for e in exc.errors()]
        detail = "; ".join(f"{_loc(e['loc'])}: {e['msg']}" for e in errors) or "the request is not valid"
        return error_response(422, "validation_error", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        status = exc.status_code
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if status == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path} (see /docs)"
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.url.path} (see /docs)"
        return error_response(status, _CODES.get(status, "error"), detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # normally unreached: geoseek.service.guard answers unhandled exceptions first (one log line)
        log.error("internal error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(500, "internal_error", "the server failed on this request; the server log has the details")
