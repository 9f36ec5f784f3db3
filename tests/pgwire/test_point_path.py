"""The point-query path (a cached primary-key lookup answered on the event loop) keeps
every rule of the generic one: rights, the per-identity query rate, a transaction
block's own writes, NULL and missing keys. Each check runs the statement many times, so
the later runs take the cached path."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import PG, shop_server

RUNS = 5


def test_prepared_point_lookups_answer_every_time(pg: PG) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(pg.url(pg.reader_token))
        try:
            statement = await conn.prepare("SELECT id, name, note FROM item WHERE id = $1")
            for _ in range(RUNS):
                for key in (3, 4, 10_000, None):
                    row = await statement.fetchrow(key)
                    if key in (3, 4):
                        assert tuple(row) == (key, f"item{key}", None)
                    else:
                        assert row is None
        finally:
            await conn.close()

    asyncio.run(run())
    with psycopg.connect(pg.dsn(pg.reader_token), autocommit=True, prepare_threshold=0) as conn:
        for binary in (False, True):
            for _ in range(RUNS):
                cursor = conn.execute("SELECT * FROM item WHERE id = %s", (6,), binary=binary)
                assert cursor.statusmessage == "SELECT 1"
                assert cursor.fetchall() == [(6, "item6", 9.0, 6, True, None)]


def test_a_prepared_text_key_is_checked_on_every_run(pg: PG) -> None:
    """A key sent as text (psycopg's default) is read and range-checked on the cached
    path as on the first run: int8's edges answer, one past them is 22003, a word is
    22P02, and the session serves on after each."""
    sqlstate = psycopg.pq.DiagnosticField.SQLSTATE
    query = b"SELECT id FROM item WHERE id = $1"
    with psycopg.connect(pg.dsn(pg.reader_token), autocommit=True) as conn:
        conn.pgconn.prepare(b"by_id", query, [20])  # int8, as psycopg declares an int
        for _ in range(RUNS):
            for key, code in (
                (b"3", None),
                (b" 4 ", None),
                (b"9223372036854775807", None),
                (b"-9223372036854775808", None),
                (b"9223372036854775808", b"22003"),
                (b"-9223372036854775809", b"22003"),
                (b"seven", b"22P02"),
            ):
                result = conn.pgconn.exec_prepared(b"by_id", [key], [0])
                assert result.error_field(sqlstate) == code, key
                if code is None:
                    found = [result.get_value(0, 0)] if result.ntuples else []
                    assert found == ([key.strip()] if key.strip() in (b"3", b"4") else [])


def test_a_private_table_is_refused_on_every_run(pg: PG) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(pg.url(pg.reader_token))
        try:
            for _ in range(RUNS):
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetchrow("SELECT * FROM secret WHERE id = $1", 1)
        finally:
            await conn.close()

    asyncio.run(run())
    with psycopg.connect(pg.dsn(pg.reader_token), autocommit=True, prepare_threshold=0) as conn:
        for _ in range(RUNS):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM secret WHERE id = %s", (1,))
    with psycopg.connect(pg.dsn(), autocommit=True, prepare_threshold=0) as conn:
        for _ in range(RUNS):  # the owner reads it
            assert conn.execute("SELECT value FROM secret WHERE id = %s", (1,)).fetchall() == [
                ("hidden",)
            ]


def test_a_point_lookup_in_a_block_sees_the_blocks_writes(pg: PG) -> None:
    with psycopg.connect(pg.dsn(), prepare_threshold=0) as conn:
        query = "SELECT name FROM item WHERE id = %s"
        for _ in range(RUNS):  # cached as a point lookup before the block
            assert conn.execute(query, (9,)).fetchall() == [("item9",)]
        conn.commit()
        conn.execute(
            "INSERT INTO item (id, name, price, qty, active) VALUES (%s, %s, 1.0, 1, true)",
            (7001, "in-block"),
        )
        for _ in range(RUNS):
            assert conn.execute(query, (7001,)).fetchall() == [("in-block",)]
        conn.rollback()
        for _ in range(RUNS):
            assert conn.execute(query, (7001,)).fetchall() == []


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PG]:
    env = {"COSMICTRON_RATE_QUERIES_PER_S": "1", "COSMICTRON_RATE_QUERIES_BURST": "20"}
    with shop_server(tmp_path_factory.mktemp("pgrate") / "data", env) as pg:
        yield pg


def test_point_lookups_count_against_the_query_rate(slow: PG) -> None:
    async def run() -> int:
        conn = await asyncpg.connect(slow.url())
        answered = 0
        try:
            statement = await conn.prepare("SELECT name FROM item WHERE id = $1")
            with pytest.raises(asyncpg.exceptions.ConfigurationLimitExceededError) as caught:
                for _ in range(100):
                    assert await statement.fetchval(2) == "item2"
                    answered += 1
            assert "too many queries" in str(caught.value)
        finally:
            await conn.close()
        return answered

    # A burst of 20 at 1 per second: far fewer than 100 answered before the refusal.
    assert asyncio.run(run()) < 40


def test_connections_of_one_identity_share_its_query_rate(slow: PG) -> None:
    """Each session holds its caller's bucket (``Throttle.allowance``): the same one
    for every connection of the identity, so two connections get no more than one."""

    async def run() -> tuple[int, int]:
        first = await asyncpg.connect(slow.url())
        second = await asyncpg.connect(slow.url())
        answered = [0, 0]
        try:
            statements = [
                await conn.prepare("SELECT name FROM item WHERE id = $1")
                for conn in (first, second)
            ]
            for _ in range(60):
                for n, statement in enumerate(statements):
                    try:
                        assert await statement.fetchval(3) == "item3"
                        answered[n] += 1
                    except asyncpg.exceptions.ConfigurationLimitExceededError as exc:
                        assert "too many queries" in str(exc)
        finally:
            await first.close()
            await second.close()
        return answered[0], answered[1]

    # One burst of 20 at 1 per second for both (less what the test before spent): each
    # connection alone would have answered 20 or more of its 60.
    answered = asyncio.run(run())
    assert sum(answered) < 40 and min(answered) < 20, answered


@pytest.fixture(scope="module")
def tight(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PG]:
    env = {"COSMICTRON_SQL_PARAMS_BYTES_MAX": "9"}  # a name "p1" and an integer weigh 10
    with shop_server(tmp_path_factory.mktemp("pgtight") / "data", env) as pg:
        yield pg


def test_point_lookups_weigh_their_parameters_on_every_run(tight: PG) -> None:
    """The size check of a prepared point lookup's parameters is not skipped on the
    cached path: over ``sql_params_bytes_max`` every run is refused (53400), and the
    session serves on."""

    async def run() -> None:
        conn = await asyncpg.connect(tight.url())
        try:
            statement = await conn.prepare("SELECT name FROM item WHERE id = $1")
            for _ in range(RUNS):
                with pytest.raises(asyncpg.exceptions.ConfigurationLimitExceededError) as caught:
                    await statement.fetchval(2)
                assert "sql_params_bytes_max" in str(caught.value)
            assert await conn.fetchval("SELECT name FROM item WHERE id = 2") == "item2"
        finally:
            await conn.close()

    asyncio.run(run())


def test_deallocate_drops_named_statements(pg: PG) -> None:
    """psycopg sends ``DEALLOCATE ALL`` after a rollback once it has prepared statements."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("SELECT 1")  # an unnamed statement, which DEALLOCATE leaves alone
        assert conn.execute("DEALLOCATE ALL").statusmessage == "DEALLOCATE ALL"
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            conn.execute("DEALLOCATE nosuch")
        pgconn = conn.pgconn
        assert pgconn.prepare(b"mine", b"SELECT name FROM item WHERE id = $1").status == 1
        assert conn.execute("DEALLOCATE mine").statusmessage == "DEALLOCATE"
        assert pgconn.exec_prepared(b"mine", [b"1"]).error_message


def test_pipelined_point_lookups_keep_their_order_errors_and_back_pressure(pg: PG) -> None:
    """psycopg's pipeline mode sends many Bind/Execute/Sync in one go without reading:
    the frames that arrive together are answered on the synchronous path, in order,
    up to the first that needs the task (a scan, an error's skip-to-Sync), and the
    replies pile up in the socket until the client reads them (back pressure), with
    nothing lost or reordered."""
    keys = [(i % 60) + 1 for i in range(3000)]  # ids above 50 do not exist
    with psycopg.connect(pg.dsn(pg.reader_token), autocommit=True, prepare_threshold=0) as conn:
        cursors = []
        with conn.pipeline():
            for n, key in enumerate(keys):
                cursor = conn.cursor()
                if n % 500 == 250:  # a statement that is no point lookup, in between
                    cursor.execute("SELECT count(*) FROM item WHERE qty >= %s", (0,))
                else:
                    cursor.execute("SELECT id, name FROM item WHERE id = %s", (key,))
                cursors.append((n, key, cursor))
        for n, key, cursor in cursors:
            if n % 500 == 250:
                assert cursor.fetchall() == [(50,)]
            else:
                assert cursor.fetchall() == ([(key, f"item{key}")] if key <= 50 else [])
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.pipeline():
            conn.execute("SELECT id FROM item WHERE id = %s", (1,))
            conn.execute("SELECT * FROM secret WHERE id = %s", (1,))
        assert conn.execute("SELECT name FROM item WHERE id = %s", (7,)).fetchone() == ("item7",)
