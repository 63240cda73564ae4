"""Parse JSON from outside (HTTP bodies, form fields, files) with size and nesting-depth limits.

Python's :func:`json.loads` recurses once per nesting level, so a document nested a few
thousand deep raises :class:`RecursionError` (a crash, not a clear error). Every JSON input
that comes from outside goes through :func:`loads_limited`, which first scans the raw text for
its nesting depth (a regular expression skips strings; no recursion) and refuses it with
:class:`~geoseek.errors.InvalidInputError` before :func:`json.loads` runs.

:class:`DepthScanner` does the same incrementally, chunk by chunk, so the HTTP layer can refuse
a deep body while it streams in (see :mod:`geoseek.service.guard`).
"""

from __future__ import annotations

import json
import re
from typing import Any

from geoseek.errors import InvalidInputError

MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays/objects accepted (a GeoJSON MultiPolygon inside a feature collection is ~7)."""

MAX_JSON_BYTES = 5 * 1024 * 1024
"""Largest JSON document :func:`loads_limited` accepts by default (5 MiB)."""

_TOKEN = re.compile(rb'[\[\]{}"]')
_STRING_END = re.compile(rb'(?:[^"\\]|\\.)*"', re.S)
_STRING_TAIL = re.compile(rb'(?:[^"\\]|\\.)*(\\?)\Z', re.S)


class JSONDepthError(InvalidInputError):
    """A JSON document nests arrays/objects deeper than allowed."""


class DepthScanner:
    """Track the array/object nesting depth of a JSON text fed in chunks (bytes).

    ``feed`` raises :class:`JSONDepthError` as soon as the depth passes ``max_depth``. Brackets
    inside strings (escapes included, also across chunk boundaries) are ignored. The scanner does
    not validate JSON; :func:`json.loads` does that afterwards.
    """

    def __init__(self, max_depth: int = MAX_JSON_DEPTH, what: str = "the JSON") -> None:
        self.max_depth = int(max_depth)
        self.what = what
        self.depth = 0
        self.in_string = False
        self._escape = False  # the previous chunk ended in the middle of a string escape

    def feed(self, chunk: bytes) -> None:
        """Scan one chunk of the document."""
        pos, n = 0, len(chunk)
        if self._escape and n:
            pos, self._escape = 1, False
        while pos < n:
            if self.in_string:
                m = _STRING_END.match(chunk, pos)
                if m is None:  # the string goes on into the next chunk
                    tail = _STRING_TAIL.match(chunk, pos)
                    self._escape = bool(tail and tail.group(1))
                    return
                pos, self.in_string = m.end(), False
                continue
            m = _TOKEN.search(chunk, pos)
            if m is None:
                return
            c, pos = chunk[m.start()], m.end()
            if c == 0x22:  # '"'
                self.in_string = True
            elif c in (0x5B, 0x7B):  # '[' '{'
                self.depth += 1
                if self.depth > self.max_depth:
                    raise JSONDepthError(f"{self.what} is nested more than {self.max_depth} levels deep")
            elif self.depth > 0:
                self.depth -= 1


def check_depth(raw: bytes | str, max_depth: int = MAX_JSON_DEPTH, what: str = "the JSON") -> None:
    """Raise :class:`JSONDepthError` when ``raw`` nests deeper than ``max_depth``."""
    DepthScanner(max_depth, what).feed(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw))


def loads_limited(raw: bytes | bytearray | str, *, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH,
                  what: str = "the JSON") -> Any:
    """:func:`json.loads` with limits: at most ``max_bytes`` bytes (UTF-8) and ``max_depth`` levels.

    Raises :class:`InvalidInputError` (HTTP 422) naming ``what`` for a document that is too large,
    too deep, empty, not UTF-8 or not JSON; never :class:`RecursionError`.
    """
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else bytes(raw)
    if len(data) > max_bytes:
        raise InvalidInputError(f"{what} is too large ({len(data):,} bytes > {max_bytes:,})")
    if not data.strip():
        raise InvalidInputError(f"{what} is empty")
    check_depth(data, max_depth, what)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{what} is not JSON: {_short(exc)}") from None
    except RecursionError:  # belt and braces: the scan above should make this unreachable
        raise JSONDepthError(f"{what} is nested too deeply") from None


def _short(exc: Exception) -> str:
    msg = str(exc)
    return msg if len(msg) <= 200 else msg[:200] + "…"
