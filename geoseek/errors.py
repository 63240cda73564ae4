"""Errors a user can act on. The CLI prints their message and exits non-zero; the HTTP API
answers them with a 4xx JSON body. Anything else is a bug."""


class GeoseekError(Exception):
    """Base class of user-facing errors."""

    status_code = 400


class NotFoundError(GeoseekError):
    """A named thing (collection, item, model, file) does not exist."""

    status_code = 404


class InvalidInputError(GeoseekError, ValueError):
    """Input is malformed or out of range; the message names the problem."""

    status_code = 422


class ConflictError(GeoseekError):
    """Another writer holds the thing being written (a collection's lock, an existing build output)."""

    status_code = 409


class DamagedDataError(GeoseekError):
    """Stored data failed an integrity check (a collection file is truncated, altered or unreadable).

    A server-side fault, not the client's: the HTTP API answers 503 for that collection only, and
    the message names the damaged file relative to the collection (never an absolute server path).
    """

    status_code = 503
