"""JSON from outside the process, decoded within bounds: the one decoder every edge uses.

Python's ``json`` (like every fast decoder) recurses once per level of nesting, and so
does everything that walks the value afterwards (``repr``, ``json.dumps``, the argument
checks), so a 100,000-deep array is a ``RecursionError`` somewhere, that is a 500. Here
the depth is measured first, without recursing and without decoding: a text with fewer
brackets than the limit cannot be too deep (two ``str.count`` calls, the common case);
otherwise one left-to-right scan counts open brackets outside strings and stops at the
first one past the limit. Text that is not UTF-8, not JSON or too deep is an
``InvalidRequest`` (400) naming what was wrong and, for depth, the limit.

Used for call arguments and SQL parameters (HTTP), WebSocket messages, NDJSON rows and
CSV cells of bulk loads, and a backup archive's manifest.

JSON out is strict (``dumps``): ``json.dumps`` writes a bare ``Infinity`` or ``NaN`` for a
non-finite float by default, which browsers, serde and Go refuse for the whole message.
Every JSON the server writes goes through ``dumps``, which refuses them (``NotFinite``);
the datastore refuses to store them and typed arguments refuse them on input, so only
an untyped value (a SQL parameter, a reducer's unannotated return value) is checked
with ``first_non_finite``.
"""

from __future__ import annotations

import json
import json.scanner
import math
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from cosmictron import limits
from cosmictron.errors import InvalidRequest, NotFinite, TooDeep

# typeshed types make_scanner's argument as itself; it takes the decoder whose settings it
# copies (json/scanner.py).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.scanner.make_scanner(
    json.JSONDecoder()  # type: ignore[arg-type]
)
"""``json.loads``'s scanner: the C one, with the default decoder's settings."""
_WHITESPACE = " \t\n\r"
_STRINGS = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
"""A JSON string, escapes included; possessive, so it never backtracks."""
_NOT_BRACKETS = re.compile(r"[^\[\]{}]++")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def loads(data: str | bytes, what: str, depth_max: int | None = None) -> Any:
    """Decode ``data`` (UTF-8 bytes or text) as one JSON value.

    Args:
        what: names the input in errors ("the request body", "the message").
        depth_max: the deepest nesting accepted; ``limits.json_depth_max`` by default.

    Raises:
        TooDeep: arrays and objects nest deeper than ``depth_max`` (400, ``too_deep``).
        InvalidRequest: not UTF-8, or not valid JSON.
    """
    text = decode_utf8(data, what) if not isinstance(data, str) else data
    limit = limits.json_depth_max if depth_max is None else depth_max
    if text.count("[") + text.count("{") > limit:  # else it cannot be too deep
        check_depth(text, what, limit)
    if text and text[0] not in _WHITESPACE:
        # What ``json.loads`` runs, called directly: the same C scanner (``json.loads``
        # -> ``JSONDecoder.decode`` -> ``raw_decode`` -> it) without the three Python
        # frames around it. Anything but one whole value without surrounding whitespace
        # goes the general way below, which decides and names the error alike.
        try:
            value, end = _SCAN(text, 0)
        except (StopIteration, ValueError):
            pass
        else:
            if end == len(text):
                return value
    try:
        return json.loads(text)
    except RecursionError:  # cannot happen within the default limit; kept as a guard
        raise TooDeep(f"{what} is nested too deeply to decode") from None
    except ValueError as exc:
        raise InvalidRequest(f"{what} is not valid JSON: {exc}") from None


def decode_utf8(data: bytes | bytearray | memoryview, what: str) -> str:
    """``data`` as text. Raises: InvalidRequest naming the first bad byte."""
    try:
        return bytes(data).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"{what} is not UTF-8 text ({exc.reason} at byte {exc.start})"
        ) from None


def check_depth(text: str, what: str, depth_max: int | None = None) -> None:
    """Raise ``TooDeep`` if arrays and objects in ``text`` nest deeper than ``depth_max``."""
    limit = limits.json_depth_max if depth_max is None else depth_max
    if too_deep(text, limit):
        raise TooDeep(
            f"{what} nests arrays and objects more than {limit} deep "
            f"(the limit, limits.json_depth_max)"
        )


def too_deep(text: str, depth_max: int) -> bool:
    """Whether some bracket of ``text`` outside a string opens level ``depth_max + 1``.

    Linear in the text, with no recursion and no backtracking: strings are cut out (an
    unterminated one runs to the end), then the running sum of the brackets left is
    the depth. Malformed text may be judged either way; the decoder refuses it next.
    """
    if text.count("[") + text.count("{") <= depth_max:
        return False
    structure = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    return bool(structure) and max(accumulate(map(_STEP.__getitem__, structure))) > depth_max


def dumps(value: Any, **options: Any) -> str:
    """``json.dumps`` that never writes ``NaN`` or ``Infinity`` (strict JSON).

    Raises:
        NotFinite: ``value`` holds a non-finite float (400, ``not_finite``).
    """
    try:
        return json.dumps(value, allow_nan=False, **options)
    except ValueError:
        found = first_non_finite(value)
        raise NotFinite(
            f"a value to send holds {found!r}, which JSON cannot carry "
            "(docs/reference/column-types.md, Floats)"
        ) from None


def first_non_finite(value: Any) -> float | None:
    """The first NaN or infinite float inside ``value`` (lists, tuples, dict values,
    dataclass fields), or None. Iterative, so no depth can make it recurse."""
    stack = [value]
    while stack:
        item = stack.pop()
        if type(item) is float:
            if not math.isfinite(item):
                return item
        elif isinstance(item, list | tuple):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif hasattr(item, "__dataclass_fields__"):
            stack.extend(getattr(item, name) for name in item.__dataclass_fields__)
        elif isinstance(item, float) and not math.isfinite(item):
            return float(item)
    return None
