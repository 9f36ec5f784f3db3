"""The SQLSTATE code and position of each error, as PostgreSQL clients expect them.

Cosmictron's errors carry a stable snake_case ``code`` and, for SQL, a line, column
and the offending text; PostgreSQL clients match on the five-character SQLSTATE and
show a caret at ``position`` (1-based, in characters of the statement as sent). The
engine's ``SqlError`` has one code for every problem, so its kind is read from the
first words of its reason, which the engine keeps stable (docs/reference/errors.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from cosmictron.errors import (
    Conflict,
    CosmictronError,
    NotFinite,
    NotFound,
    PermissionDenied,
    QueryCancelled,
    RateLimited,
    ResourceExhausted,
    SqlError,
    TooLarge,
    Unauthenticated,
)

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
    if isinstance(exc, PermissionDenied):
        return PgError(INSUFFICIENT_PRIVILEGE, str(exc))
    if isinstance(exc, QueryCancelled):
        return PgError(QUERY_CANCELED, str(exc))
    if isinstance(exc, TooLarge | ResourceExhausted | RateLimited):
        return PgError(CONFIGURATION_LIMIT_EXCEEDED, str(exc))
    if isinstance(exc, Conflict):
        return PgError(UNIQUE_VIOLATION, str(exc))
    if isinstance(exc, NotFinite):
        return PgError(NUMERIC_VALUE_OUT_OF_RANGE, str(exc))
    if isinstance(exc, Unauthenticated):
        return PgError(INVALID_PASSWORD, str(exc), severity="FATAL")
    if isinstance(exc, NotFound):
        return PgError(UNDEFINED_OBJECT, str(exc))
    if isinstance(exc, CosmictronError):
        message = str(exc)
        if "out of range" in message:
            return PgError(NUMERIC_VALUE_OUT_OF_RANGE, message)
        if exc.http_status == 400:
            return PgError(INVALID_PARAMETER_VALUE, message)
        return PgError(INTERNAL_ERROR, message)
    return PgError(INTERNAL_ERROR, "internal error; see the server log")
