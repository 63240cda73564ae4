"""uvicorn's HTTP protocol with a header-read deadline (slowloris / half-open connections).

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but has no limit on how long
a client may take to send its request headers: a connection that sends nothing, or one header
byte at a time, is held open forever. :class:`DeadlineHttpProtocol` closes a connection whose
next request's headers are not complete ``$GEOSEEK_HEADER_TIMEOUT_S`` seconds (default 10) after
the connection opened or the previous response ended. Body deadlines are the guard's job
(:mod:`geoseek.service.guard`). Imported only by ``geoseek serve``.
"""

from __future__ import annotations

import os
from typing import Any

try:  # the protocol uvicorn's "auto" picks
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as _Base
except ImportError:  # pragma: no cover - without httptools
    from uvicorn.protocols.http.h11_impl import H11Protocol as _Base  # type: ignore[assignment]

HEADER_TIMEOUT_ENV = "GEOSEEK_HEADER_TIMEOUT_S"
DEFAULT_HEADER_TIMEOUT_S = 10.0


def header_timeout_s() -> float:
    """Seconds a client has to send a request's headers (``$GEOSEEK_HEADER_TIMEOUT_S``, default 10)."""
    try:
        value = float(os.environ.get(HEADER_TIMEOUT_ENV, DEFAULT_HEADER_TIMEOUT_S))
    except ValueError:
        return DEFAULT_HEADER_TIMEOUT_S
    return value if value > 0 else DEFAULT_HEADER_TIMEOUT_S


class DeadlineHttpProtocol(_Base):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP/1.1 protocol plus a header-read deadline (see the module docstring)."""

    _header_task: Any = None
    _header_cycle: Any = None

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_deadline()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_task is not None:
            self._header_task.cancel()
            self._header_task = None
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        if self._header_task is not None:
            self._header_task.cancel()
        self._header_cycle = self.cycle  # a new request replaces the cycle when its headers are complete
        self._header_task = self.loop.call_later(header_timeout_s(), self._header_deadline_passed)

    def _header_deadline_passed(self) -> None:
        self._header_task = None
        if self.cycle is self._header_cycle and not self.transport.is_closing():
            self.logger.info("closing a connection whose request headers did not arrive within %g s", header_timeout_s())
            self.transport.close()
