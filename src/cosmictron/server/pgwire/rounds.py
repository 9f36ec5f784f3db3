"""A prepared point query's round trip recognised by its bytes (issue 22).

A driver repeating a prepared point query sends the same messages every time except
for the key: asyncpg's Bind (one binary int8), Execute, Sync; psycopg's Bind (the key
as text), Describe portal, Execute, Sync. Read generically, each round costs a parse of
four messages into tuples, a dispatch per message, a portal's parameter loop and the
point read's checks that the statement is still a point read, all giving the same
answers as the round before. So once a round of a point statement has been answered
generically (``Session._fast``), the session keeps its bytes as a ``Round``: the
Bind's bytes around the key, and the Describe/Execute/Sync that followed it. A later
round whose bytes are those, with another key, is the same request with another key
(the same portal, statement, formats and row limit), and the session answers it in one
step (``Session._repeat``), which still does per round everything the generic path
does per Execute: the key decoded and range-checked, the portal opened, the query
rate spent, the rights, schema and rows budget checked by ``host.sql.point_rows``,
the lookup under the writer lock. Anything else, or the same bytes once the statement,
its shape, its cache entry or the module changed, goes the generic way.

``match`` is the only byte work; it is compiled in ``_rows.pyx`` where built
(``COSMICTRON_PURE`` keeps this one).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cosmictron.query.cache import Prepared
    from cosmictron.server.pgwire.shapes import Shape

from cosmictron.server.pgwire import pgtypes

_INT32_AT = struct.Struct("!i").unpack_from

ROUNDS_MAX = 4
"""Rounds a session keeps (the latest learnt first): a client alternating a few
prepared point statements keeps each one's; more would only cost misses."""


@dataclass(slots=True)
class Round:
    """What a repeated round's bytes must be, and what its answer is made of."""

    head: bytes
    """The Bind's body up to its one parameter's length: portal and statement names,
    the parameter format codes, the parameter count (1)."""
    tail: bytes
    """The Bind's body after the parameter: its result format codes."""
    rest: bytes
    """The messages after the Bind up to and including Sync: [Describe portal,]
    Execute (row limit 0), Sync."""
    statement_name: str
    portal_name: str
    statement: Any
    """The ``session.Statement`` the round was learnt for (a Parse of the same name
    makes another one: no match). Typed ``Any``: the session imports this module."""
    point: tuple[Any, tuple[type, ...], Prepared, bool]
    """``statement.point`` when learnt (weighed once): a new entry, no match."""
    shape: Shape
    """``statement.shape`` when learnt: the columns the writer and description are for."""
    oid: int
    binary: bool
    value_type: type
    """The Python type of the key the entry was found for (``int``)."""
    after: int
    """The bytes after the key to the end of the round (``len(tail) + len(rest)``)."""
    formats: tuple[int, ...]
    """The Bind's result formats (the portal's)."""
    described: bytes | None
    """The RowDescription a Describe portal answered, None when the round has none."""
    writer: Callable[[Any], bytes]
    """The DataRow writer for the statement's columns in ``formats``."""
    int8: bool = False
    """A binary int8 key (asyncpg's): 8 bytes read as ``decode_param`` reads them."""

    def __post_init__(self) -> None:
        self.int8 = self.binary and self.oid == pgtypes.INT8


def _match(data: bytes, at: int, head: bytes, tail: bytes, rest: bytes, bytes_max: int) -> int:
    """Where in ``data`` the key of a round starting at ``at`` begins, when the bytes
    there are a Bind of ``head`` + one non-NULL parameter + ``tail`` followed by
    ``rest``, all buffered and the Bind within ``bytes_max``; -1 otherwise. The key is
    ``data[found + 4 : found + 4 + length]``, its length the int32 at ``found``."""
    if at < 0:
        raise ValueError("a negative offset")
    size = len(data)
    if size - at < 5 or data[at] != 66:  # b"B"
        return -1
    (length,) = _INT32_AT(data, at + 1)
    end = at + 1 + length
    if length > bytes_max or end + len(rest) > size or not data.startswith(head, at + 5):
        return -1
    found = at + 5 + len(head)
    if found + 4 > end:
        return -1
    (value,) = _INT32_AT(data, found)
    if value < 0 or found + 4 + value + len(tail) != end:
        return -1
    if not data.startswith(tail, end - len(tail)) or not data.startswith(rest, end):
        return -1
    return found


match: Callable[[bytes, int, bytes, bytes, bytes, int], int] = _match
"""``_match``, compiled where ``_rows.pyx`` is built."""
if not os.environ.get("COSMICTRON_PURE"):
    try:
        from cosmictron.server.pgwire._rows import match_round as match
    except ImportError:  # built without a compiler: the Python one serves
        pass
MATCH_COMPILED = match is not _match
