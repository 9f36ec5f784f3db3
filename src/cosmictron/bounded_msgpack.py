"""msgpack from outside the process, decoded within bounds; and the msgpack forms of values.

The WebSocket subprotocol ``v1.msgpack.cosmictron`` carries the messages of
``v1.json.cosmictron`` msgpack-encoded, one per binary frame (docs/reference/websocket.md,
"The msgpack protocol"). A value's msgpack form is its JSON form (``values.json_form``)
with two exceptions that msgpack carries natively and JSON cannot:

- ``bytes`` are msgpack ``bin`` (not a hex string);
- an integer outside the 64-bit range msgpack's ints cover (``u128``/``i128`` values
  past it) is the extension type ``BIG_INT_EXT`` (1): its two's-complement big-endian
  bytes, as few as hold it. msgpack itself has no such integer; this is the one
  extension the protocol uses.

Floats are float64, non-finite ones included (msgpack has no ``NaN`` problem); the
datastore refuses to store them either way.

``loads`` bounds what a peer can make the decoder do, as ``bounded_json.loads`` does for
JSON: the frame is at most ``client_message_bytes_max`` (the transport enforces it), no
container may claim more items than the frame has bytes (msgpack's own default
``max_*_len``), map keys must be strings, and nesting deeper than ``limits.json_depth_max``
is ``TooDeep``. msgpack's C decoder does not recurse on the C stack per level past its own
fixed limit, so the depth is checked on the decoded value, iteratively, and only when the
frame is long enough to be that deep at all (each level takes at least one byte).
"""

from __future__ import annotations

import enum
import threading
from typing import Any

import msgpack

from cosmictron import limits
from cosmictron.errors import InvalidRequest, TooDeep
from cosmictron.values import ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp

BIG_INT_EXT = 1
"""The msgpack extension type of an integer past 64 bits (module docstring)."""

_INT_MIN = -(2**63)
_UINT_MAX = 2**64 - 1


def _ext_hook(code: int, data: bytes) -> Any:
    if code == BIG_INT_EXT:
        return int.from_bytes(data, "big", signed=True)
    raise ValueError(f"unknown msgpack extension type {code}")


def loads(data: bytes | bytearray | memoryview, what: str, depth_max: int | None = None) -> Any:
    """Decode ``data`` as one msgpack value.

    Raises:
        TooDeep: arrays and maps nest deeper than ``depth_max`` (``limits.json_depth_max``).
        InvalidRequest: not msgpack, trailing bytes, a non-string map key, text that is
            not UTF-8, or an unknown extension type.
    """
    limit = limits.json_depth_max if depth_max is None else depth_max
    try:
        value = msgpack.unpackb(
            data, raw=False, strict_map_key=True, ext_hook=_ext_hook, use_list=True
        )
    except msgpack.ExtraData:
        raise InvalidRequest(f"{what} is not valid msgpack: bytes after the value") from None
    except msgpack.StackError:  # deeper than the C decoder's own stack: too deep for us too
        raise TooDeep(_too_deep_message(what, limit)) from None
    except msgpack.FormatError:
        raise InvalidRequest(f"{what} is not valid msgpack: a byte that starts no value") from None
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise InvalidRequest(f"{what} is not valid msgpack: {exc or type(exc).__name__}") from None
    if len(data) > limit and _too_deep(value, limit):
        raise TooDeep(_too_deep_message(what, limit))
    return value


def _too_deep_message(what: str, limit: int) -> str:
    return f"{what} nests arrays and maps more than {limit} deep (the limit, limits.json_depth_max)"


def _too_deep(value: Any, depth_max: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, list):
            if depth > depth_max:
                return True
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, dict):
            if depth > depth_max:
                return True
            stack.extend((child, depth + 1) for child in item.values())
    return False


_PACKERS = threading.local()


def dumps(message: Any) -> bytes:
    """``message`` (already in msgpack forms: see ``form``) as one msgpack value.

    The bytes of ``msgpack.packb(message, use_bin_type=True)``, from one ``Packer`` per
    thread: ``packb`` makes a ``Packer`` (and its buffer) per call, which cost more than
    packing a small message (docs/design/hot-path.md). A packer is reset after every
    ``pack``, also when packing raises.
    """
    packer = getattr(_PACKERS, "packer", None)
    if packer is None:
        packer = _PACKERS.packer = msgpack.Packer(use_bin_type=True)
    try:
        data: bytes = packer.pack(message)
    except BaseException:
        packer.reset()
        raise
    return data


def form(value: Any) -> Any:
    """The msgpack form of a value: its JSON form, but bytes as ``bin`` and integers past
    64 bits as ``BIG_INT_EXT`` (module docstring).

    >>> form({"at": [b"\\x01", 2**70]})["at"][0]
    b'\\x01'
    """
    if isinstance(value, enum.Enum):  # before int: an IntEnum is an int too
        return value.name
    if value is None or isinstance(value, bool | float | str):
        return value
    if isinstance(value, int):
        if _INT_MIN <= value <= _UINT_MAX:
            return value
        size = (value.bit_length() + 8) // 8  # room for the sign bit
        return msgpack.ExtType(BIG_INT_EXT, value.to_bytes(size, "big", signed=True))
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    if isinstance(value, Identity | ConnectionId):
        return value.hex()
    if isinstance(value, Timestamp):
        return value.isoformat()
    if isinstance(value, TimeDuration):
        return value.micros
    if isinstance(value, ScheduleAt):
        if value.kind == "interval":
            return {"interval_micros": value.micros}
        return {"at": Timestamp(value.micros).isoformat()}
    if isinstance(value, dict):
        return {str(key): form(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [form(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: form(getattr(value, name)) for name in value.__dataclass_fields__}
    raise InvalidRequest(f"{type(value).__name__} has no msgpack form: {value!r}")
