"""How deep a msgpack document nests, found without recursing.

msgpack's C decoder keeps its own bounded stack (a document nested past about a
thousand levels is a ``StackError``), but everything that walks a decoded value
afterwards (replaying a record's call arguments, converting rows, ``repr``) recurses
once per level in Python. A document read from outside the process (a restored
archive's snapshot and log records) is therefore checked against
``limits.msgpack_depth_max`` before anything walks it.

Two steps, like ``bounded_json.too_deep``: a payload with fewer bytes that could open a
container (fixarray, fixmap, array and map headers; bytes inside strings count too, so
this over-counts) than the limit cannot be too deep, found by counting bytes in C;
otherwise it is decoded (its size bounds that work) and walked with an explicit stack.
"""

from __future__ import annotations

from typing import Any

import msgpack

_CONTAINER_BYTES = bytes([*range(0x80, 0xA0), 0xDC, 0xDD, 0xDE, 0xDF])
"""The first bytes of every msgpack array and map header."""

_OTHER_BYTES = bytes(b for b in range(256) if b not in _CONTAINER_BYTES)


def payload_too_deep(payload: bytes | memoryview, depth_max: int) -> bool:
    """Whether the msgpack document ``payload`` nests arrays and maps past ``depth_max``.

    A payload that does not decode is not judged here (its own decoder refuses it).
    """
    data = bytes(payload)
    if len(data.translate(None, _OTHER_BYTES)) <= depth_max:
        return False
    try:
        value = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except msgpack.StackError:  # deeper than msgpack's own stack
        return True
    except Exception:  # msgpack raises several unrelated types for bad input
        return False
    return value_too_deep(value, depth_max)


def value_too_deep(value: Any, depth_max: int) -> bool:
    """Whether decoded ``value`` nests lists and dicts past ``depth_max`` (no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if type(item) is list:
            if depth > depth_max:
                return True
            stack.extend((child, depth + 1) for child in item if type(child) in _NESTED)
        elif type(item) is dict:
            if depth > depth_max:
                return True
            for key, child in item.items():
                if type(key) in _NESTED:
                    stack.append((key, depth + 1))
                if type(child) in _NESTED:
                    stack.append((child, depth + 1))
    return False


_NESTED = frozenset({list, dict})
