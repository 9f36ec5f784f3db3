"""Column values between their JSON forms (docs/reference/http.md) and Python, for clients.

The server encodes from its ``ColumnType`` objects (``server/wire.py``); a client only has
the schema as JSON (``GET /v1/database/{name}/schema``), so it decodes keyed by each
column's *type description*, e.g. ``{"type": "Optional", "of": {"type": "Identity"}}``.
The two share what matters, the value classes of the root module ``cosmictron.values``
(``Identity.from_hex``, ``Timestamp.parse``, ...); the little dispatch around them is
written twice on purpose, because ``client`` may import no server layer.

=================  =====================  ==============================================
type description   JSON                   Python in the cache
=================  =====================  ==============================================
i8 … u128, f32/64  number                 int, float
bool, str          boolean, string        bool, str
bytes              hex string             bytes
Identity           64 hex digits          ``Identity``; ConnectionId the same way
Timestamp          RFC 3339 string        ``Timestamp``
TimeDuration       integer microseconds   ``TimeDuration``
ScheduleAt         {"interval_micros"}    ``ScheduleAt``
                   or {"at"}
Optional           null or the inner      None or the inner value
list               array                  list
Vector             array of numbers       tuple of floats
enum               the member's name      str (the member's name)
product            object by field name   dict by field name
=================  =====================  ==============================================
"""

from __future__ import annotations

import enum
from typing import Any

from cosmictron.errors import InvalidRequest
from cosmictron.values import ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp

TypeDescription = dict[str, Any]


def decode(value: Any, described: TypeDescription) -> Any:
    """The Python value for the JSON ``value`` of a column described by ``described``.

    >>> decode("1970-01-01T00:00:01.000000Z", {"type": "Timestamp"})
    Timestamp(micros_since_epoch=1000000)
    >>> decode(None, {"type": "Optional", "of": {"type": "bytes"}}) is None
    True

    Raises:
        InvalidRequest: the value does not have the JSON form of that type.
    """
    try:
        return _decode(value, described)
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidRequest(
            f"expected a {described.get('type')} in its JSON form, got {value!r} ({exc})"
        ) from None


def _decode(value: Any, described: TypeDescription) -> Any:
    if value is None:
        return None
    kind = described["type"]
    if kind == "Optional":
        return _decode(value, described["of"])
    if kind == "Identity":
        return Identity.from_hex(value)
    if kind == "ConnectionId":
        return ConnectionId.from_hex(value)
    if kind == "Timestamp":
        return Timestamp(value) if isinstance(value, int) else Timestamp.parse(value)
    if kind == "TimeDuration":
        return TimeDuration(int(value))
    if kind == "ScheduleAt":
        if "interval_micros" in value:
            return ScheduleAt("interval", int(value["interval_micros"]))
        return ScheduleAt("at", Timestamp.parse(value["at"]).micros_since_epoch)
    if kind == "bytes":
        return bytes.fromhex(value)
    if kind == "list":
        return [_decode(item, described["of"]) for item in value]
    if kind == "Vector":
        return tuple(float(item) for item in value)
    if kind == "product":
        return {
            field["name"]: _decode(value.get(field["name"]), field) for field in described["fields"]
        }
    return value  # numbers, bool, str, enum member names: JSON already has them


def encode(value: Any) -> Any:
    """The JSON form of a Python value (an argument to a reducer, a key to find).

    The form follows from the value's class alone, as the server accepts it for any
    column of that type.

    >>> encode(Identity.zero())[:8]
    '00000000'
    >>> encode({"at": [b"\\x01", TimeDuration(5)]})
    {'at': ['01', 5]}
    """
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return value.name
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
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [encode(item) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: encode(getattr(value, name)) for name in value.__dataclass_fields__}
    raise InvalidRequest(f"{type(value).__name__} has no JSON form: {value!r}")
