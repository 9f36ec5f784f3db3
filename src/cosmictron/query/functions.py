"""The scalar functions SQL may call: one registry, read by the binder, the compiler
and the docs.

Each ``Function`` says everything about one function as data: its name and arity, what
kind of value each argument must be (checked when the query is bound, so
``LOWER(age)`` is a ``SqlError`` pointing at it), the type of its result, what NULL
arguments do, and how it runs. Nothing else dispatches on function names: the binder
(``resolve_functions.py``) looks a name up here, the compiler (``expressions.py``) runs
``run`` under the declared NULL rule, and docs/reference/sql.md holds the table
``reference_table()`` renders (a test checks they agree; regenerate with
``python -m cosmictron.query.functions``).

The semantics are SQLite's (the oracle tests compare against the standard library's
sqlite3), with two deliberate differences inherited from the rest of the engine:
arguments are typed (a text function refuses a number column instead of reading its
digits), and ``LIKE`` is case-sensitive.

A function that can build a value larger than its arguments (``REPLACE``) declares
``growth``: the result's size computed from the arguments, checked against the query's
value limit (``limits.sql_value_bytes_max``) before the value is built.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cosmictron.errors import SqlError
from cosmictron.query.conversions import numeric_value, to_integer, to_real, to_text, type_name
from cosmictron.query.json_functions import (
    json_array_length,
    json_arrow,
    json_extract,
    json_type,
    json_valid,
)

ARGUMENT_KINDS = {
    "any": "any value",
    "number": "a number",
    "integer": "a number (its integer part is used)",
    "text": "text",
    "text|blob": "text or a blob",
}
"""What an argument may be (``Function.params``), as the binder checks it."""

RESULTS = {
    "integer": "integer",
    "real": "real",
    "text": "text",
    "bool": "bool",
    "first": "the first argument's type",
    "common": "the arguments' common type",
    "any": "any (from the JSON)",
}
"""What a result's static type is (``Function.result``)."""


@dataclass(frozen=True)
class Function:
    """One scalar function.

    Attributes:
        name: upper case, as the binder looks it up.
        syntax: how it is written, for the docs (``SUBSTR(x, start[, length])``).
        min_args, max_args: arity (``max_args`` None: any number).
        params: the kind of each argument (``ARGUMENT_KINDS``); the last repeats.
        result: the result's static type (``RESULTS``).
        nulls: ``strict`` (any NULL argument makes the result NULL, and ``run`` never
            sees one), ``first`` (the first argument that is not NULL; the ones after
            it are not evaluated, as SQLite's COALESCE) or ``own`` (``run`` handles
            NULL; ``null_rule`` says how).
        same_family: every argument must compare with the others (COALESCE, MIN, ...);
            a literal takes the type of the first typed argument.
        run: the function over Python values.
        summary: one line for the docs.
        null_rule: the NULL behaviour in words, for the docs.
        growth: the result's size in bytes from the arguments, before it is built.
    """

    name: str
    syntax: str
    min_args: int
    max_args: int | None
    params: tuple[str, ...]
    result: str
    nulls: str
    run: Callable[..., Any]
    summary: str
    same_family: bool = False
    null_rule: str = "NULL if any argument is NULL"
    growth: Callable[..., int] | None = None

    def param(self, position: int) -> str:
        """The kind of argument ``position`` (the last kind repeats)."""
        return self.params[min(position, len(self.params) - 1)]

    def arity_text(self) -> str:
        if self.max_args is None:
            return f"{self.min_args} or more"
        if self.min_args == self.max_args:
            return str(self.min_args)
        return f"{self.min_args} to {self.max_args}"


# -- implementations --------------------------------------------------------------------


def _abs(value: Any) -> Any:
    return abs(numeric_value(value))


def _coalesce(*values: Any) -> Any:
    for value in values:
        if value is not None:
            return value
    return None


def _nullif(a: Any, b: Any) -> Any:
    if a is None:
        return None
    return None if b is not None and a == b else a


def _length(value: Any) -> int:
    if type(value) is bytes:
        return len(value)
    text = to_text(value)
    cut = text.find("\x00")  # SQLite counts the characters before the first NUL
    return len(text) if cut < 0 else cut


_UPPER = {code: code - 32 for code in range(ord("a"), ord("z") + 1)}
_LOWER = {code: code + 32 for code in range(ord("A"), ord("Z") + 1)}


def _upper(value: str) -> str:
    """SQLite's UPPER: ASCII letters only (SQLite without ICU leaves the rest)."""
    return value.translate(_UPPER)


def _lower(value: str) -> str:
    return value.translate(_LOWER)


def _int32(number: int) -> int:
    """The low 32 bits of a 64-bit integer, signed: SQLite's ``sqlite3_value_int``,
    which SUBSTR reads its start and length with (``SUBSTR(x, 1 << 32)`` starts at 0)."""
    return ((number + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _substr(value: Any, start: Any, length: Any = None) -> Any:
    """SQLite's SUBSTR, its index arithmetic included: 1-based, a negative start counts
    from the end, start 0 takes one character fewer, a negative length takes the
    characters before start."""
    size = len(value)
    p1 = _int32(to_integer(start))
    negative = False
    if length is None:
        p2 = 1 << 62
    else:
        p2 = _int32(to_integer(length))
        if p2 < 0:
            p2, negative = -p2, True
    if p1 < 0:
        p1 += size
        if p1 < 0:
            p2 += p1
            if p2 < 0:
                p2 = 0
            p1 = 0
    elif p1 > 0:
        p1 -= 1
    elif p2 > 0:
        p2 -= 1
    if negative:
        p1 -= p2
        if p1 < 0:
            p2 += p1
            p1 = 0
    if p1 + p2 > size:
        p2 = max(size - p1, 0)
    return value[p1 : p1 + p2]


def _trim(value: str, characters: str = " ") -> str:
    return value.strip(characters)


def _ltrim(value: str, characters: str = " ") -> str:
    return value.lstrip(characters)


def _rtrim(value: str, characters: str = " ") -> str:
    return value.rstrip(characters)


def _replace(value: Any, old: Any, new: Any) -> Any:
    if value is None or old is None:
        return None
    if old == "":
        return value  # even when new is NULL, as in SQLite
    return None if new is None else value.replace(old, new)


def _replace_growth(value: Any, old: Any, new: Any) -> int:
    if value is None or old is None or new is None:
        return 0
    if old == "" or len(new) <= len(old):
        return len(value)
    return len(value) + value.count(old) * (len(new) - len(old))


def _instr(value: Any, needle: Any) -> int:
    return value.find(needle) + 1


_ROUNDERS = [float(f"5e-{i + 1}") for i in range(10)]  # the C literals 5.0e-01 …


def _round(value: Any, digits: Any = 0) -> Any:
    """SQLite's ROUND: always a real; half away from zero, on the value as SQLite's own
    printf sees it (which nudges it by 3e-16 of itself, so ROUND(2.675, 2) is 2.68)."""
    if value is None or digits is None:
        return None
    places = min(max(to_integer(digits), 0), 30)
    real = to_real(numeric_value(value))
    if not -4503599627370496.0 <= real <= 4503599627370496.0:
        return real  # no fractional part to round
    if places == 0:
        return float(int(real + (-0.5 if real < 0 else 0.5)))
    magnitude = abs(real)
    rounder = decimal.Decimal(_ROUNDERS[places % 10])
    for _ in range(places // 10):
        rounder *= decimal.Decimal.from_float(1e-10)  # the double, as C uses it
    exponent = math.frexp(magnitude)[1] - 1 if magnitude else -1023
    if places + int(exponent / 3) < 15:
        rounder += decimal.Decimal(magnitude) * decimal.Decimal.from_float(3e-16)
    with decimal.localcontext() as context:
        context.prec = 60
        nudged = decimal.Decimal(magnitude) + rounder
        # printf writes at most 16 significant digits, then stops (no rounding there).
        kept = min(places, 15 - nudged.adjusted())
        digits_kept = nudged.quantize(decimal.Decimal(1).scaleb(-kept), decimal.ROUND_DOWN)
    result = float(digits_kept)
    return -result if real < 0 else result


def _minimum(*values: Any) -> Any:
    return min(values)


def _maximum(*values: Any) -> Any:
    return max(values)


@lru_cache(maxsize=256)
def like_pattern(pattern: str, escape: str | None) -> Callable[[str], Any]:
    """A matcher for a case-sensitive LIKE pattern with an optional escape character.

    >>> bool(like_pattern("10!%", "!")("10%")), bool(like_pattern("10!%", "!")("100"))
    (True, False)
    """
    parts = []
    escaping = False
    for char in pattern:
        if escaping:
            parts.append(re.escape(char))
            escaping = False
        elif escape is not None and char == escape:
            escaping = True
        elif char == "%":
            parts.append(".*")
        elif char == "_":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    if escaping:  # a trailing escape character matches nothing, as in SQLite
        return lambda text: None
    return re.compile("".join(parts), re.DOTALL).fullmatch


def _like(pattern: Any, value: Any, escape: Any = None) -> Any:
    if pattern is None or value is None:
        return None
    if escape is not None and len(to_text(escape)) != 1:
        raise SqlError("ESCAPE expression must be a single character")
    return like_pattern(to_text(pattern), escape)(to_text(value)) is not None


@lru_cache(maxsize=256)
def glob_pattern(pattern: str) -> Callable[[str], Any]:
    """A matcher for a GLOB pattern: ``*`` any run, ``?`` one character, ``[...]`` a
    set (``[^...]`` its complement, ``a-z`` a range); case-sensitive.

    >>> bool(glob_pattern("a[b-d]*")("acx")), bool(glob_pattern("a[^b]?")("abc"))
    (True, False)
    """
    parts: list[str] = []
    position = 0
    while position < len(pattern):
        char = pattern[position]
        position += 1
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        elif char == "[":
            end = position
            if end < len(pattern) and pattern[end] == "^":
                end += 1
            if end < len(pattern) and pattern[end] == "]":
                end += 1
            end = pattern.find("]", end)
            if end < 0:  # an unclosed set matches nothing, as in SQLite
                return lambda text: None
            body = pattern[position:end]
            position = end + 1
            negate = body.startswith("^")
            if negate:
                body = body[1:]
            members = []
            index = 0
            while index < len(body):
                if index + 2 < len(body) and body[index + 1] == "-":
                    low, high = body[index], body[index + 2]
                    members.append(f"{re.escape(low)}-{re.escape(high)}" if low <= high else "")
                    index += 3
                else:
                    members.append(re.escape(body[index]))
                    index += 1
            inner = "".join(members)
            if not inner:
                parts.append("." if negate else "(?!)")
            else:
                parts.append(f"[{'^' if negate else ''}{inner}]")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.DOTALL).fullmatch


def _glob(pattern: Any, value: Any) -> Any:
    return glob_pattern(to_text(pattern))(to_text(value)) is not None


# -- the registry -----------------------------------------------------------------------

_ALL = [
    Function("ABS", "ABS(x)", 1, 1, ("number",), "first", "strict", _abs, "absolute value"),
    Function(
        "COALESCE",
        "COALESCE(x, y, ...)",
        2,
        None,
        ("any",),
        "common",
        "first",
        _coalesce,
        "the first argument that is not NULL",
        same_family=True,
        null_rule="NULL only if every argument is NULL",
    ),
    Function(
        "IFNULL",
        "IFNULL(x, y)",
        2,
        2,
        ("any",),
        "common",
        "first",
        _coalesce,
        "x if it is not NULL, else y",
        same_family=True,
        null_rule="NULL only if both are NULL",
    ),
    Function(
        "NULLIF",
        "NULLIF(x, y)",
        2,
        2,
        ("any",),
        "first",
        "own",
        _nullif,
        "NULL if x = y, else x",
        same_family=True,
        null_rule="NULL if x is NULL; x if y is NULL",
    ),
    Function(
        "LENGTH",
        "LENGTH(x)",
        1,
        1,
        ("any",),
        "integer",
        "strict",
        _length,
        "characters in text (before a NUL), bytes in a blob, characters of a number's text",
    ),
    Function(
        "LOWER",
        "LOWER(x)",
        1,
        1,
        ("text",),
        "text",
        "strict",
        _lower,
        "ASCII letters to lower case (as SQLite without ICU)",
    ),
    Function(
        "UPPER",
        "UPPER(x)",
        1,
        1,
        ("text",),
        "text",
        "strict",
        _upper,
        "ASCII letters to upper case (as SQLite without ICU)",
    ),
    Function(
        "SUBSTR",
        "SUBSTR(x, start[, length])",
        2,
        3,
        ("text|blob", "integer"),
        "first",
        "strict",
        _substr,
        "part of text or a blob; 1-based, a negative start counts from the end, "
        "a negative length takes what precedes start",
    ),
    Function(
        "TRIM",
        "TRIM(x[, characters])",
        1,
        2,
        ("text",),
        "text",
        "strict",
        _trim,
        "x without the characters (default: spaces) at both ends",
    ),
    Function(
        "LTRIM",
        "LTRIM(x[, characters])",
        1,
        2,
        ("text",),
        "text",
        "strict",
        _ltrim,
        "x without the characters (default: spaces) at its start",
    ),
    Function(
        "RTRIM",
        "RTRIM(x[, characters])",
        1,
        2,
        ("text",),
        "text",
        "strict",
        _rtrim,
        "x without the characters (default: spaces) at its end",
    ),
    Function(
        "REPLACE",
        "REPLACE(x, old, new)",
        3,
        3,
        ("text",),
        "text",
        "own",
        _replace,
        "x with every occurrence of old replaced by new (old '' "
        "changes nothing); bounded by the value limit",
        null_rule="NULL if x or old is NULL; x if old is ''; else NULL if new is NULL",
        growth=_replace_growth,
    ),
    Function(
        "INSTR",
        "INSTR(x, y)",
        2,
        2,
        ("text|blob",),
        "integer",
        "strict",
        _instr,
        "1-based position of the first y in x, 0 if none",
        same_family=True,
    ),
    Function(
        "ROUND",
        "ROUND(x[, digits])",
        1,
        2,
        ("number", "integer"),
        "real",
        "strict",
        _round,
        "x rounded half away from zero to digits (0 to 30) places; always a real",
    ),
    Function(
        "MIN",
        "MIN(x, y, ...)",
        2,
        None,
        ("any",),
        "common",
        "strict",
        _minimum,
        "the smallest argument (with one argument, MIN is the aggregate)",
        same_family=True,
    ),
    Function(
        "MAX",
        "MAX(x, y, ...)",
        2,
        None,
        ("any",),
        "common",
        "strict",
        _maximum,
        "the largest argument (with one argument, MAX is the aggregate)",
        same_family=True,
    ),
    Function(
        "TYPEOF",
        "TYPEOF(x)",
        1,
        1,
        ("any",),
        "text",
        "own",
        type_name,
        "'null', 'integer', 'real', 'text' or 'blob'",
        null_rule="'null' for NULL",
    ),
    Function(
        "LIKE",
        "x LIKE pattern [ESCAPE c]",
        2,
        3,
        ("text",),
        "bool",
        "strict",
        _like,
        "pattern match: % any run, _ one character, c escapes the next; case-sensitive",
    ),
    Function(
        "GLOB",
        "x GLOB pattern",
        2,
        2,
        ("text",),
        "bool",
        "strict",
        _glob,
        "pattern match: * any run, ? one character, [...] a set, [^...] its "
        "complement; case-sensitive",
    ),
]

_ALL += [
    Function(
        "JSON_EXTRACT",
        "JSON_EXTRACT(json, path, ...)",
        2,
        None,
        ("text",),
        "any",
        "strict",
        json_extract,
        "the value at path ($.key, $[n], $[#-n]) as SQL: null NULL, true 1, false 0, "
        "arrays and objects as JSON text; several paths: a JSON array; also json ->> path",
    ),
    Function(
        "->",
        "json -> path",
        2,
        2,
        ("text",),
        "text",
        "strict",
        json_arrow,
        "the value at path as JSON text (a string keeps its quotes); a bare key or index is a path",
    ),
    Function(
        "JSON_TYPE",
        "JSON_TYPE(json[, path])",
        1,
        2,
        ("text",),
        "text",
        "strict",
        json_type,
        "null, true, false, integer, real, text, array or object; NULL if no such path",
    ),
    Function(
        "JSON_VALID",
        "JSON_VALID(x)",
        1,
        1,
        ("text",),
        "bool",
        "own",
        json_valid,
        "whether x is well-formed JSON",
        null_rule="FALSE for NULL (as SQLite 3.40 has it)",
    ),
    Function(
        "JSON_ARRAY_LENGTH",
        "JSON_ARRAY_LENGTH(json[, path])",
        1,
        2,
        ("text",),
        "integer",
        "strict",
        json_array_length,
        "elements of the array (at path); 0 if it is not an array",
    ),
]

# -- bitwise operators (SQLite's &, |, ~, <<, >> on 64-bit integers) --------------------

_U64 = (1 << 64) - 1


def _signed(bits: int) -> int:
    """The low 64 bits of ``bits`` read as a signed 64-bit integer (two's complement)."""
    bits &= _U64
    return bits - (1 << 64) if bits >> 63 else bits


def _bit_and(a: Any, b: Any) -> int:
    return to_integer(a) & to_integer(b)


def _bit_or(a: Any, b: Any) -> int:
    return to_integer(a) | to_integer(b)


def _bit_not(a: Any) -> int:
    return ~to_integer(a)


def _shift(value: Any, amount: Any, left: bool) -> int:
    """SQLite's OP_ShiftLeft/OP_ShiftRight: 64-bit two's complement, a negative amount
    shifts the other way, 64 or more places leave 0 (or -1 for a negative value shifted
    right); a right shift keeps the sign. ``1 << 63`` is -9223372036854775808.

    >>> _shift(1, 63, True), _shift(1, 64, True), _shift(8, -1, True), _shift(-1, 100, False)
    (-9223372036854775808, 0, 4, -1)
    """
    number, places = to_integer(value), to_integer(amount)
    if places < 0:
        left, places = not left, -places
    if places >= 64:
        return 0 if number >= 0 or left else -1
    if left:
        return _signed(number << places)
    return number >> places  # Python's >> on a negative int keeps the sign, as SQLite


def _shift_left(value: Any, amount: Any) -> int:
    return _shift(value, amount, True)


def _shift_right(value: Any, amount: Any) -> int:
    return _shift(value, amount, False)


def _bitwise(name: str, syntax: str, run: Callable[..., int], summary: str) -> Function:
    arity = 1 if name == "~" else 2
    return Function(name, syntax, arity, arity, ("integer",), "integer", "strict", run, summary)


_ALL += [
    _bitwise("&", "x & y", _bit_and, "bitwise AND of the 64-bit integers (a real's integer part)"),
    _bitwise("|", "x | y", _bit_or, "bitwise OR of the 64-bit integers (a real's integer part)"),
    _bitwise("~", "~x", _bit_not, "bitwise NOT (ones' complement) of the 64-bit integer"),
    _bitwise(
        "<<",
        "x << n",
        _shift_left,
        "x shifted left n bits in 64-bit two's complement (1 << 63 is the smallest integer); "
        "a negative n shifts right, n of 64 or more gives 0",
    ),
    _bitwise(
        ">>",
        "x >> n",
        _shift_right,
        "x shifted right n bits, keeping the sign; a negative n shifts left, n of 64 or "
        "more gives 0 (-1 for a negative x)",
    ),
]

# -- vectors (issue 14, agents-memory: semantic memory from SQL) ------------------------


def _vector_of(value: Any) -> list[float]:
    """A Vector column's value (a tuple of floats), or a JSON array of numbers as text."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise SqlError(f"VECTOR_DISTANCE: text {value[:40]!r} is not a JSON array") from None
    if not isinstance(value, list | tuple) or not all(type(x) in (int, float) for x in value):
        raise SqlError(
            f"VECTOR_DISTANCE takes Vector values or JSON arrays of numbers, got {type_name(value)}"
        )
    return [float(x) for x in value]


def _vector_distance(a: Any, b: Any) -> float:
    """Cosine distance, 1 - cos(a, b): 0 for the same direction, 2 for opposite ones."""
    x, y = _vector_of(a), _vector_of(b)
    if len(x) != len(y):
        raise SqlError(f"VECTOR_DISTANCE: vectors of {len(x)} and {len(y)} numbers")
    dot = sum(p * q for p, q in zip(x, y, strict=True))
    norms = math.sqrt(sum(p * p for p in x)) * math.sqrt(sum(q * q for q in y))
    return 1.0 - dot / norms if norms else 1.0


_ALL += [
    Function(
        "VECTOR_DISTANCE",
        "VECTOR_DISTANCE(a, b)",
        2,
        2,
        ("any",),
        "real",
        "strict",
        _vector_distance,
        "cosine distance 1 - cos(a, b) of two Vector values or JSON arrays of numbers; "
        "ORDER BY it for nearest first",
    ),
]


FUNCTIONS: dict[str, Function] = {function.name: function for function in _ALL}
"""Every scalar function, by upper-case name."""

ROW = "ROW"
"""The internal function that makes a row value ``(a, b)``: the operand of ``(a, b) IN
(SELECT x, y ...)`` and the argument pair of ``GROUP_CONCAT(x, separator)``. The binder
makes it (``subquery_bind.py``, ``resolve.py``); SQL cannot call it by name
(``lookup`` does not find it) and the docs table does not list it."""

INTERNAL: dict[str, Function] = {
    ROW: Function(
        ROW, "(x, y, ...)", 2, None, ("any",), "any", "own", lambda *values: values, "a row value"
    )
}
"""Functions the binder makes but SQL cannot name (not in ``FUNCTIONS``, nor the docs)."""


def lookup(name: str) -> Function | None:
    return FUNCTIONS.get(name.upper())


def runnable(name: str) -> Function:
    """The function a bound ``Func`` names: a registered one or an ``INTERNAL`` one."""
    found = FUNCTIONS.get(name)
    return INTERNAL[name] if found is None else found


def reference_table() -> str:
    """The functions table of docs/reference/sql.md, rendered from the registry."""
    lines = [
        "| function | arguments | result | NULL | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for function in _ALL:
        kinds = ", ".join(dict.fromkeys(ARGUMENT_KINDS[k] for k in function.params))
        lines.append(
            f"| `{function.syntax}` | {function.arity_text()}: {kinds} | "
            f"{RESULTS[function.result]} | {function.null_rule} | {function.summary} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover - prints the docs table
    print(reference_table(), end="")
