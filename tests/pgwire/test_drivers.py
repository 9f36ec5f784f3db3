"""psycopg and asyncpg against a real server's PostgreSQL port: parameters in text and
binary, row counts, errors with SQLSTATE and position, the type mapping, rights."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import psycopg
import pytest

from tests.pgwire.conftest import PG


def test_psycopg_parameterised_select_text_and_binary(pg: PG) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for binary in (False, True):
            rows = conn.execute(
                "SELECT id, name, price, active FROM item WHERE id = %s OR name = %s ORDER BY id",
                (3, "item4"),
                binary=binary,
            ).fetchall()
            assert rows == [(3, "item3", 4.5, False), (4, "item4", 6.0, True)]
        cursor = conn.execute("SELECT count(*) FROM item WHERE qty > %s", (2,))
        assert cursor.fetchone() == (sum(1 for i in range(1, 51) if i % 7 > 2),)


def test_psycopg_type_mapping(pg: PG) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for binary in (False, True):
            cursor = conn.execute("SELECT * FROM kinds", binary=binary)
            oids = [column.type_code for column in cursor.description]
            assert oids == [20, 21, 23, 1700, 700, 17, 1184, 1186, 25, 114]
            (row,) = cursor.fetchall()
            assert row[:6] == (1, -3, 70000, 2**63 + 5, 0.5, b"\x00\xffab")
            assert row[6] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC)
            assert row[7] == dt.timedelta(days=1, hours=1, minutes=1, seconds=1, microseconds=1)
            assert len(row[8]) == 64 and row[9] == ["a", "b"]


def test_psycopg_dml_row_counts(pg: PG) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        cursor = conn.execute(
            "INSERT INTO item (id, name, price, qty, active, note) "
            "VALUES (%s, %s, 1.0, 1, true, NULL), (%s, %s, 1.0, 1, true, NULL)",
            (1001, "dml-a", 1002, "dml-b"),
        )
        assert cursor.rowcount == 2 and cursor.statusmessage == "INSERT 0 2"
        cursor = conn.execute("UPDATE item SET qty = 9 WHERE id >= %s AND id <= %s", (1001, 1002))
        assert cursor.rowcount == 2 and cursor.statusmessage == "UPDATE 2"
        cursor = conn.execute("DELETE FROM item WHERE id = %s", (1001,))
        assert cursor.rowcount == 1 and cursor.statusmessage == "DELETE 1"
        cursor = conn.execute("DELETE FROM item WHERE id = %s", (1001,))
        assert cursor.rowcount == 0
        cursor = conn.execute("DELETE FROM item WHERE id = 1002 RETURNING name")
        assert cursor.fetchall() == [("dml-b",)] and cursor.statusmessage == "DELETE 1"


def test_psycopg_errors_carry_sqlstate_and_position(pg: PG) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        cases = [
            ("SELECT nope FROM item", "42703", 8),
            ("SELECT * FROM nowhere", "42P01", 15),
            ("SELEC 1", "42601", None),
            ("SELECT * FROM item WHERE id = 'x' + 1", None, None),
        ]
        for text, code, position in cases:
            with pytest.raises(psycopg.Error) as caught:
                conn.execute(text)
            if code is not None:
                assert caught.value.sqlstate == code, (text, caught.value)
            if position is not None:
                assert caught.value.diag.statement_position == str(position)
        # the connection serves on after every error
        assert conn.execute("SELECT 1").fetchone() == (1,)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        sqlstate = psycopg.pq.DiagnosticField.SQLSTATE
        query = b"SELECT * FROM item WHERE id = $1"
        # a parameter that does not read as the column's type, or does not fit it
        result = conn.pgconn.exec_params(query, [b"seven"], [0])
        assert result.error_field(sqlstate) == b"22P02"
        result = conn.pgconn.exec_params(query, [b"99999999999999999999999"], [0])
        assert result.error_field(sqlstate) == b"22003"
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_non_owner_reads_public_is_refused_private_and_dml(pg: PG) -> None:
    with psycopg.connect(pg.dsn(pg.reader_token), autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM item").fetchone() == (
            conn.execute("SELECT count(*) FROM item").fetchone()[0],
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM secret")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM item WHERE id = 1")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO item (id, name) VALUES (%s, %s)", (5000, "nope"))
    with (
        psycopg.connect(pg.dsn(pg.reader_token)) as conn,  # inside a block too
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        conn.execute("UPDATE item SET qty = 0")


def test_asyncpg_binary_parameters_and_prepared_statements(pg: PG) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(pg.url())
        try:
            row = await conn.fetchrow(
                "SELECT id, name, price, active, note FROM item WHERE id = $1", 5
            )
            assert tuple(row) == (5, "item5", 7.5, False, None)
            statement = await conn.prepare(
                "SELECT name FROM item WHERE price > $1 AND qty = $2 ORDER BY id"
            )
            assert [p.name for p in statement.get_parameters()] == ["float8", "int8"]
            names = [r["name"] for r in await statement.fetch(30.0, 3)]
            assert names == [f"item{i}" for i in range(21, 51) if i % 7 == 3]
            assert await conn.fetchval("SELECT count(*) FROM item WHERE name = $1", "item9") == 1
            # asyncpg prepares (Parse, Describe) even session statements
            assert await conn.fetchval("SHOW TimeZone") == "UTC"
            assert await conn.fetchval("SELECT current_database()") == "shop"
            status = await conn.execute("UPDATE item SET note = $1 WHERE id = $2", "asyncpg", 7)
            assert status == "UPDATE 1"
            assert await conn.fetchval("SELECT note FROM item WHERE id = 7") == "asyncpg"
            kinds = await conn.fetchrow("SELECT * FROM kinds")
            assert kinds["big"] == 2**63 + 5 and kinds["blob"] == b"\x00\xffab"
            assert kinds["at"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123456, tzinfo=dt.UTC)
            with pytest.raises(asyncpg.UndefinedColumnError):
                await conn.fetch("SELECT nope FROM item WHERE id = $1", 1)
            async with conn.transaction():
                await conn.execute("UPDATE item SET qty = 42 WHERE id = $1", 8)
            assert await conn.fetchval("SELECT qty FROM item WHERE id = 8") == 42
            # a cursor reads in batches: Execute with a row limit, PortalSuspended
            async with conn.transaction():
                cursor = conn.cursor("SELECT id FROM item ORDER BY id", prefetch=7)
                seen = [r["id"] async for r in cursor]
            assert seen == sorted(seen) and len(seen) >= 50
        finally:
            await conn.close()

    asyncio.run(run())
