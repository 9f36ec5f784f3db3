"""The call path's two shortcuts give exactly what the general path gives.

``call_fields`` reads a decoded ``CallReducer`` without building a request object, and a
codec's ``committed`` encodes a committed ``ReducerResult`` from fixed text around its
values (server/protocol.py). Each is checked against the general path over values meant
to find a difference: every scalar kind at its edges, escapes, non-ASCII text, the
integers where the JSON form turns into a string and where msgpack's ints end.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import pytest

from cosmictron import names
from cosmictron.errors import NotFinite
from cosmictron.server.protocol import (
    JSON,
    MSGPACK,
    CallReducer,
    Codec,
    ProtocolError,
    call_fields,
    parse_message,
    reducer_result,
)
from cosmictron.values import MAX_SAFE_INTEGER

SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    1,
    -1,
    127,
    128,
    -33,
    255,
    65536,
    MAX_SAFE_INTEGER,
    MAX_SAFE_INTEGER + 1,
    -MAX_SAFE_INTEGER,
    -MAX_SAFE_INTEGER - 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    2**64,
    -(2**63),
    -(2**63) - 1,
    2**100,
    0.0,
    -0.0,
    1.5,
    1e300,
    5e-324,
    math.inf,
    -math.inf,
    math.nan,
    "",
    "task",
    'quote " and backslash \\ and slash /',
    "control \x00\x01\n\t\x7f",
    "non-ASCII é ✓ 𝄞",
    "lone surrogate \ud800",
    "x" * 300,
]


def general(codec: Codec, request_id: Any, value: Any, tx_offset: Any) -> str | bytes:
    """What the server sends without the shortcut (``WebSocketClient._result``)."""
    return codec.encode(
        reducer_result(request_id, return_value=codec.form(value), tx_offset=tx_offset)
    )


def shortcut_applies(codec: Codec, value: Any) -> bool:
    """Whether ``committed`` must take ``value`` (else it may leave it to the general
    path): every exact scalar the encoding carries as itself."""
    kind = type(value)
    if kind is int and codec is MSGPACK:
        return -(2**63) <= value <= 2**64 - 1  # past that, msgpack's form is an extension
    if kind is float and codec is JSON:
        return math.isfinite(value)  # JSON refuses the others (NotFinite)
    return kind in (int, float, str, bool, type(None))


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=lambda c: c.protocol)
@pytest.mark.parametrize("value", SCALARS, ids=repr)
def test_a_committed_result_is_encoded_as_the_general_path_encodes_it(
    codec: Codec, value: Any
) -> None:
    for request_id in (0, 7, 2**40, -5, "", "req-1", 'q"', "é"):
        for tx_offset in (1, 300, 2**33, None):
            try:
                expected: Any = general(codec, request_id, value, tx_offset)
            except (NotFinite, UnicodeEncodeError) as exc:  # what the server cannot send
                expected = type(exc)
            try:
                fast: Any = codec.committed(request_id, value, tx_offset)
            except UnicodeEncodeError as exc:  # a lone surrogate: msgpack refuses it too
                fast = type(exc)
            if fast is None:
                assert not shortcut_applies(codec, value) or expected is NotFinite, value
            else:
                assert fast == expected, (request_id, value, tx_offset)


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=lambda c: c.protocol)
def test_a_value_that_is_not_a_plain_scalar_is_left_to_the_general_path(codec: Codec) -> None:
    for value in ([1, 2], {"a": 1}, b"\x00", (1,), 2**70):
        if codec is JSON and value == 2**70:
            continue  # JSON's form of it is a string: the shortcut takes it (tested above)
        assert codec.committed(1, value, 5) is None


FRAMES: list[Any] = [
    {"CallReducer": {"request_id": 1, "reducer": "add_task", "args": ["a", 2]}},
    {"CallReducer": {"request_id": "r", "reducer": "add_task"}},
    {"CallReducer": {"request_id": 0, "reducer": "add_task", "args": {"title": "t"}}},
    {"CallReducer": {"request_id": 1, "reducer": "not-a-name", "args": []}},
    {"CallReducer": {"request_id": 1, "reducer": "", "args": []}},
    {"CallReducer": {"request_id": 1, "reducer": "x" * 1000, "args": []}},
    {"CallReducer": {"request_id": True, "reducer": "add_task"}},
    {"CallReducer": {"request_id": 1.0, "reducer": "add_task"}},
    {"CallReducer": {"request_id": None, "reducer": "add_task"}},
    {"CallReducer": {"reducer": "add_task"}},
    {"CallReducer": {"request_id": 1, "reducer": 5}},
    {"CallReducer": {"request_id": 1}},
    {"CallReducer": ["request_id", 1]},
    {"CallReducer": {"request_id": 1, "reducer": "a"}, "Subscribe": {}},
    {"Subscribe": {"request_id": 1, "query_id": 1, "query_strings": ["SELECT 1"]}},
    {"OneOffQuery": {"request_id": 1, "query_string": "SELECT 1"}},
    {"callreducer": {"request_id": 1, "reducer": "add_task"}},
    [],
    "CallReducer",
    None,
]


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: json.dumps(f)[:60])
def test_call_fields_agrees_with_the_general_parser(frame: Any) -> None:
    fields = call_fields(frame)
    try:
        request = parse_message(frame, JSON)
    except ProtocolError:
        # Refused: the shortcut may read the fields only if the name is what is wrong,
        # which the caller checks (it looks the name up among the module's reducers).
        if fields is not None:
            assert not names.is_identifier(fields[1]), fields
        return
    if isinstance(request, CallReducer):
        assert fields == (request.request_id, request.reducer, request.args)
    else:
        assert fields is None


def test_msgpack_frames_read_the_same() -> None:
    frame = msgpack.unpackb(
        msgpack.packb({"CallReducer": {"request_id": 9, "reducer": "f", "args": [b"\x01"]}}),
        raw=False,
    )
    request = parse_message(frame, MSGPACK)
    assert call_fields(frame) == (request.request_id, request.reducer, request.args)  # type: ignore[union-attr]
