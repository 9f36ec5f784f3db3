"""SQLAlchemy (reflection and a query), pandas ``read_sql`` and LangChain's
``SQLDatabase`` (listing tables, running a query) against a real server."""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from tests.pgwire.conftest import PG


@pytest.mark.parametrize("driver", ["psycopg", "asyncpg"])
def test_sqlalchemy_reflects_what_the_caller_may_see(pg: PG, driver: str) -> None:
    if driver == "asyncpg":
        pytest.importorskip("greenlet", reason="SQLAlchemy's asyncpg dialect needs greenlet")
        import asyncio

        from sqlalchemy.ext.asyncio import create_async_engine

        async def reflect() -> sa.MetaData:
            engine = create_async_engine(pg.url(scheme="postgresql+asyncpg"))
            metadata = sa.MetaData()
            async with engine.connect() as conn:  # every table, its indexes and keys
                await conn.run_sync(lambda c: metadata.reflect(c))
            await engine.dispose()
            return metadata

        metadata = asyncio.run(reflect())
        assert sorted(metadata.tables) == ["item", "kinds", "secret"]
        item = metadata.tables["item"]
        assert [c.name for c in item.columns] == ["id", "name", "price", "qty", "active", "note"]
        assert [c.name for c in item.primary_key.columns] == ["id"]
        assert [
            sorted(c.name for c in u.columns)
            for u in item.constraints
            if isinstance(u, sa.UniqueConstraint)
        ] == [["name"]]
        return
    engine = sa.create_engine(pg.url(scheme="postgresql+psycopg"))
    inspector = sa.inspect(engine)
    assert sorted(inspector.get_table_names()) == ["item", "kinds", "secret"]
    columns = inspector.get_columns("item")
    shown = [(c["name"], str(c["type"]), c["nullable"]) for c in columns]
    assert shown == [
        ("id", "BIGINT", False),
        ("name", "TEXT", False),
        ("price", "DOUBLE PRECISION", False),
        ("qty", "BIGINT", False),
        ("active", "BOOLEAN", False),
        ("note", "TEXT", True),
    ]
    assert inspector.get_pk_constraint("item")["constrained_columns"] == ["id"]
    uniques = inspector.get_unique_constraints("item")
    assert [u["column_names"] for u in uniques] == [["name"]]
    assert inspector.get_foreign_keys("item") == []
    assert inspector.has_table("item") and not inspector.has_table("nowhere")
    reader_engine = sa.create_engine(pg.url(pg.reader_token, scheme="postgresql+psycopg"))
    reader = sa.inspect(reader_engine)
    assert sorted(reader.get_table_names()) == ["item", "kinds"]
    assert not reader.has_table("secret")
    reader_engine.dispose()
    table = sa.Table("item", sa.MetaData(), autoload_with=engine)
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(table.c.name).where(table.c.id.in_([1, 2])).order_by(table.c.id)
        ).all()
    assert [r.name for r in rows] == ["item1", "item2"]
    engine.dispose()


def test_pandas_read_sql(pg: PG) -> None:
    engine = sa.create_engine(pg.url(scheme="postgresql+psycopg"))
    with engine.connect() as conn:
        frame = pd.read_sql("SELECT id, price, active FROM item WHERE id <= 3 ORDER BY id", conn)
        typed = pd.read_sql(
            sa.text("SELECT id FROM item WHERE id <= :top ORDER BY id"), conn, params={"top": 2}
        )
    engine.dispose()
    assert frame["id"].tolist() == [1, 2, 3]
    assert frame["price"].tolist() == [1.5, 3.0, 4.5]
    assert frame["active"].tolist() == [False, True, False]
    assert typed["id"].tolist() == [1, 2]


def test_langchain_sql_database(pg: PG) -> None:
    utilities = pytest.importorskip(
        "langchain_community.utilities", reason="langchain-community is not installed"
    )
    database = utilities.SQLDatabase.from_uri(pg.url(pg.reader_token, scheme="postgresql+psycopg"))
    assert sorted(database.get_usable_table_names()) == ["item", "kinds"]
    info = database.get_table_info(["item"])
    assert "CREATE TABLE item" in info and "name TEXT NOT NULL" in info
    assert database.run("SELECT name FROM item WHERE id = 4") == "[('item4',)]"
    database._engine.dispose()
