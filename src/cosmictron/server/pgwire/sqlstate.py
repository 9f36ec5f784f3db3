"""The SQLSTATE code and position of each error, as PostgreSQL clients expect them.

Cosmictron's errors carry a stable snake_case ``code`` and, for SQL, a line, column
and the offending text; PostgreSQL clients match on the five-character SQLSTATE and
show a caret at ``position`` (1-based, in characters of the statement as sent). The
engine's ``SqlError`` has one code for every problem, so its kind is read from the
first words of its reason, which the engine keeps stable (docs/reference/errors.md).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from cosmictron.errors import (
    ClusterUnavailable,
    Conflict,
    CosmictronError,
    NotFinite,
    NotFound,
    NotLeader,
    PermissionDenied,
    QueryCancelled,
    RateLimited,
    ResourceExhausted,
    SqlError,
    TooLarge,
    Unauthenticated,
)
from cosmictron.host.sql import BLOCK_CHANGED

SYNTAX_ERROR = "42601"
UNDEFINED_TABLE = "42P01"
UNDEFINED_COLUMN = "42703"
UNDEFINED_FUNCTION = "42883"
UNDEFINED_OBJECT = "42704"
DATATYPE_MISMATCH = "42804"
FEATURE_NOT_SUPPORTED = "0A000"
INVALID_TEXT_REPRESENTATION = "22P02"
NUMERIC_VALUE_OUT_OF_RANGE = "22003"
INSUFFICIENT_PRIVILEGE = "42501"
PROGRAM_LIMIT_EXCEEDED = "54000"
CONFIGURATION_LIMIT_EXCEEDED = "53400"
QUERY_CANCELED = "57014"
UNIQUE_VIOLATION = "23505"
SERIALIZATION_FAILURE = "40001"
INVALID_PASSWORD = "28P01"
INVALID_AUTHORIZATION = "28000"
INVALID_CATALOG_NAME = "3D000"
PROTOCOL_VIOLATION = "08P01"
TOO_MANY_CONNECTIONS = "53300"
IN_FAILED_TRANSACTION = "25P02"
ACTIVE_SQL_TRANSACTION = "25001"
NO_ACTIVE_SQL_TRANSACTION = "25P01"
INVALID_PREPARED_STATEMENT = "26000"
INVALID_CURSOR_NAME = "34000"
DUPLICATE_PREPARED_STATEMENT = "42P05"
INVALID_PARAMETER_VALUE = "22023"
UNDEFINED_PARAMETER = "42704"
INTERNAL_ERROR = "XX000"
ADMIN_SHUTDOWN = "57P01"
WARNING = "01000"

_SQL_REASONS = (
    ("syntax error", SYNTAX_ERROR),
    ("unknown table", UNDEFINED_TABLE),
    ("unknown column", UNDEFINED_COLUMN),
    ("ambiguous column", "42702"),
    ("unsupported construct: function", UNDEFINED_FUNCTION),
    ("unsupported", FEATURE_NOT_SUPPORTED),
    ("type mismatch", DATATYPE_MISMATCH),
    ("out of range", NUMERIC_VALUE_OUT_OF_RANGE),
    ("the sql text is", PROGRAM_LIMIT_EXCEEDED),
)


@dataclass
class PgError(Exception):
    """An error to send as an ErrorResponse: SQLSTATE, message, optional position."""

    code: str
    message: str
    position: int | None = None
    severity: str = "ERROR"
    detail: str | None = None

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def position_in(text: str, line: int | None, column: int | None) -> int | None:
    """The 1-based character offset of (line, column) in ``text``, or None."""
    if line is None or column is None:
        return None
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return None
    return sum(len(earlier) + 1 for earlier in lines[: line - 1]) + column


CANNOT_CONNECT_NOW = "57P03"
"""Cluster mode, no quorum or no leader (``cluster_unavailable``, ``not_leader``): the code
PostgreSQL gives a server that cannot serve yet, which drivers and poolers treat as
transient (retry), unlike ``XX000``."""

_BY_CODE = {
    PermissionDenied.code: INSUFFICIENT_PRIVILEGE,
    QueryCancelled.code: QUERY_CANCELED,
    TooLarge.code: CONFIGURATION_LIMIT_EXCEEDED,
    ResourceExhausted.code: CONFIGURATION_LIMIT_EXCEEDED,
    RateLimited.code: CONFIGURATION_LIMIT_EXCEEDED,
    Conflict.code: UNIQUE_VIOLATION,
    NotFinite.code: NUMERIC_VALUE_OUT_OF_RANGE,
    Unauthenticated.code: INVALID_PASSWORD,
    NotFound.code: UNDEFINED_OBJECT,
    ClusterUnavailable.code: CANNOT_CONNECT_NOW,
    NotLeader.code: CANNOT_CONNECT_NOW,
}
"""The SQLSTATE of each error code, looked up along an error's classes (a subclass with
a code of its own answers as its parent) or by the code alone (an error forwarded from
the leader, which arrives as its code and message)."""

_SQL_AT = re.compile(
    r"^(?P<reason>.*) \(line (?P<line>\d+), column (?P<column>\d+)(?:: (?P<text>.*))?\)$", re.S
)


def sqlstate_of(exc: BaseException, text: str = "") -> PgError:
    """The ``PgError`` to report for an exception raised running ``text``."""
    if isinstance(exc, PgError):
        return exc
    if isinstance(exc, SqlError):
        reason = exc.reason.lower()
        code = next((c for prefix, c in _SQL_REASONS if reason.startswith(prefix)), None)
        if code is None:
            code = next((c for prefix, c in _SQL_REASONS if prefix in reason), SYNTAX_ERROR)
        return PgError(code, str(exc), position_in(text, exc.line, exc.column))
    if isinstance(exc, CosmictronError):
        message = str(exc)
        codes = [exc.code, *(getattr(cls, "code", None) for cls in type(exc).__mro__)]
        found = next((_BY_CODE[c] for c in codes if c in _BY_CODE), None)
        if found == UNIQUE_VIOLATION and BLOCK_CHANGED in message:
            found = SERIALIZATION_FAILURE
        if found == INVALID_PASSWORD:
            return PgError(found, message, severity="FATAL")
        if found == CANNOT_CONNECT_NOW and "retry" not in message:
            message += "; retry once the cluster has a quorum and a leader again"
        if found is not None:
            return PgError(found, message)
        if "out of range" in message:
            return PgError(NUMERIC_VALUE_OUT_OF_RANGE, message)
        if exc.http_status == 400:
            return PgError(INVALID_PARAMETER_VALUE, message)
        return PgError(INTERNAL_ERROR, message)
    return PgError(INTERNAL_ERROR, "internal error; see the server log")


def sqlstate_of_document(code: str, message: str, status: int, text: str = "") -> PgError:
    """The ``PgError`` for an error the leader answered (``{"code", "message"}`` and its
    HTTP status) to a statement forwarded from a follower: the SQLSTATE the leader's own
    port would have given, position included (a ``sql_error``'s message ends with its
    line and column)."""
    if code == SqlError.code:
        found = _SQL_AT.match(message)
        if found is None:
            return sqlstate_of(SqlError(message), text)
        sql_error = SqlError(
            found.group("reason"),
            line=int(found.group("line")),
            column=int(found.group("column")),
            text=_unrepr(found.group("text")),
        )
        return sqlstate_of(sql_error, text)
    error = CosmictronError(message)
    error.code = code
    error.http_status = status
    return sqlstate_of(error, text)


def _unrepr(shown: str | None) -> str:
    """``SqlError``'s offending text, shown with ``repr``, back as the text."""
    if not shown:
        return ""
    try:
        value = ast.literal_eval(shown)
    except (ValueError, SyntaxError):
        return shown
    return value if isinstance(value, str) else shown
