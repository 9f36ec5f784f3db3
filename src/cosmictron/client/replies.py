"""A server's error reply as the ``cosmictron.errors`` class it came from.

The server puts each error's stable ``code`` beside its message (``error_code`` in a
WebSocket reply, ``{"error": {"code", "message"}}`` over HTTP), so the client raises the
very class the database raised: ``except ReducerFailed`` works the same embedded and over
the network. An unknown code (a newer server) is a plain ``CosmictronError``.
"""

from __future__ import annotations

import re

from cosmictron import errors
from cosmictron.errors import CosmictronError, InvalidRequest, ReducerFailed, attach_traceback

_FAILED = re.compile(r"^reducer '(?P<reducer>[^']*)' failed: (?P<reason>.*)$", re.DOTALL)
_CAUSE = re.compile(r"^(?P<cause>[A-Za-z_][A-Za-z0-9_.]*): ")


def _classes() -> dict[str, type[CosmictronError]]:
    found: dict[str, type[CosmictronError]] = {}
    pending: list[type[CosmictronError]] = [CosmictronError]
    while pending:
        cls = pending.pop()
        if cls.__module__ == errors.__name__:
            found.setdefault(cls.code, cls)
        pending += cls.__subclasses__()
    return found


CLASSES_BY_CODE = _classes()
"""Every error class of ``cosmictron.errors``, by its ``code``."""


def error_from_reply(
    code: str | None,
    message: str,
    reducer: str | None = None,
    traceback: str | None = None,
    retry_after_s: float | None = None,
) -> CosmictronError:
    """The exception a server's ``code`` and ``message`` stand for, with the frames of the
    module's code (``traceback``, sent to the database's owner only) attached to it, and
    the reply's ``retry_after_s`` as the error's own (``ClusterUnavailable``,
    ``RateLimited``: when to try again).

    >>> error = error_from_reply("reducer_failed", "reducer 'post' failed: ValueError: empty")
    >>> type(error).__name__, error.reducer, error.cause_type, error.reason
    ('ReducerFailed', 'post', 'ValueError', 'ValueError: empty')
    >>> type(error_from_reply("not_found", "no reducer named 'x'")).__name__
    'NotFound'
    """
    error = _error_from_reply(code, message, reducer)
    if isinstance(retry_after_s, int | float) and hasattr(error, "retry_after_s"):
        error.retry_after_s = float(retry_after_s)
    return attach_traceback(error, traceback)


def _error_from_reply(code: str | None, message: str, reducer: str | None) -> CosmictronError:
    if code == "protocol_error":
        return InvalidRequest(message)
    cls = CLASSES_BY_CODE.get(code or "", CosmictronError)
    if issubclass(cls, ReducerFailed):
        matched = _FAILED.match(message)
        name = matched["reducer"] if matched else (reducer or "?")
        reason = matched["reason"] if matched else message
        cause = _CAUSE.match(reason)
        return ReducerFailed(name, reason, cause["cause"] if cause else "Exception")
    for candidate in cls.__mro__:  # CorruptLog wants more than a message: its parent
        if issubclass(candidate, CosmictronError):
            try:
                return candidate(message)
            except TypeError:
                continue
    return CosmictronError(message)
