"""``messages.frontend_run``: the compiled reader of a round trip's messages (``_rows.pyx``)
against its Python definition, and both against ``parse_bind`` / ``parse_execute``.

The session's synchronous path answers what this reader parses and leaves the rest to
its task, which reads every message with the plain parsers and reports what is wrong
with it. So the compiled reader must give exactly what the Python one gives, and stop
exactly where it stops, on any bytes: well-formed runs, cut, corrupted or oversized.
"""

from __future__ import annotations

import os
import random
import struct

import pytest

from cosmictron.server.pgwire import messages

BYTES_MAX = 1 << 16

if messages.FRONTEND_COMPILED:
    from cosmictron.server.pgwire._rows import frontend_run as compiled_run


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def bind(
    portal: bytes,
    statement: bytes,
    formats: list[int],
    values: list[bytes | None],
    results: list[int],
) -> bytes:
    body = portal + b"\x00" + statement + b"\x00"
    body += struct.pack(f"!h{len(formats)}h", len(formats), *formats)
    body += struct.pack("!h", len(values))
    for value in values:
        body += struct.pack("!i", -1) if value is None else struct.pack("!i", len(value)) + value
    body += struct.pack(f"!h{len(results)}h", len(results), *results)
    return message(b"B", body)


def execute(portal: bytes, limit: int) -> bytes:
    return message(b"E", portal + b"\x00" + struct.pack("!i", limit))


SYNC = message(b"S", b"")
FLUSH = message(b"H", b"")


def describe(what: bytes, name: bytes) -> bytes:
    return message(b"D", what + name + b"\x00")


def readers() -> list:
    """The Python reader, and the compiled one where it is built."""
    found = [messages._frontend_run]
    if messages.FRONTEND_COMPILED:
        found.append(compiled_run)
    return found


def test_a_psycopg_round_trip_is_read_whole() -> None:
    data = (
        b"junk" + bind(b"", b"s1", [0], [b"5"], [0]) + describe(b"P", b"") + execute(b"", 0) + SYNC
    )
    for read in readers():
        run = read(data, 4, BYTES_MAX)
        assert [entry[0] for entry in run] == [b"B", b"D", b"E", b"S"]
        assert run[0][2:] == ("", "s1", (0,), [b"5"], (0,))
        assert run[1][2:] == (b"P", "")
        assert run[2][2:] == ("", 0)
        assert run[-1][1] == len(data)  # each entry says where its message ends


def test_an_asyncpg_round_trip_with_nulls_named_portals_and_many_parameters() -> None:
    values = [struct.pack("!q", 7), None, b"", "é".encode(), b"x" * 300]
    data = bind(b"p\xc3\xa9", b"stmt", [1, 0, 0, 0, 1], values, [1, 1, 0]) + execute(
        b"p\xc3\xa9", 5
    )
    data += FLUSH
    for read in readers():
        run = read(data, 0, BYTES_MAX)
        assert run[0][2:] == ("pé", "stmt", (1, 0, 0, 0, 1), values, (1, 1, 0))
        assert run[1][2:] == ("pé", 5)
        assert run[2] == (b"H", len(data))


def test_it_stops_before_what_the_task_must_read() -> None:
    """Another type, a message not whole, one over the cap, a name not UTF-8, a
    Describe without its zero byte: the run ends before it."""
    first = bind(b"", b"s", [], [], [])
    for tail in (
        message(b"P", b"\x00SELECT 1\x00\x00\x00"),
        message(b"E", b"\x00" + b"\x00" * BYTES_MAX),
        execute(b"\xff", 0),
        bind(b"\xfe", b"", [], [], []),
        message(b"D", b"Pname"),
        message(b"D", b"Pa\x00b\x00"),
        message(b"X", b""),
    ):
        for read in readers():
            assert read(first + tail + SYNC, 0, BYTES_MAX) == [read(first, 0, BYTES_MAX)[0]]
    for cut in (SYNC[:3], execute(b"", 0)[:-1]):  # the rest of it has not come yet
        for read in readers():
            assert read(first + cut, 0, BYTES_MAX) == [read(first, 0, BYTES_MAX)[0]]


def test_a_bind_that_does_not_parse_is_left_to_the_task() -> None:
    """What ``parse_bind`` refuses (and only that) stops the run; a negative count reads
    as none, as ``parse_bind`` reads it."""
    good = bind(b"", b"s", [1], [b"\x00\x00\x00\x01"], [1])
    body = good[5:]
    for cut in range(len(body)):
        data = message(b"B", body[:cut]) + SYNC
        try:
            parsed = [(b"B", len(data) - len(SYNC), *messages.parse_bind(body[:cut]))]
            parsed.append((b"S", len(data)))
        except messages.Malformed:
            parsed = []
        for read in readers():
            assert read(data, 0, BYTES_MAX) == parsed, cut
    negative = b"\x00s\x00" + struct.pack("!hhh", -1, -3, -2)
    for read in readers():
        assert read(message(b"B", negative), 0, BYTES_MAX)[0][2:] == ("", "s", (), [], ())


def test_a_negative_offset_is_refused() -> None:
    for read in readers():
        with pytest.raises(ValueError):
            read(SYNC, -1, BYTES_MAX)


@pytest.mark.skipif(
    not messages.FRONTEND_COMPILED,
    reason="the compiled reader is not built here (no Cython or C compiler at install time, "
    "or COSMICTRON_PURE=1); the Python reader is what runs",
)
def test_the_compiled_reader_is_the_python_one_on_random_bytes() -> None:
    generator = random.Random(22)
    pieces = [
        bind(b"", b"s1", [1], [struct.pack("!q", 3)], [1]),
        bind(b"portal", b"", [0, 1], [b"12", None], [0, 1, 0]),
        describe(b"P", b""),
        describe(b"S", b"s1"),
        execute(b"", 0),
        execute(b"portal", 10),
        SYNC,
        FLUSH,
        message(b"Q", b"SELECT 1\x00"),
    ]
    for _ in range(3000):
        data = bytearray(
            b"".join(generator.choice(pieces) for _ in range(generator.randrange(1, 6)))
        )
        for _ in range(generator.randrange(0, 3)):  # corrupt a byte or two
            data[generator.randrange(len(data))] = generator.randrange(256)
        if generator.random() < 0.3:
            del data[generator.randrange(len(data)) :]
        raw = bytes(data)
        at = generator.randrange(0, 3) if raw else 0
        assert compiled_run(raw, at, 200) == messages._frontend_run(raw, at, 200), raw


def test_the_compiled_reader_is_the_one_used_when_built() -> None:
    if os.environ.get("COSMICTRON_PURE"):
        assert not messages.FRONTEND_COMPILED
        return
    if not messages.FRONTEND_COMPILED:
        pytest.skip("the compiled reader is not built here (no Cython/compiler at install)")
    assert messages.frontend_run is compiled_run
