"""Transaction blocks over the PostgreSQL port: DML inside BEGIN ... COMMIT applies at
COMMIT, atomically, and not at all on ROLLBACK; others see nothing before; a block
sees its own writes; a failed block stays failed until it ends; ReadyForQuery says
so (psycopg's ``info.transaction_status`` is read from it)."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.pq import TransactionStatus

from tests.pgwire.conftest import PG

INSERT = "INSERT INTO item (id, name, price, qty, active, note) VALUES "


def count(conn: psycopg.Connection, low: int, high: int) -> int:
    row = conn.execute(
        "SELECT count(*) FROM item WHERE id >= %s AND id <= %s", (low, high)
    ).fetchone()
    assert row is not None
    return int(row[0])


def test_commit_applies_the_block_atomically_and_invisibly_until_then(pg: PG) -> None:
    with psycopg.connect(pg.dsn()) as writer, psycopg.connect(pg.dsn(), autocommit=True) as other:
        cursor = writer.execute(INSERT + "(2001, 'tx-a', 1.0, 1, true, NULL)")
        assert cursor.rowcount == 1
        assert writer.info.transaction_status == TransactionStatus.INTRANS
        cursor = writer.execute(INSERT + "(2002, 'tx-b', 1.0, 1, true, NULL)")
        cursor = writer.execute("UPDATE item SET qty = 5 WHERE id >= 2001 AND id <= 2002")
        assert cursor.rowcount == 2  # the block's own rows, seen by its UPDATE
        assert count(writer, 2001, 2002) == 2  # and by its SELECT
        assert count(other, 2001, 2002) == 0  # nobody else sees them yet
        writer.commit()
        assert writer.info.transaction_status == TransactionStatus.IDLE
        assert count(other, 2001, 2002) == 2
        assert other.execute("SELECT qty FROM item WHERE id = 2002").fetchone() == (5,)


def test_rollback_applies_nothing(pg: PG) -> None:
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute(INSERT + "(2101, 'rb', 1.0, 1, true, NULL)")
        conn.execute("DELETE FROM item WHERE id = 1")
        assert count(conn, 1, 1) == 0
        conn.rollback()
        assert count(conn, 2101, 2101) == 0
        assert count(conn, 1, 1) == 1


def test_a_failed_block_refuses_until_rollback_and_commit_becomes_rollback(pg: PG) -> None:
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute(INSERT + "(2201, 'fail', 1.0, 1, true, NULL)")
        with pytest.raises(psycopg.errors.UndefinedColumn):
            conn.execute("SELECT nope FROM item")
        assert conn.info.transaction_status == TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT 1")
        conn.commit()  # answered ROLLBACK: nothing of the block applies
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert count(conn, 2201, 2201) == 0


def test_a_duplicate_key_in_a_block_fails_at_once(pg: PG) -> None:
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute(INSERT + "(2301, 'dup', 1.0, 1, true, NULL)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute(INSERT + "(2301, 'dup2', 1.0, 1, true, NULL)")
        conn.rollback()


def test_commit_fails_whole_when_another_writer_changed_what_the_block_counted(pg: PG) -> None:
    with psycopg.connect(pg.dsn()) as block, psycopg.connect(pg.dsn(), autocommit=True) as other:
        other.execute(INSERT + "(2401, 'race', 1.0, 1, true, NULL)")
        cursor = block.execute("UPDATE item SET qty = 3 WHERE id >= 2401 AND id <= 2402")
        assert cursor.rowcount == 1
        other.execute(INSERT + "(2402, 'race2', 1.0, 1, true, NULL)")
        with pytest.raises(psycopg.errors.SerializationFailure):
            block.commit()
        assert other.execute("SELECT qty FROM item WHERE id = 2401").fetchone() == (1,)


def test_savepoints_roll_back_to_where_they_were_set(pg: PG) -> None:
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute(INSERT + "(2501, 'sp-a', 1.0, 1, true, NULL)")
        with (
            pytest.raises(psycopg.errors.UndefinedTable),
            conn.transaction(),  # a savepoint inside the open block
        ):
            conn.execute(INSERT + "(2502, 'sp-b', 1.0, 1, true, NULL)")
            conn.execute("SELECT * FROM nowhere")
        assert conn.info.transaction_status == TransactionStatus.INTRANS
        conn.commit()
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert count(conn, 2501, 2501) == 1 and count(conn, 2502, 2502) == 0


def test_session_statements(pg: PG) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("SHOW TimeZone").fetchone() == ("UTC",)
        assert conn.execute("SHOW transaction isolation level").fetchone() == ("read committed",)
        conn.execute("SET application_name = 'tests'")
        assert conn.execute("SHOW application_name").fetchone() == ("tests",)
        assert conn.info.parameter_status("application_name") == "tests"
        conn.execute("RESET application_name")
        assert conn.execute("SHOW application_name").fetchone() == ("",)
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SET TimeZone = 'Europe/Paris'")
        with pytest.raises(psycopg.errors.UndefinedObject):
            conn.execute("SHOW no_such_setting")
        conn.execute("DISCARD ALL")
        version = conn.execute("SELECT version()").fetchone()
        assert (
            version is not None
            and version[0].startswith("PostgreSQL 15.")
            and "Cosmictron" in version[0]
        )
        assert conn.execute("SELECT current_schema(), current_database()").fetchone() == (
            "public",
            "shop",
        )
        assert conn.execute("SELECT current_setting('DateStyle')").fetchone() == ("ISO, MDY",)
        assert conn.info.server_version // 10000 == 15
        assert conn.info.parameter_status("standard_conforming_strings") == "on"
