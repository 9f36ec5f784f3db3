"""SQLite's answer when a number is compared with text or a blob that is no number.

Cosmictron's columns are typed, so comparing an integer column with text is a type
mismatch, refused. SQLite compares by affinity instead: a numeric column's affinity
turns a text operand that looks like a number into that number, and leaves any other
text (and every blob) as it is; then values of different storage classes order as
NULL < numbers < text < blobs. So ``intcol = 'hello'`` is FALSE (NULL when ``intcol``
is NULL), ``intcol < 'hello'`` TRUE, ``'hello' IN (SELECT intcol …)`` FALSE (NULL when
the rows hold a NULL). This module gives that answer for a constant text that cannot
be a number, or a constant blob, compared with a number; text that looks like a number
(``'12'``) is still refused (docs/reference/sql.md says so).
"""

from __future__ import annotations

import re

from cosmictron.datastore.types import BOOL
from cosmictron.query.coerce import family
from cosmictron.query.plan import Case, Const, Expr, IsNull, type_of

_NUMERIC_TEXT = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")
"""Text SQLite's numeric affinity would turn into a number."""

_NUMBER_FIRST = {"=": False, "IS": False, "<>": True, "IS NOT": True}
_NUMBER_FIRST.update({"<": True, "<=": True, ">": False, ">=": False})
"""``number op other`` when ``other`` is text or a blob (numbers order first)."""

_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def never_a_number(value: Expr, other: Expr) -> bool:
    """Whether ``value`` is a constant text that is no number, or a constant blob,
    and ``other`` a number: SQLite's affinity leaves it unconverted."""
    if not isinstance(value, Const) or family(type_of(other)) != "number":
        return False
    if isinstance(value.value, bytes):
        return True
    return isinstance(value.value, str) and _NUMERIC_TEXT.fullmatch(value.value) is None


def ordered(op: str, number: Expr, number_on_left: bool) -> Expr:
    """``number op text`` (or ``text op number``) as SQLite answers it: the storage
    class order decides, NULL when ``number`` is NULL (``IS``/``IS NOT`` never NULL)."""
    op = op.upper()
    if not number_on_left:
        op = _FLIPPED.get(op, op)
    outcome = Const(_NUMBER_FIRST[op], BOOL)
    if op in ("IS", "IS NOT"):
        return outcome
    return Case(None, ((IsNull(number), Const(None, BOOL)),), outcome, BOOL)
