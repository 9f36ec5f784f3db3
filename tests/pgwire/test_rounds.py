"""A prepared point query's kept round trip (``server/pgwire/rounds.py``).

The session keeps the bytes of a point query's round answered generically and answers
a repeat of them (another key) in one step. These check the byte matching (compiled
and pure, on the rounds asyncpg and psycopg send and on random bytes) and, on a real
server with the compiled code and on one with ``COSMICTRON_PURE=1``, that a kept round
answers what the generic path answers, follows its statement's name, survives a
module update and still refuses what it must on every run. (The rate, rights, the
parameter weigh-in and a text key's range on every run: tests/pgwire/test_point_path.py,
whose prepared lookups take this path after their first run.)
"""

from __future__ import annotations

import asyncio
import os
import random
import struct
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from cosmictron.server.pgwire import rounds
from tests.pgwire.conftest import MODULE, PG, shop_server

BYTES_MAX = 1 << 16
RUNS = 5


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!i", len(body) + 4) + body


def bind(statement: bytes, fmt: int, key: bytes | None, results: int) -> bytes:
    body = b"\x00" + statement + b"\x00" + struct.pack("!hhh", 1, fmt, 1)
    body += struct.pack("!i", -1) if key is None else struct.pack("!i", len(key)) + key
    return message(b"B", body + struct.pack("!hh", 1, results))


EXECUTE = message(b"E", b"\x00" + struct.pack("!i", 0))
SYNC = message(b"S", b"")
DESCRIBE = message(b"D", b"P\x00")


def kept(statement: bytes, fmt: int, results: int, rest: bytes) -> tuple[bytes, bytes, bytes]:
    """A round's head, tail and rest as ``Session._learn`` cuts them."""
    head = b"\x00" + statement + b"\x00" + struct.pack("!hhh", 1, fmt, 1)
    return head, struct.pack("!hh", 1, results), rest


def matchers() -> list:
    found = [rounds._match]
    if rounds.MATCH_COMPILED:
        found.append(rounds.match)
    return found


@pytest.mark.parametrize("match", matchers())
def test_a_repeat_is_found_with_its_key(match) -> None:
    asyncpg_round = kept(b"s1", 1, 1, EXECUTE + SYNC)
    psycopg_round = kept(b"s1", 0, 0, DESCRIBE + EXECUTE + SYNC)
    key = struct.pack("!q", 12345)
    data = b"junk" + bind(b"s1", 1, key, 1) + EXECUTE + SYNC
    found = match(data, 4, *asyncpg_round, BYTES_MAX)
    size = struct.unpack_from("!i", data, found)[0]
    assert data[found + 4 : found + 4 + size] == key
    text = bind(b"s1", 0, b"-77", 0) + DESCRIBE + EXECUTE + SYNC
    found = match(text, 0, *psycopg_round, BYTES_MAX)
    assert text[found + 4 : found + 7] == b"-77"
    # Anything else is left to the generic path: another statement, formats, portal use,
    # a row limit, a NULL key, a round not yet whole, a Bind over the cap, not a Bind.
    assert match(bind(b"s2", 1, key, 1) + EXECUTE + SYNC, 0, *asyncpg_round, BYTES_MAX) == -1
    assert match(bind(b"s1", 0, key, 1) + EXECUTE + SYNC, 0, *asyncpg_round, BYTES_MAX) == -1
    assert match(bind(b"s1", 1, key, 0) + EXECUTE + SYNC, 0, *asyncpg_round, BYTES_MAX) == -1
    limited = message(b"E", b"\x00" + struct.pack("!i", 1))
    assert match(bind(b"s1", 1, key, 1) + limited + SYNC, 0, *asyncpg_round, BYTES_MAX) == -1
    assert match(bind(b"s1", 1, None, 1) + EXECUTE + SYNC, 0, *asyncpg_round, BYTES_MAX) == -1
    whole = bind(b"s1", 1, key, 1) + EXECUTE + SYNC
    for cut in range(len(whole)):
        assert match(whole[:cut], 0, *asyncpg_round, BYTES_MAX) == -1
    assert match(whole, 0, *asyncpg_round, 20) == -1
    assert match(SYNC + whole, 0, *asyncpg_round, BYTES_MAX) == -1
    with pytest.raises(ValueError):
        match(whole, -1, *asyncpg_round, BYTES_MAX)


@pytest.mark.skipif(
    not rounds.MATCH_COMPILED,
    reason="the compiled matcher is not built here (no C compiler at install time, or "
    "COSMICTRON_PURE=1); the Python one is what runs",
)
def test_the_compiled_matcher_is_the_python_one_on_random_bytes() -> None:
    generator = random.Random(22)
    shapes = [kept(b"s1", 1, 1, EXECUTE + SYNC), kept(b"s1", 0, 0, DESCRIBE + EXECUTE + SYNC)]
    key = struct.pack("!q", 5)
    wholes = [bind(b"s1", 1, key, 1) + EXECUTE + SYNC, bind(b"s1", 0, b"5", 0) + DESCRIBE]
    for _ in range(20_000):
        data = bytearray(generator.choice(wholes) * generator.randint(1, 2))
        for _ in range(generator.randint(0, 3)):  # corrupt a few bytes, lengths included
            data[generator.randrange(len(data))] = generator.randrange(256)
        data = bytes(data[: generator.randint(0, len(data))])
        at = generator.randint(0, len(data) + 2)
        head, tail, rest = generator.choice(shapes)
        cap = generator.choice([BYTES_MAX, 16, 30])
        assert rounds.match(data, at, head, tail, rest, cap) == rounds._match(
            data, at, head, tail, rest, cap
        ), (data, at)


def test_the_compiled_matcher_is_the_one_used_when_built() -> None:
    from cosmictron.server.pgwire import messages

    if os.environ.get("COSMICTRON_PURE") or not messages.FRONTEND_COMPILED:
        assert not rounds.MATCH_COMPILED  # built together with the frame reader, or neither
    else:
        assert rounds.MATCH_COMPILED


# --- on a real server: compiled where built, and pure ------------------------------------


@pytest.fixture(scope="module", params=["built", "pure"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PG]:
    env = {"COSMICTRON_PURE": "1"} if request.param == "pure" else {}
    with shop_server(tmp_path_factory.mktemp(f"pgrounds-{request.param}") / "data", env) as pg:
        yield pg


def test_kept_rounds_answer_as_the_first_run(server: PG) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(server.url())
        try:
            statement = await conn.prepare("SELECT id, name, qty FROM item WHERE id = $1")
            for _ in range(RUNS):
                for key in (1, 5, 6, -(2**63), 2**63 - 1, None, 2):
                    row = await statement.fetchrow(key)
                    expected = (key, f"item{key}", key % 7) if key in (1, 2, 5) else None
                    assert (tuple(row) if row is not None else None) == expected
        finally:
            await conn.close()

    asyncio.run(run())
    with psycopg.connect(server.dsn(), autocommit=True, prepare_threshold=0) as conn:
        for binary in (False, True, False):
            for _ in range(RUNS):
                for key in (3, 4, 99):
                    cursor = conn.execute(
                        "SELECT name, active FROM item WHERE id = %s", (key,), binary=binary
                    )
                    rows = [(f"item{key}", key % 2 == 0)] if key < 6 else []
                    assert cursor.fetchall() == rows
                    assert cursor.statusmessage == f"SELECT {len(rows)}"


def test_a_kept_round_follows_its_statements_name(server: PG) -> None:
    """The same Bind bytes after the name was prepared again for another query answer
    the new query."""
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        pgconn = conn.pgconn
        for text, column in ((b"name", b"item2"), (b"qty", b"2"), (b"name", b"item2")):
            query = b"SELECT " + text + b" FROM item WHERE id = $1"
            assert pgconn.prepare(b"again", query, [20]).status == 1
            for _ in range(RUNS):
                assert pgconn.exec_prepared(b"again", [b"2"]).get_value(0, 0) == column
            assert conn.execute("DEALLOCATE again").statusmessage == "DEALLOCATE"
        assert pgconn.exec_prepared(b"again", [b"2"]).error_message


def test_a_kept_round_refuses_bad_keys_every_time_and_serves_on(server: PG) -> None:
    sqlstate = psycopg.pq.DiagnosticField.SQLSTATE
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        pgconn = conn.pgconn
        assert pgconn.prepare(b"keyed", b"SELECT name FROM item WHERE id = $1", [20]).status == 1
        for _ in range(RUNS):
            for key, code, value in (
                (b"1", None, b"item1"),
                (b"x1", b"22P02", None),
                (b"99999999999999999999", b"22003", None),
                (b"3", None, b"item3"),
            ):
                result = pgconn.exec_prepared(b"keyed", [key])
                assert result.error_field(sqlstate) == code
                if value is not None:
                    assert result.get_value(0, 0) == value


def test_a_kept_round_after_a_module_update(server: PG) -> None:
    """A module update makes every kept entry stale: the next round goes the generic
    way (the statement found again for the new schema) and answers from the new rows."""
    owner = server.owner_token
    with psycopg.connect(server.dsn(), autocommit=True, prepare_threshold=0) as conn:
        query = "SELECT name FROM item WHERE id = %s"
        for _ in range(RUNS):
            assert conn.execute(query, (4,)).fetchall() == [("item4",)]
        extra = "@table(name='extra', public=True)\nclass Extra:\n"
        updated = MODULE + "\n" + extra + "    id: int = field(primary_key=True)\n"
        reply = server.server.deploy("shop", updated, owner)
        assert reply.status in (200, 201), reply
        conn.execute("UPDATE item SET name = %s WHERE id = %s", ("renamed4", 4))
        for _ in range(RUNS):
            assert conn.execute(query, (4,)).fetchall() == [("renamed4",)]


def test_many_kept_rounds_in_one_read_answer_in_order(server: PG) -> None:
    """psycopg's pipeline with a Sync after each query sends whole rounds back to back:
    the kept rounds buffered together are answered one after another, in order, with
    the replies left to pile up in the socket until the client reads them."""
    keys = [(n * 7) % 9 + 1 for n in range(2000)]  # ids 6 to 9 do not exist
    with psycopg.connect(server.dsn(), autocommit=True, prepare_threshold=0) as conn:
        query = "SELECT id, qty FROM item WHERE id = %s"
        conn.execute(query, (1,))
        cursors = []
        with conn.pipeline() as pipeline:
            for key in keys:
                cursors.append((key, conn.execute(query, (key,))))
                pipeline.sync()
        for key, cursor in cursors:
            assert cursor.fetchall() == ([(key, key % 7)] if key <= 5 else [])
