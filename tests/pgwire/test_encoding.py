"""The generated row writers and the frame reader against their plain definitions.

``results.row_writer`` writes rows two specialised ways (text rows as latin-1 strings,
fixed-width binary columns packed by one ``struct`` call); both must give, byte for
byte, what encoding each value on its own gives (``pgtypes.text_of`` and the binary
encoders), for every type, NULLs anywhere, non-ASCII and long text. ``inbound.Inbound``
must cut the same messages out of a stream however it is split into reads.
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import random
import struct

import pytest

from cosmictron.server.pgwire import messages, pgtypes, results
from cosmictron.server.pgwire.inbound import Inbound
from cosmictron.values import TimeDuration, Timestamp

OIDS = (
    pgtypes.INT2,
    pgtypes.INT4,
    pgtypes.INT8,
    pgtypes.NUMERIC,
    pgtypes.OID,
    pgtypes.FLOAT4,
    pgtypes.FLOAT8,
    pgtypes.BOOL,
    pgtypes.TEXT,
    pgtypes.VARCHAR,
    pgtypes.NAME,
    pgtypes.BYTEA,
    pgtypes.TIMESTAMPTZ,
    pgtypes.INTERVAL,
    pgtypes.JSON,
)

TEXTS = ["", "a", "sensor-12", "é", "日本語", "emoji 🙂", "tab\tand\nnewline", "x" * 5000, "\x00"]
FLOATS = [0.0, -0.0, 0.1, 1.5, -2.25, 1e16, 1e-300, math.inf, -math.inf, math.nan, 123.456]


def value_of(oid: int, generator: random.Random) -> object:
    if oid == pgtypes.INT2:
        return generator.randrange(-(2**15), 2**15)
    if oid in (pgtypes.INT4, pgtypes.OID):
        return generator.randrange(-(2**31), 2**31)
    if oid == pgtypes.INT8:
        return generator.randrange(-(2**63), 2**63)
    if oid == pgtypes.NUMERIC:
        return generator.randrange(-(2**100), 2**100)
    if oid == pgtypes.FLOAT4:
        return generator.choice([0.5, -2.0, 1e10, math.inf, 0.0])
    if oid == pgtypes.FLOAT8:
        return generator.choice(FLOATS)
    if oid == pgtypes.BOOL:
        return generator.random() < 0.5
    if oid in (pgtypes.TEXT, pgtypes.VARCHAR, pgtypes.NAME):
        return generator.choice(TEXTS)
    if oid == pgtypes.BYTEA:
        return bytes(generator.randrange(256) for _ in range(generator.randrange(0, 9)))
    if oid == pgtypes.TIMESTAMPTZ:
        return Timestamp(generator.randrange(0, 2**50))
    if oid == pgtypes.INTERVAL:
        return TimeDuration(generator.randrange(-(2**40), 2**40))
    return generator.choice([["a", 1], {"k": [1.5, None]}, [], "text"])


def expected(rows: list[tuple[object, ...]], oids: tuple[int, ...], formats: list[int]) -> bytes:
    """DataRow messages written the plain way: each value encoded on its own."""
    out = []
    for row in rows:
        fields = []
        for value, oid, fmt in zip(row, oids, formats, strict=True):
            if value is None:
                fields.append(struct.pack("!i", -1))
                continue
            data = pgtypes.encoder(oid, fmt == 1)(value)
            fields.append(struct.pack("!i", len(data)) + data)
        body = struct.pack("!h", len(row)) + b"".join(fields)
        out.append(b"D" + struct.pack("!i", len(body) + 4) + body)
    return b"".join(out)


@pytest.mark.parametrize("seed", range(40))
def test_generated_writers_match_each_value_encoded_on_its_own(seed: int) -> None:
    generator = random.Random(seed)
    width = generator.randrange(0, 9)
    oids = tuple(generator.choice(OIDS) for _ in range(width))
    if seed % 4 == 0:
        formats = [0] * width  # all text: the latin-1 writer
    elif seed % 4 == 1:
        formats = [1] * width  # all binary: the packed writer where a column is fixed
    else:
        formats = [generator.randrange(2) for _ in range(width)]
    nulls = 0.0 if seed % 5 == 0 else 0.2
    rows = [
        tuple(None if generator.random() < nulls else value_of(o, generator) for o in oids)
        for _ in range(60)
    ]
    encode = results.encoders(oids, formats)
    assert results.data_rows(rows, encode) == expected(rows, oids, formats)
    writer = results.writer_for(oids, tuple(formats))
    assert writer(rows) == expected(rows, oids, formats)
    for pure in pure_writers(tuple(encode)):  # the fallbacks, whichever one serves
        assert pure(rows) == expected(rows, oids, formats)


def pure_writers(encode: tuple[results.Encoder, ...]) -> list[results.Writer]:
    """The generated pure-Python writers (what runs without the compiled ``_rows``)."""
    writers = [results._text_writer(encode)]
    if any(e in results._FIXED for e in encode):
        writers = [results._packed_writer(encode)]
    return writers


def test_the_compiled_writer_is_the_one_used_when_built() -> None:
    """``_rows.pyx`` is built by ``setup.py`` (``pip install -e .`` or ``setup.py
    build_ext --inplace``); COSMICTRON_PURE=1 turns it off, which this also checks."""
    if os.environ.get("COSMICTRON_PURE"):
        assert not results.COMPILED
        return
    if not results.COMPILED:
        pytest.skip("the compiled DataRow writer is not built here (no Cython/compiler at install)")
    encode = tuple(results.encoders((pgtypes.INT8, pgtypes.FLOAT8), [0, 0]))
    assert isinstance(results.row_writer(encode), functools.partial)


def test_compiled_writer_falls_back_to_the_encoder_for_odd_values() -> None:
    """Values outside a fast path's type or range go through the column's encoder, so
    they come out (or fail) as in the pure writers."""
    oids = (pgtypes.INT2, pgtypes.INT4, pgtypes.INT8, pgtypes.FLOAT8, pgtypes.BOOL, pgtypes.TEXT)
    rows = [(True, 2**31 - 1, -(2**63), 7, 1, 5), (-(2**15), -(2**31), 2**63 - 1, 1e308, 0, "é")]
    for fmt in (0, 1):
        formats = [fmt] * len(oids)
        encode = tuple(results.encoders(oids, formats))
        for pure in pure_writers(encode):
            assert results.row_writer(encode)(rows) == pure(rows)
    encode = tuple(results.encoders((pgtypes.INT2,), [1]))
    for write in (results.row_writer(encode), *pure_writers(encode)):
        with pytest.raises(struct.error):
            write([(2**15,)])


def float_cases(generator: random.Random) -> list[float]:
    """Doubles where a shortest-digits search goes wrong if it is wrong anywhere: the
    benchmark's, every magnitude, random bit patterns, short decimals, powers of two
    and of ten and their neighbours (a power of two has a narrower gap below it)."""
    values = [generator.random() * 100 for _ in range(20_000)]
    values += [10 ** generator.uniform(-5, 16) * generator.choice((1, -1)) for _ in range(40_000)]
    values += [
        struct.unpack("<d", struct.pack("<Q", generator.getrandbits(64)))[0] for _ in range(10_000)
    ]
    values += [round(generator.uniform(0, 1000), generator.randrange(0, 8)) for _ in range(20_000)]
    values += [generator.getrandbits(50) / 2 ** generator.randrange(0, 60) for _ in range(20_000)]
    for exponent in range(-20, 60):
        for power in (2.0**exponent, 10.0 ** (exponent // 3)):
            values += [power, math.nextafter(power, 0), math.nextafter(power, math.inf)]
    values += [0.1, 0.3, 1 / 3, 1e-4, 9.999999999999999e-05, 1e15, 999999999999999.9, 0.0, -0.0]
    values += [5e-324, 1e22, 1e16, 9007199254740993.0, 2.0**53 + 2, -1.5, 123456789012345.6]
    return [v for v in values if math.isfinite(v)]


def texts(written: bytes) -> list[bytes]:
    """The values of one-column DataRows."""
    found = []
    at = 0
    while at < len(written):
        (length,) = struct.unpack_from("!i", written, at + 1)
        (size,) = struct.unpack_from("!i", written, at + 7)
        found.append(written[at + 11 : at + 11 + size])
        at += 1 + length
    return found


def test_text_numbers_are_what_str_and_repr_write() -> None:
    """The compiled writer formats integers and doubles itself (not through ``str`` and
    ``repr``, which were most of a text scan): the same text, on edges and on
    hundreds of thousands of values."""
    generator = random.Random(15)
    floats = float_cases(generator)
    integers = [0, -1, 1, 9, 10, -10, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**30]
    integers += [10**k + d for k in range(19) for d in (-1, 0, 1)]
    integers += [-v for v in integers] + [generator.randrange(-(2**63), 2**63) for _ in range(5000)]
    for oid, values, plain in ((pgtypes.FLOAT8, floats, repr), (pgtypes.INT8, integers, str)):
        write = results.row_writer(tuple(results.encoders((oid,), [0])))
        assert texts(write([(v,) for v in values])) == [plain(v).encode() for v in values]


def test_the_benchmark_row_in_both_formats() -> None:
    """The shape of bench/pgwire.py's table: bigint, text, double, bool, bigint."""
    oids = (pgtypes.INT8, pgtypes.TEXT, pgtypes.FLOAT8, pgtypes.BOOL, pgtypes.INT8)
    rows = [
        (1, "sensor-1", 0.25, True, 10**9),
        (2, "capteur-é", math.nan, False, -1),
        (3, None, None, None, None),
        (None, "x" * 70000, 1e300, True, 0),
    ]
    for fmt in (0, 1):
        formats = [fmt] * 5
        assert results.data_rows(rows, results.encoders(oids, formats)) == expected(
            rows, oids, formats
        )


class PausedCounter:
    """The two transport calls the reader makes when it pauses and resumes reading."""

    def __init__(self) -> None:
        self.paused = 0

    def pause_reading(self) -> None:
        self.paused += 1

    def resume_reading(self) -> None:
        self.paused -= 1


def frames_of(chunks: list[bytes], cap: int) -> list[tuple[bytes, bytes]]:
    async def run() -> list[tuple[bytes, bytes]]:
        got: list[tuple[bytes, bytes]] = []
        inbound = Inbound(lambda _inbound, _writer: asyncio.sleep(0), cap)
        inbound.transport = PausedCounter()  # type: ignore[assignment]

        async def read_all() -> None:
            while True:
                try:
                    got.append(await inbound.next())
                except asyncio.IncompleteReadError:
                    return

        reading = asyncio.ensure_future(read_all())
        for chunk in chunks:  # arriving while the reader waits, as from a socket
            await asyncio.sleep(0)
            inbound.data_received(chunk)
        inbound.eof_received()
        await reading
        return got

    return asyncio.run(run())


def test_frames_are_cut_the_same_however_the_stream_is_split() -> None:
    sent = [
        (b"P", b"s1\x00SELECT 1\x00\x00\x00"),
        (b"B", b"\x00s1\x00" + b"\x00" * 6),
        (b"S", b""),
        (b"Q", b"x" * 100_000 + b"\x00"),
        (b"X", b""),
    ]
    stream = b"".join(messages.message(kind, body) for kind, body in sent)
    generator = random.Random(3)
    for _ in range(20):
        cuts = sorted(generator.sample(range(1, len(stream)), 12))
        chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
        assert frames_of(chunks, 1 << 20) == sent
    assert frames_of([stream[i : i + 1] for i in range(200)] + [stream[200:]], 1 << 20) == sent


def test_frames_refuse_a_length_over_the_cap_before_reading_the_body() -> None:
    header = b"Q" + struct.pack("!i", 1 << 30)
    with pytest.raises(messages.FrameTooLarge):
        frames_of([header], 1 << 20)
    with pytest.raises(messages.FrameTooLarge):
        frames_of([b"S" + struct.pack("!i", 3)], 1 << 20)


def test_parse_bind_reads_a_bind_and_refuses_a_short_one() -> None:
    body = (
        b"portal\x00stmt\x00"
        + struct.pack("!hh", 1, 1)
        + struct.pack("!h", 2)
        + struct.pack("!iq", 8, 42)
        + struct.pack("!i", -1)
        + struct.pack("!hhh", 2, 0, 1)
    )
    assert messages.parse_bind(body) == (
        "portal",
        "stmt",
        (1,),
        [struct.pack("!q", 42), None],
        (0, 1),
    )
    for cut in range(len(body)):
        with pytest.raises(messages.Malformed):
            messages.parse_bind(body[:cut])
    with pytest.raises(messages.Malformed):
        messages.parse_bind(b"\xff\xfe\x00s\x00" + b"\x00" * 6)
