"""bounded_msgpack: the msgpack forms of values and the bounded decoder (no server)."""

from __future__ import annotations

import enum

import msgpack
import pytest

from cosmictron import bounded_msgpack, limits
from cosmictron.errors import InvalidRequest, TooDeep
from cosmictron.values import Identity, TimeDuration, Timestamp


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [0, -1, 2**63 - 1, -(2**63), 2**64 - 1, 2**64, -(2**63) - 1, 2**127 - 1, -(2**127), 2**128 - 1],
)
def test_integers_round_trip_with_big_ones_as_ext_1(value: int) -> None:
    packed = bounded_msgpack.dumps(bounded_msgpack.form(value))
    assert bounded_msgpack.loads(packed, "x") == value
    fits = -(2**63) <= value <= 2**64 - 1
    assert isinstance(msgpack.unpackb(packed, strict_map_key=False), int) is fits


def test_forms_are_json_forms_but_bytes_are_bin() -> None:
    identity = Identity.random()
    value = {
        "b": b"\x00\xff",
        "id": identity,
        "at": Timestamp(1_000_000),
        "d": TimeDuration(5),
        "e": Colour.RED,
        "list": [b"\x01", 1.5, None, True],
    }
    formed = bounded_msgpack.form(value)
    assert formed == {
        "b": b"\x00\xff",
        "id": identity.hex(),
        "at": Timestamp(1_000_000).isoformat(),
        "d": 5,
        "e": "RED",
        "list": [b"\x01", 1.5, None, True],
    }
    assert bounded_msgpack.loads(bounded_msgpack.dumps(formed), "x") == formed
    with pytest.raises(InvalidRequest, match="no msgpack form"):
        bounded_msgpack.form(object())


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xc1", "a byte that starts no value"),
        (b"\x92\x01", "not valid msgpack"),
        (b"\x01\x02", "bytes after the value"),
        (msgpack.packb({1: 2}), "not valid msgpack"),  # map keys must be strings
        (b"\xa2\xff\xfe", "not valid msgpack"),  # a str that is not UTF-8
        (msgpack.packb(msgpack.ExtType(9, b"x")), "unknown msgpack extension type 9"),
    ],
)
def test_malformed_msgpack_is_an_invalid_request(data: bytes, problem: str) -> None:
    with pytest.raises(InvalidRequest, match=problem):
        bounded_msgpack.loads(data, "the message")


def test_depth_past_the_limit_is_too_deep() -> None:
    limit = limits.json_depth_max
    assert bounded_msgpack.loads(b"\x91" * limit + b"\xc0", "m") is not None
    with pytest.raises(TooDeep, match=f"more than {limit} deep"):
        bounded_msgpack.loads(b"\x91" * (limit + 1) + b"\xc0", "m")
    with pytest.raises(TooDeep):  # maps count too
        bounded_msgpack.loads(b"\x81\xa1k" * (limit + 1) + b"\xc0", "m")
    with pytest.raises(TooDeep):  # past the C decoder's own stack
        bounded_msgpack.loads(b"\x91" * 100_000 + b"\xc0", "m")
    with pytest.raises(TooDeep):
        bounded_msgpack.loads(b"\x91" * 3 + b"\xc0", "m", depth_max=2)
