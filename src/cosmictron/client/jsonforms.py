"""Column values between their JSON forms (docs/reference/http.md) and Python, for clients.

Encoding depends on the value alone: ``cosmictron.values.json_form``, the one function
the server, this SDK and the log share. Decoding needs the column's type: the server
decodes from its ``ColumnType`` objects (``server/wire.py``); a client only has the
schema as JSON (``GET /v1/database/{name}/schema``), so it decodes keyed by each column's
*type description*, e.g. ``{"type": "Optional", "of": {"type": "Identity"}}``, with the
value classes' own parsers (``Identity.from_hex``, ``Timestamp.parse``, ...).

=================  =====================  ==============================================
type description   JSON                   Python in the cache
=================  =====================  ==============================================
i8 … u128, f32/64  number (an integer past  int, float
                   ±(2**53 - 1): a decimal
                   string)
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

from typing import Any

from cosmictron.errors import InvalidRequest
from cosmictron.values import ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp

TypeDescription = dict[str, Any]

INTEGER_KINDS = frozenset(f"{sign}{bits}" for sign in "iu" for bits in (8, 16, 32, 64, 128))


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
    if kind in INTEGER_KINDS:  # past ±(2**53 - 1) JSON carries it as a decimal string
        return int(value) if isinstance(value, str) else value
    if kind == "Identity":
        return Identity.from_hex(value)
    if kind == "ConnectionId":
        return ConnectionId.from_hex(value)
    if kind == "Timestamp":
        return Timestamp(value) if isinstance(value, int) else Timestamp.parse(value)
    if kind == "TimeDuration":
        return TimeDuration(int(value))  # a decimal string past ±(2**53 - 1) too
    if kind == "ScheduleAt":
        if "interval_micros" in value:
            return ScheduleAt("interval", int(value["interval_micros"]))
        return ScheduleAt("at", Timestamp.parse(value["at"]).micros_since_epoch)
    if kind == "bytes":  # msgpack's bin arrives as bytes
        return value if isinstance(value, bytes) else bytes.fromhex(value)
    if kind == "list":
        return [_decode(item, described["of"]) for item in value]
    if kind == "Vector":
        return tuple(float(item) for item in value)
    if kind == "product":
        return {
            field["name"]: _decode(value.get(field["name"]), field) for field in described["fields"]
        }
    return value  # numbers, bool, str, enum member names: JSON already has them
