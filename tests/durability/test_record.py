"""The frame format of record.py: encode, decode and hash round-trip, for any body."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmictron.durability.record import (
    FRAME_HEADER,
    RECORD_KINDS,
    TX_RECORD_KIND,
    RecordError,
    decode_header,
    decode_payload,
    encode_frame,
    encode_payload,
    plausible_frame_durable,
)
from cosmictron.ledger import GENESIS_HASH, record_hash

bodies = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(
    body=bodies,
    kind=st.sampled_from(sorted(RECORD_KINDS)),
    offset=st.integers(1, 2**62),
    durable=st.integers(0, 2**64 - 1),
)
def test_frame_round_trip(body: object, kind: int, offset: int, durable: int) -> None:
    payload = encode_payload(kind, offset, GENESIS_HASH, body)
    frame = encode_frame(payload, durable)
    length, crc, watermark = FRAME_HEADER.unpack_from(frame)
    assert length == len(payload) and watermark == durable
    assert crc == zlib.crc32(frame[8:16], zlib.crc32(payload)), "crc covers payload, then durable"
    assert plausible_frame_durable(frame, 0, 1 << 20) == durable
    assert decode_payload(frame[16:]) == (kind, offset, GENESIS_HASH, body)


@given(kind=st.integers(-(2**31), 2**31).filter(lambda k: k not in RECORD_KINDS))
def test_a_record_of_an_unknown_kind_does_not_decode(kind: int) -> None:
    payload = encode_payload(kind, 1, GENESIS_HASH, "x")
    with pytest.raises(RecordError, match=f"unknown record kind {kind}"):
        decode_payload(payload)
    with pytest.raises(RecordError, match=f"unknown record kind {kind}"):
        decode_header(payload)


def test_hash_is_sha256_of_payload() -> None:
    payload = encode_payload(TX_RECORD_KIND, 1, GENESIS_HASH, "x")
    assert len(record_hash(payload)) == 32
    assert record_hash(payload) != record_hash(payload + b"\x00")


def test_damaged_frame_is_not_plausible() -> None:
    frame = bytearray(encode_frame(encode_payload(0, 1, GENESIS_HASH, "body"), 7))
    frame[-1] ^= 1
    assert plausible_frame_durable(bytes(frame), 0, 1 << 20) is None
    frame[-1] ^= 1
    frame[9] ^= 1  # the watermark is covered by the crc too
    assert plausible_frame_durable(bytes(frame), 0, 1 << 20) is None
    assert plausible_frame_durable(bytes(16), 0, 1 << 20) is None  # zero length never counts


def test_payload_that_is_not_a_record_is_refused() -> None:
    import msgpack
    import pytest

    for bad in ([1, 2, 3], [2, 0, 1, GENESIS_HASH, None], [1, 0, 1, b"short", None], "x"):
        with pytest.raises(RecordError):
            decode_payload(msgpack.packb(bad))


def test_doctests() -> None:
    import doctest

    from cosmictron.durability import record
    from cosmictron.ledger import chain

    assert doctest.testmod(record).failed == 0
    assert doctest.testmod(chain).failed == 0
