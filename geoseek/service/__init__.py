"""geoseek's HTTP service: a FastAPI app over opened collections, plus the web map in ``web/``.

``create_app`` lives in :mod:`geoseek.service.app`; query-mode routes live one module each in
:mod:`geoseek.service.routes` and are included when the app is created. Importing this package
imports nothing heavy.
"""

from __future__ import annotations

from typing import Any

__all__ = ["TOKEN_ENV", "create_app"]

TOKEN_ENV = "GEOSEEK_TOKEN"
"""The environment variable that holds the bearer token by default (unset: no auth)."""


def __getattr__(name: str) -> Any:  # lazy: `from geoseek.service import create_app`
    if name == "create_app":
        from geoseek.service.app import create_app

        return create_app
    raise AttributeError(name)
