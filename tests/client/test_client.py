"""Calls, queries, identities and the blocking wrapper, against a real server.

Return values come back decoded by the reducer's declared type; a failing call raises
the very ``cosmictron.errors`` class the database raised; a call cut off by a lost
connection raises ``ConnectionLost`` and is never sent again.
"""

from __future__ import annotations

import asyncio
import threading

import pytest

from cosmictron.client import Row, connect, connect_sync
from cosmictron.client.settings import Settings
from cosmictron.errors import (
    ConnectionLost,
    InvalidRequest,
    NotFound,
    ReducerFailed,
    SqlError,
    SubscriptionError,
)
from cosmictron.values import Identity, Timestamp
from tests.client.conftest import QUERIES, Server


def test_call_returns_values_and_raises_typed_errors(app: Server) -> None:
    async def scenario() -> None:
        async with await connect("shop", *QUERIES, server=app.url) as client:
            assert await client.call("put", 1, "one", 4) == 4
            assert await client.call("put", id=2, name="two", qty=5) == 5
            assert await client.call("put", 3, name="three", qty=6) == 6
            assert isinstance(await client.call("stamp"), Timestamp)
            assert await client.call("remove", 3) is True
            # The call's own changes are in the cache when it returns.
            item = client.table("item").find(1)
            assert isinstance(item, Row) and item.name == "one" and item["qty"] == 4
            assert item.owner == client.identity and isinstance(item.at, Timestamp)
            assert item.blob == b"\x04" and item.note == "even 4"
            assert client.table("item").find("two", by="name").id == 2
            assert client.table("item").find(3) is None
            await client.call("sit", "red", 1, "ann")
            assert client.table("seat").find("red", 1).who == "ann"
            with pytest.raises(ReducerFailed) as failed:
                await client.call("fail", 7)
            assert failed.value.reducer == "fail" and failed.value.cause_type == "ValueError"
            assert failed.value.reason == "ValueError: refusing 7"
            with pytest.raises(ReducerFailed, match="already has a row"):
                await client.call("put", 8, "one", 1)  # the unique name is taken
            with pytest.raises(NotFound, match="no reducer named 'nope'"):
                await client.call("nope")
            with pytest.raises(InvalidRequest, match="argument 'name'"):
                await client.call("put", 1)
            with pytest.raises(NotFound, match="no unique key 'qty'"):
                client.table("item").find(4, by="qty")
            assert client.table("item").count() == 2

    asyncio.run(scenario())


def test_sql_and_subscription_errors(app: Server) -> None:
    async def scenario() -> None:
        async with await connect("shop", "SELECT * FROM item", server=app.url) as client:
            await client.call("put", 1, "one", 4)
            assert await client.sql("SELECT name FROM item") == [{"name": "one"}]
            rows = await client.sql("SELECT id FROM item WHERE qty = :qty", {"qty": 4})
            assert rows == [{"id": 1}]
            with pytest.raises(SqlError, match="unknown column 'nope'"):
                await client.sql("SELECT nope FROM item")
            with pytest.raises(SqlError):
                await client.sql("SELECT nope FROM item WHERE id = :id", {"id": 1})
            with pytest.raises(SubscriptionError):
                await client.subscribe("SELECT * FROM nowhere")
            # New queries replace the old: the cache holds exactly their rows.
            await client.call("log", "a", 1)
            assert client.table("log").count() == 0
            await client.subscribe("SELECT * FROM log")
            assert client.table("log").count() == 1 and client.table("item").count() == 0
        with pytest.raises(NotFound):
            await connect("nowhere", server=app.url)

    asyncio.run(scenario())


def test_a_call_cut_off_by_a_drop_raises_and_is_not_resent(app: Server) -> None:
    async def scenario() -> None:
        async with await connect("shop", *QUERIES, server=app.url) as client:
            cut_off = asyncio.create_task(client.call("log", "once", 1))
            await asyncio.sleep(0)  # let the call be sent
            await client.drop_connection()
            with pytest.raises(ConnectionLost, match="may not have run"):
                await cut_off
            await client.wait_caught_up()  # reconnected and resumed
            rows = await client.sql("SELECT * FROM log WHERE kind = 'once'")
            assert len(rows) <= 1  # run once or not at all, never twice
            assert client.table("log").count() == len(rows)
            assert client.statistics().connections == 2

    asyncio.run(scenario())


def test_a_new_identity_can_be_saved_and_reused(app: Server) -> None:
    async def scenario() -> None:
        first = await connect("shop", server=app.url)
        assert isinstance(first.identity, Identity) and first.token
        first.save_identity()
        await first.close()
        saved = Settings.load().identities[app.url]  # the CLI's file, the CLI's format
        assert saved.identity == first.identity.hex()
        async with await connect("shop", server=app.url) as again:
            assert again.identity == first.identity
        async with await connect("shop", server=app.url, use_saved_token=False) as fresh:
            assert fresh.identity != first.identity

    asyncio.run(scenario())


def test_sync_client_runs_callbacks_on_its_thread(app: Server) -> None:
    with connect_sync("shop", "SELECT * FROM item", server=app.url) as client:
        seen: list[tuple[str, str, int]] = []
        client.on_insert(
            lambda table, row: seen.append((threading.current_thread().name, table, row.id))
        )
        updates: list[tuple[int, int]] = []
        client.on_update(lambda table, old, new: updates.append((old.qty, new.qty)))
        assert client.call("put", 1, "one", 1) == 1
        assert client.call("put", 1, "one", 2) == 2
        assert seen == [("cosmictron-client", "item", 1)] and updates == [(1, 2)]
        assert client.table("item").find(1).qty == 2
        assert [row.id for row in client.table("item").iter()] == [1]
        assert client.sql("SELECT COUNT(*) AS n FROM item") == [{"n": 1}]
        with pytest.raises(ReducerFailed):
            client.call("fail", 1)
        with pytest.raises(NotFound):
            client.table("nowhere")
        assert client.statistics().tx_offset == client.tx_offset
    with pytest.raises(NotFound):
        connect_sync("nowhere", server=app.url)
