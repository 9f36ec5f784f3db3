"""The statements a PostgreSQL session answers itself: transaction control, SET, RESET,
DISCARD, SHOW, and the session functions (``version()``, ``current_schema()``, ...).

Clients send these before their first real query (psycopg, asyncpg and SQLAlchemy all
do), and they concern the connection, not the database, so they never reach the SQL
engine. Settings are kept per session: a SET is remembered and shown back, and the
ones PostgreSQL reports with ParameterStatus are reported again when they change.
Settings that would change how Cosmictron answers (a time zone other than UTC, a date
style other than ISO, a client encoding other than UTF8) are refused with 0A000 rather
than accepted and ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cosmictron import __version__
from cosmictron.server.pgwire.sqlstate import (
    FEATURE_NOT_SUPPORTED,
    UNDEFINED_PARAMETER,
    PgError,
)

SERVER_VERSION = f"15.0 (Cosmictron {__version__})"
VERSION_TEXT = (
    f"PostgreSQL 15.0 (Cosmictron {__version__}) on the Cosmictron wire protocol, "
    "compatible with PostgreSQL 15 clients"
)
SERVER_VERSION_NUM = "150000"

REPORTED = (
    "server_version",
    "server_encoding",
    "client_encoding",
    "DateStyle",
    "TimeZone",
    "integer_datetimes",
    "standard_conforming_strings",
    "IntervalStyle",
    "application_name",
    "is_superuser",
    "session_authorization",
)
"""The settings sent as ParameterStatus at startup (and again when SET changes them)."""

DEFAULTS = {
    "server_version": SERVER_VERSION,
    "server_version_num": SERVER_VERSION_NUM,
    "server_encoding": "UTF8",
    "client_encoding": "UTF8",
    "datestyle": "ISO, MDY",
    "timezone": "UTC",
    "integer_datetimes": "on",
    "standard_conforming_strings": "on",
    "intervalstyle": "postgres",
    "application_name": "",
    "is_superuser": "off",
    "session_authorization": "",
    "search_path": '"$user", public',
    "transaction_isolation": "read committed",
    "default_transaction_isolation": "read committed",
    "transaction_read_only": "off",
    "default_transaction_read_only": "off",
    "extra_float_digits": "1",
    "statement_timeout": "0",
    "lock_timeout": "0",
    "idle_in_transaction_session_timeout": "0",
    "max_identifier_length": "63",
    "lc_collate": "C",
    "lc_ctype": "C",
    "lc_messages": "C",
    "lc_monetary": "C",
    "lc_numeric": "C",
    "lc_time": "C",
    "bytea_output": "hex",
    "client_min_messages": "notice",
    "max_connections": "256",
    "row_security": "on",
    "jit": "off",
    "default_transaction_deferrable": "off",
    "transaction_deferrable": "off",
    "synchronous_commit": "on",
    "array_nulls": "on",
    "escape_string_warning": "on",
    "password_encryption": "scram-sha-256",
    "ssl": "off",
    "block_size": "8192",
    "work_mem": "4MB",
    "default_table_access_method": "heap",
    "default_tablespace": "",
    "default_text_search_config": "pg_catalog.simple",
    "max_index_keys": "32",
    "in_hot_standby": "off",
}
"""Every setting SHOW knows (lower-case names), with its value for a new session."""

SPELLING = {name.lower(): name for name in REPORTED}
"""The case PostgreSQL reports these names in (``DateStyle``, ``TimeZone``, ...)."""

FIXED = {
    "timezone": {"utc", "etc/utc", "z", "zulu", "gmt", "utc0", "+00", "00:00", "0"},
    "client_encoding": {"utf8", "utf-8", "unicode"},
    "datestyle": {"iso", "iso, mdy", "iso,mdy", "mdy, iso", "mdy", "iso, ymd", "iso, dmy"},
    "standard_conforming_strings": {"on", "true", "1", "yes"},
    "intervalstyle": {"postgres"},
    "integer_datetimes": {"on"},
}
"""Settings Cosmictron answers one way only: the values accepted (any other is 0A000)."""


@dataclass
class Settings:
    """One session's settings (lower-case names)."""

    values: dict[str, str] = field(default_factory=lambda: dict(DEFAULTS))

    def show(self, name: str) -> str:
        key = name.lower()
        if key in ("transaction isolation level",):
            key = "transaction_isolation"
        elif key == "time zone":
            key = "timezone"
        if key not in self.values:
            raise PgError(UNDEFINED_PARAMETER, f'unrecognized configuration parameter "{name}"')
        return self.values[key]

    def set(self, name: str, value: str) -> str | None:
        """Set ``name``; returns its reported spelling when a ParameterStatus is due."""
        key = name.lower()
        value = _unquote(value)
        allowed = FIXED.get(key)
        if allowed is not None and value.lower().strip() not in allowed:
            raise PgError(
                FEATURE_NOT_SUPPORTED,
                f"{name} cannot be set to {value!r}: Cosmictron answers with "
                f"{name} = {DEFAULTS[key]!r} only",
            )
        if key in ("server_version", "server_encoding", "is_superuser", "server_version_num"):
            raise PgError("55P02", f'parameter "{name}" cannot be changed')
        if allowed is not None:
            value = DEFAULTS[key]
        self.values[key] = value
        return SPELLING.get(key)

    def reset(self, name: str) -> str | None:
        key = name.lower()
        if key == "all":
            self.values = dict(DEFAULTS)
            return None
        if key in DEFAULTS:
            self.values[key] = DEFAULTS[key]
        return SPELLING.get(key)


@dataclass(frozen=True)
class Command:
    """A session statement, parsed: ``verb`` and its arguments."""

    verb: str
    name: str = ""
    value: str = ""


_WORDS = re.compile(r"\s+")
_SET = re.compile(
    r"^set\s+(?:session\s+|local\s+)?(?P<name>[a-z_][a-z_0-9.]*|time\s+zone)"
    r"\s*(?:=|\bto\b|\s)\s*(?P<value>.*)$",
    re.IGNORECASE | re.DOTALL,
)
_SET_TRANSACTION = re.compile(
    r"^set\s+(session\s+characteristics\s+as\s+)?transaction\b", re.IGNORECASE
)
_BEGIN = re.compile(r"^(begin|start\s+transaction)\b(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_COMMIT = re.compile(r"^(commit|end)(\s+(work|transaction))?(\s+and\s+no\s+chain)?$", re.I)
_ROLLBACK = re.compile(r"^(rollback|abort)(\s+(work|transaction))?(\s+and\s+no\s+chain)?$", re.I)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1].replace(value[0] * 2, value[0])
    return value


def classify(statement: str) -> Command | None:
    """The session command ``statement`` is, or None (it goes to the engine)."""
    text = _WORDS.sub(" ", statement.strip())
    lowered = text.lower()
    first = lowered.split(" ", 1)[0]
    if first in ("begin", "start"):
        found = _BEGIN.match(text)
        if found:
            rest = found.group("rest").lower()
            if "read only" in rest:
                return Command("BEGIN", value="read only")
            return Command("BEGIN")
    if first in ("commit", "end") and _COMMIT.match(text):
        return Command("COMMIT")
    if first in ("rollback", "abort") and _ROLLBACK.match(text):
        return Command("ROLLBACK")
    if first == "set":
        if _SET_TRANSACTION.match(text):
            return Command("SET TRANSACTION")
        found = _SET.match(text)
        if found:
            name = _WORDS.sub(" ", found.group("name").lower())
            if name == "time zone":
                name = "timezone"
            value = found.group("value").strip()
            values = [_unquote(v) for v in value.split(",")] if value else [""]
            return Command("SET", name, ", ".join(values))
    if first == "reset":
        return Command("RESET", lowered[6:].strip() or "all")
    if lowered in ("discard all", "discard plans", "discard sequences", "discard temp"):
        return Command("DISCARD", lowered[8:])
    if first == "show":
        return Command("SHOW", text[5:].strip())
    if first == "savepoint":
        return Command("SAVEPOINT", _unquote(text[10:]))
    if first == "release":
        return Command(
            "RELEASE", _unquote(re.sub(r"^release\s+(savepoint\s+)?", "", text, flags=re.I))
        )
    if re.match(r"^(rollback|abort)\s+(work\s+|transaction\s+)?to\b", lowered):
        name = re.sub(r"^\w+\s+(work\s+|transaction\s+)?to\s+(savepoint\s+)?", "", text, flags=re.I)
        return Command("ROLLBACK TO", _unquote(name))
    if first == "deallocate":  # psycopg sends DEALLOCATE ALL after a rollback
        name = re.sub(r"^deallocate\s+(prepare\s+)?", "", text, flags=re.I).strip()
        return Command("DEALLOCATE", "all" if name.lower() == "all" else _unquote(name))
    if first in ("listen", "unlisten", "notify", "prepare", "execute", "declare"):
        return Command("REFUSED", first.upper())
    return None
