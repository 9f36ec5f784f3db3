"""SQLite's value conversions: what CAST, the text functions and ``||`` turn values into.

SQLite is the oracle of the SQL engine, so a value becomes text, an integer or a real
number exactly as it does there (measured against the standard library's sqlite3):

* text of an integer is its digits; of a real, ``%!.15g`` (15 significant digits, always
  a ``.0`` or an exponent: ``1.0``, ``0.333333333333333``, ``1.0e+20``); of a blob, its
  bytes read as UTF-8; a bool is the integer 1 or 0 (SQLite has no bool).
* text to an integer takes the longest prefix that reads as one after leading spaces
  (``' 12abc'`` is 12, ``'1.9'`` is 1, ``'abc'`` is 0), clamped to 64 bits; to a real,
  the longest prefix that reads as a real (``'1e3x'`` is 1000.0); NUMERIC gives an
  integer when the prefix is one (or a real with no fraction that fits), else a real.
* a real to an integer truncates toward zero, clamped to 64 bits.

Values of this project's own types (Identity, Timestamp, enum members, ...) have no
SQLite form; as text they are their usual text (hex, RFC 3339, the member name).
"""

from __future__ import annotations

import enum
import math
import re
from typing import Any

I64_MIN = -(1 << 63)
I64_MAX = (1 << 63) - 1

_INTEGER_PREFIX = re.compile(r"\s*([+-]?\d+)")
_REAL_PREFIX = re.compile(r"\s*([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)")


def real_text(value: float) -> str:
    """A real number as SQLite writes it (``%!.15g``).

    >>> real_text(1.0), real_text(0.1 + 0.2), real_text(1e20), real_text(1 / 3), real_text(-0.0)
    ('1.0', '0.3', '1.0e+20', '0.333333333333333', '0.0')
    """
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0.0"
    text = format(value, ".15g")
    if "e" in text:
        mantissa, exponent = text.split("e")
        if "." not in mantissa:
            mantissa += ".0"
        return f"{mantissa}e{exponent}"
    return text if "." in text else text + ".0"


def to_text(value: Any) -> Any:
    """``CAST(value AS TEXT)`` (None stays NULL).

    >>> to_text(3), to_text(2.5), to_text(True), to_text(b"hi"), to_text(None)
    ('3', '2.5', '1', 'hi', None)
    """
    kind = type(value)
    if kind is str or value is None:
        return value
    if kind is bool:
        return "1" if value else "0"
    if kind is int:
        return str(value)
    if kind is float:
        return real_text(value)
    if kind is bytes:
        return value.decode("utf-8", "replace")
    if isinstance(value, enum.Enum):
        return value.name
    return str(value)


def _clamp(number: int) -> int:
    return min(max(number, I64_MIN), I64_MAX)


def _real_from_text(text: str) -> float:
    found = _REAL_PREFIX.match(text)
    if found is None:
        return 0.0
    try:
        return float(found.group(1))
    except OverflowError:  # pragma: no cover - float() gives inf, not an error
        return math.inf


def to_integer(value: Any) -> Any:
    """``CAST(value AS INTEGER)``.

    >>> to_integer(" 12abc"), to_integer("1.9"), to_integer(-1.9), to_integer(1e19), to_integer("x")
    (12, 1, -1, 9223372036854775807, 0)
    """
    kind = type(value)
    if value is None or kind is int:
        return value
    if kind is bool:
        return int(value)
    if kind is float:
        if math.isnan(value):
            return 0
        if math.isinf(value):
            return I64_MAX if value > 0 else I64_MIN
        return _clamp(int(value))
    text = to_text(value)
    found = _INTEGER_PREFIX.match(text)
    return 0 if found is None else _clamp(int(found.group(1)))


def to_real(value: Any) -> Any:
    """``CAST(value AS REAL)``.

    >>> to_real(3), to_real("1e3x"), to_real(".5"), to_real("abc")
    (3.0, 1000.0, 0.5, 0.0)
    """
    kind = type(value)
    if value is None or kind is float:
        return value
    if kind is int or kind is bool:
        return float(value)
    return _real_from_text(to_text(value))


def to_numeric(value: Any) -> Any:
    """``CAST(value AS NUMERIC)``: an integer where the value is one, else a real.

    >>> to_numeric("12"), to_numeric("1.5"), to_numeric("1e3"), to_numeric(2.0), to_numeric("x")
    (12, 1.5, 1000, 2.0, 0)
    """
    kind = type(value)
    if value is None or kind is int or kind is float:
        return value
    if kind is bool:
        return int(value)
    text = to_text(value)
    found = _REAL_PREFIX.match(text)
    if found is None:
        return 0
    literal = found.group(1)
    if re.fullmatch(r"[+-]?\d+", literal):
        number = int(literal)
        if I64_MIN <= number <= I64_MAX:
            return number
        return float(number)
    real = float(literal)
    if real.is_integer() and abs(real) < 2**63 and not math.isinf(real):
        return int(real)
    return real


def to_blob(value: Any) -> Any:
    """``CAST(value AS BLOB)``: text as UTF-8, numbers as their text.

    >>> to_blob("hé"), to_blob(12), to_blob(b"x")
    (b'h\\xc3\\xa9', b'12', b'x')
    """
    if value is None or type(value) is bytes:
        return value
    data = getattr(value, "data", None)
    if isinstance(data, bytes):  # Identity, ConnectionId
        return data
    return str(to_text(value)).encode()


def numeric_value(value: Any) -> Any:
    """The number SQLite uses where it needs one (``ABS('x')``, a CASE condition)."""
    kind = type(value)
    if kind is int or kind is float or value is None:
        return value
    if kind is bool:
        return int(value)
    return to_numeric(value)


def truth(value: Any) -> Any:
    """SQLite's truth of a value: NULL stays NULL, a number is TRUE when non-zero, text
    when its numeric prefix is.

    >>> truth(None), truth(0), truth(2.5), truth("1x"), truth("abc")
    (None, False, True, True, False)
    """
    if value is None:
        return None
    kind = type(value)
    if kind is bool:
        return value
    if kind is int or kind is float:
        return value != 0
    return numeric_value(value) != 0


def type_name(value: Any) -> str:
    """``TYPEOF(value)``: null, integer, real, text or blob.

    This project's own types report the storage SQLite would give them: Identity and
    ConnectionId ``blob``, Timestamp and TimeDuration ``integer`` (microseconds), enum
    members ``text``; nested values and lists ``blob``.

    >>> type_name(None), type_name(True), type_name(1.5), type_name("x"), type_name(b"")
    ('null', 'integer', 'real', 'text', 'blob')
    """
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool or kind is int:
        return "integer"
    if kind is float:
        return "real"
    if kind is str or isinstance(value, enum.Enum):
        return "text"
    if hasattr(value, "micros_since_epoch") or hasattr(value, "micros"):
        return "integer"
    return "blob"


def affinity(type_text: str) -> str:
    """SQLite's affinity of a declared type name (its rules, by substring, in order).

    >>> [affinity(t) for t in ("BIGINT", "VARCHAR(10)", "BLOB", "DOUBLE", "DECIMAL", "SIGNED")]
    ['INTEGER', 'TEXT', 'BLOB', 'REAL', 'NUMERIC', 'NUMERIC']
    """
    upper = type_text.upper()
    if "INT" in upper:
        return "INTEGER"
    if "CHAR" in upper or "CLOB" in upper or "TEXT" in upper:
        return "TEXT"
    if "BLOB" in upper or "BINARY" in upper or not upper:
        return "BLOB"
    if "REAL" in upper or "FLOA" in upper or "DOUB" in upper:
        return "REAL"
    return "NUMERIC"


AFFINITY_CONVERSIONS = {
    "INTEGER": to_integer,
    "REAL": to_real,
    "NUMERIC": to_numeric,
    "TEXT": to_text,
    "BLOB": to_blob,
}
"""What CAST to each SQLite affinity does to a value."""
