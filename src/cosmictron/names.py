"""One validator per kind of name, used at every edge: HTTP, WebSocket, CLI, SDK, restore.

A name a caller sends becomes a directory, a file in an archive, a key of the schema or
a line of a log. Each kind has one pattern here, always matched against the *whole*
string (``fullmatch``): ``re.match`` with ``$`` lets ``"name\\n"`` through, which made a
look-alike database whose backup then failed. Patterns are ASCII only, so a Cyrillic
``\u0430`` cannot pass for a Latin ``a``.

=============  ============================================  ===================================
kind           pattern                                       where it comes from
=============  ============================================  ===================================
database       ``[a-z0-9][a-z0-9_-]{0,62}``                  URL paths, CLI, SDK, restore
table, column  ``[A-Za-z_][A-Za-z0-9_]*``, at most            a module's declarations; bulk
reducer        ``limits.identifier_bytes_max`` bytes         loads, exports, calls
backup member  ``[a-z0-9_]+(/[a-z0-9_]+)*(\\.[a-z0-9]+)?``   the members of a backup archive
identity       64 hex digits                                 grants, tokens' subjects
=============  ============================================  ===================================

``check_*`` raise ``InvalidRequest`` (400) naming the kind, the rule and the name as
``repr`` shows it (so a trailing newline or an odd character is visible); ``is_*``
answer without raising.
"""

from __future__ import annotations

import re

from cosmictron import limits
from cosmictron.errors import InvalidRequest

DATABASE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BACKUP_MEMBER = re.compile(r"[a-z0-9_]+(?:/[a-z0-9_]+)*(?:\.[a-z0-9]+)?")
IDENTITY_HEX = re.compile(r"[0-9a-fA-F]{64}")

DATABASE_RULE = "1-63 lowercase letters, digits, '-' or '_', starting with a letter or digit"
IDENTIFIER_RULE = (
    "ASCII letters, digits and '_', not starting with a digit, "
    f"at most {limits.identifier_bytes_max} characters"
)
BACKUP_MEMBER_RULE = "a lowercase relative path of letters, digits and '_', with one extension"
IDENTITY_RULE = "64 hexadecimal digits"


def is_database(name: object) -> bool:
    return isinstance(name, str) and DATABASE.fullmatch(name) is not None


def is_identifier(name: object) -> bool:
    """A table, column or reducer name (ASCII identifier within the length limit)."""
    return (
        isinstance(name, str)
        and len(name) <= limits.identifier_bytes_max
        and IDENTIFIER.fullmatch(name) is not None
    )


def is_backup_member(name: object) -> bool:
    return isinstance(name, str) and BACKUP_MEMBER.fullmatch(name) is not None


def is_identity_hex(text: object) -> bool:
    return isinstance(text, str) and IDENTITY_HEX.fullmatch(text) is not None


def _refuse(kind: str, name: object, rule: str) -> InvalidRequest:
    shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
    return InvalidRequest(f"{kind} name {shown} is not valid: use {rule}")


def check_database(name: object) -> str:
    """``name`` if it is a valid database name. Raises: InvalidRequest."""
    if not is_database(name):
        raise _refuse("database", name, DATABASE_RULE)
    assert isinstance(name, str)
    return name


def check_identifier(name: object, kind: str) -> str:
    """``name`` if it is a valid ``kind`` ("table", "column", "reducer") name.

    Raises: InvalidRequest.
    """
    if not is_identifier(name):
        raise _refuse(kind, name, IDENTIFIER_RULE)
    assert isinstance(name, str)
    return name


def check_table(name: object) -> str:
    return check_identifier(name, "table")


def check_column(name: object) -> str:
    return check_identifier(name, "column")


def check_reducer(name: object) -> str:
    return check_identifier(name, "reducer")


def check_backup_member(name: object) -> str:
    """``name`` if it is a valid member name of a backup archive. Raises: InvalidRequest."""
    if not is_backup_member(name):
        raise _refuse("backup member", name, BACKUP_MEMBER_RULE)
    assert isinstance(name, str)
    return name


def check_identity_hex(text: object) -> str:
    """``text`` if it is an identity in hex. Raises: InvalidRequest."""
    if not is_identity_hex(text):
        shown = repr(text) if len(repr(text)) <= 80 else repr(text)[:77] + "..."
        raise InvalidRequest(f"identity {shown} is not valid: use {IDENTITY_RULE}")
    assert isinstance(text, str)
    return text
