"""The FastAPI app: opened collections, every route module, auth, limits, JSON errors, the web map.

``create_app`` opens the collections once and keeps them on ``app.state.collections``; the
route modules of :mod:`geoseek.service.routes` are discovered when the app is created and all
of them sit behind the bearer-token check (when a token is configured). ``/health``, the
OpenAPI page (``/docs``, ``/openapi.json``) and the static web page need no token; the page
asks for one when the API answers 401.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pkgutil
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from types import ModuleType
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import FileResponse, JSONResponse
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from geoseek import __version__
from geoseek.errors import InvalidInputError, NotFoundError
from geoseek.service.deps import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_BYTES,
    CollectionEntry,
    ServiceSettings,
    install_error_handlers,
    require_token,
)
from geoseek.service.guard import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_MAX_JSON_BYTES,
    LOOPBACK_HOSTS,
    GuardMiddleware,
    GuardSettings,
    host_name,
)
from geoseek.service.schemas import ErrorOut, Health

log = logging.getLogger("geoseek.service")

WEB_DIR = Path(__file__).resolve().parent / "web"
"""The page (index.html, app.js, style.css) and, after ``npm install``, node_modules/ol."""

_WEB_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
_VENDOR_FILES = {"ol/ol.js": ("ol/dist/ol.js", "text/javascript"), "ol/ol.css": ("ol/ol.css", "text/css")}

DEFAULT_ALLOWED_HOSTS = (*LOOPBACK_HOSTS, "testserver")
"""Host names a token-less app answers by default (loopback, and Starlette's TestClient)."""

CollectionsArg = Mapping[str, Any] | Iterable[str | PathLike[str]]

SERVE_CONFIG_ENV = "GEOSEEK_SERVE_CONFIG"
"""Environment variable through which ``geoseek serve --workers N`` hands its settings to each
worker process (JSON; the token itself is never in it, only where to read it from)."""


class BodyLimitMiddleware:
    """Kept for callers of the old name: the limits now live in :class:`geoseek.service.guard.GuardMiddleware`."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        from geoseek.service.guard import GuardMiddleware, GuardSettings

        self._guard = GuardMiddleware(app, GuardSettings(max_json_bytes=max_bytes, max_upload_bytes=max_bytes,
                                                         allowed_hosts=None, max_depth=1 << 30))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._guard(scope, receive, send)


def _open_collections(collections: CollectionsArg) -> dict[str, CollectionEntry]:
    """Name → opened collection. Accepts {name: path or Collection} or an iterable of paths (name = folder name)."""
    from geoseek.collection import Collection

    if isinstance(collections, (str, PathLike)):
        collections = [collections]
    pairs: list[tuple[str, Any]]
    if isinstance(collections, Mapping):
        pairs = [(str(k), v) for k, v in collections.items()]
    else:
        pairs = [(Path(p).resolve().name, p) for p in collections]
    entries: dict[str, CollectionEntry] = {}
    for name, value in pairs:
        if not name or "/" in name or name.startswith("."):
            raise InvalidInputError(f"invalid collection name {name!r}: use letters, digits, '-' or '_'")
        if name in entries:
            raise InvalidInputError(f"two collections are named {name!r}; name them explicitly as NAME=PATH")
        if isinstance(value, (str, PathLike)):
            path = Path(value)
            if not path.exists():
                raise NotFoundError(f"collection {name!r}: {path} does not exist")
            col = Collection.open(path)
        else:
            col = value
        entries[name] = CollectionEntry(name=name, path=str(getattr(col, "path", "")), collection=col)
    return entries


def route_modules() -> list[ModuleType]:
    """The modules of :mod:`geoseek.service.routes` that define ``router`` (generic ``collections`` last,
    so a capability's more specific route of the same path wins)."""
    from geoseek.service import routes

    names = sorted(m.name for m in pkgutil.iter_modules(routes.__path__) if not m.name.startswith("_"))
    names.sort(key=lambda n: n == "collections")
    modules = []
    for name in names:
        try:
            module = importlib.import_module(f"{routes.__name__}.{name}")
        except Exception:  # one broken capability must not take the whole service down
            log.exception("route module %s could not be imported; its endpoints are not served", name)
            continue
        if getattr(module, "router", None) is not None:
            modules.append(module)
    return modules


def api_routes(router: Any) -> list[APIRoute]:
    """The APIRoutes of a router, nested routers flattened, in routing order."""
    out: list[APIRoute] = []
    for route in getattr(router, "routes", ()):
        if isinstance(route, APIRoute):
            out.append(route)
        elif getattr(route, "original_router", None) is not None:  # FastAPI's lazily included routers
            out.extend(api_routes(route.original_router))
    return out


def create_app(
    collections: CollectionsArg,
    token: str | None = None,
    cors_origins: Iterable[str] = (),
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    allowed_hosts: Iterable[str] | None = DEFAULT_ALLOWED_HOSTS,
) -> FastAPI:
    """Build the geoseek HTTP app.

    Args:
        collections: ``{name: path or opened Collection}`` or paths (each named by its folder).
        token: bearer token required on every API route when given (never logged).
        cors_origins: origins allowed to call the API from a browser (e.g. ``http://localhost:3000``);
            none by default (the web page is served from the same origin).
        max_upload_bytes: largest accepted upload, bytes (multipart routes; counted while streaming).
        max_pixels: largest accepted decoded image, width × height.
        max_json_bytes: largest body of every other route, bytes (counted while streaming).
        body_timeout_s: seconds a request body may take to arrive after its headers (408 after).
        allowed_hosts: ``Host`` names answered when there is no token (any port); None = any. The
            default is loopback plus ``testserver`` (the name Starlette's TestClient sends);
            ``geoseek serve`` passes loopback plus its ``--host`` and ``--allow-host`` names.
    """
    from PIL import Image

    if max_upload_bytes <= 0 or max_pixels <= 0 or max_json_bytes <= 0 or not body_timeout_s > 0:
        raise InvalidInputError("max_upload_bytes, max_pixels, max_json_bytes and body_timeout_s must be > 0")
    entries = _open_collections(collections)
    # PIL's own decompression-bomb guard: error past 2 × this; decode_image_limited checks first.
    Image.MAX_IMAGE_PIXELS = max(int(max_pixels), Image.MAX_IMAGE_PIXELS or 0)

    app = FastAPI(
        title="geoseek",
        version=__version__,
        description="Find places and geographic scenes by sketch, sketch map, image or location. "
        "Coordinates are (lon, lat) degrees WGS84; footprints are GeoJSON. "
        "When the server has a token, send `Authorization: Bearer <token>`.",
        responses={422: {"model": ErrorOut, "description": "invalid input"}},
    )
    app.state.settings = ServiceSettings(
        token=token or None, cors_origins=tuple(cors_origins), max_upload_bytes=int(max_upload_bytes), max_pixels=int(max_pixels)
    )
    app.state.collections = entries
    install_error_handlers(app)

    @app.get("/health", response_model=Health, tags=["service"], summary="liveness (no token needed)")
    def health() -> Health:
        return Health(version=__version__, collections=len(entries))

    errors = {401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 413: {"model": ErrorOut}, 422: {"model": ErrorOut}}
    modules = route_modules()
    app.state.route_modules = modules
    app.state.api_routes = [(module.__name__, route) for module in modules for route in api_routes(module.router)]
    for module in modules:
        app.include_router(module.router, dependencies=[Depends(require_token)], responses=errors)

    _add_web(app)
    settings = app.state.settings
    app.state.guard = GuardSettings(
        token=settings.token, max_json_bytes=int(max_json_bytes), max_upload_bytes=int(max_upload_bytes),
        body_timeout_s=float(body_timeout_s), upload_routes=upload_route_patterns(app),
        allowed_hosts=None if allowed_hosts is None else frozenset(host_name(h) for h in allowed_hosts),
    )
    app.add_middleware(GuardMiddleware, settings=lambda: _guard_settings(app))
    if app.state.settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(app.state.settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"], allow_credentials=False,
        )
    return app


def _guard_settings(app: FastAPI) -> GuardSettings:
    """The guard's settings, with the token and upload limit as the app has them now (tests may change them)."""
    guard: GuardSettings = app.state.guard
    settings = app.state.settings
    guard.token = settings.token
    guard.max_upload_bytes = settings.max_upload_bytes
    return guard


def upload_route_patterns(app: FastAPI) -> tuple[Any, ...]:
    """Path regexes of the routes that take multipart form data (File/Form parameters): the larger body limit."""
    out = []
    for route in api_routes(app.router):
        body = route.body_field
        if body is not None:
            info = getattr(body, "field_info", None)
            if type(info).__name__ in ("File", "Form") or any(
                    type(getattr(p, "field_info", None)).__name__ in ("File", "Form") for p in route.dependant.body_params):
                out.append(route.path_regex)
    return tuple(out)


def _add_web(app: FastAPI) -> None:
    """The page and its files (OpenLayers from node_modules, installed by ``npm install``)."""

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(WEB_DIR / "index.html", media_type="text/html")

    @app.get("/static/{filename}", include_in_schema=False)
    def static(filename: str) -> FileResponse:
        if filename not in _WEB_FILES:
            raise NotFoundError(f"no static file {filename!r}")
        return FileResponse(WEB_DIR / filename, media_type=_WEB_FILES[filename])

    @app.get("/static/vendor/{package}/{filename}", include_in_schema=False)
    def vendor(package: str, filename: str) -> FileResponse:
        spec = _VENDOR_FILES.get(f"{package}/{filename}")
        if spec is None:
            raise NotFoundError(f"no vendored file {package}/{filename}")
        path = WEB_DIR / "node_modules" / spec[0]
        if not path.is_file():
            raise NotFoundError(f"{path.name} is not installed: run `make setup-web` (npm install in {WEB_DIR})")
        return FileResponse(path, media_type=spec[1])


def app_from_env() -> FastAPI:
    """The app of one ``geoseek serve --workers N`` worker process, built from ``$GEOSEEK_SERVE_CONFIG``.

    The JSON holds ``collections`` ({name: path}), ``token_env`` / ``token_file`` (where the token
    is read from), ``cors``, ``max_upload_bytes``, ``max_pixels``, ``max_json_bytes``, ``body_timeout_s``,
    ``allowed_hosts`` (null = any) and ``threads``.
    """
    from geoseek.service.deps import read_token, set_threads

    raw = os.environ.get(SERVE_CONFIG_ENV)
    if not raw:
        raise InvalidInputError(f"${SERVE_CONFIG_ENV} is not set; start workers with `geoseek serve --workers N`")
    cfg = json.loads(raw)
    set_threads(int(cfg.get("threads", 1)))
    return create_app(
        cfg["collections"], token=read_token(cfg.get("token_env"), cfg.get("token_file")),
        cors_origins=cfg.get("cors", ()), max_upload_bytes=int(cfg.get("max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES)),
        max_pixels=int(cfg.get("max_pixels", DEFAULT_MAX_PIXELS)),
        max_json_bytes=int(cfg.get("max_json_bytes", DEFAULT_MAX_JSON_BYTES)),
        body_timeout_s=float(cfg.get("body_timeout_s", DEFAULT_BODY_TIMEOUT_S)),
        allowed_hosts=cfg.get("allowed_hosts", list(LOOPBACK_HOSTS)),
    )
