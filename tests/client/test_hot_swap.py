"""The SDK across module updates (hot-swaps) and reconnects, against a real server.

Each test deploys a module, subscribes through the SDK, deploys a new version and
checks what the application is told (``on_module_updated``, ``on_subscription_ended``,
row callbacks) and what the cache holds: rows of a changed table refilled in the new
shape, rows of a dropped table gone, the new reducers callable by the schema refetched.
Waits are on callbacks (``asyncio.Event``), never on sleeps.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cosmictron.client import Client, DatabaseSchema, connect
from cosmictron.errors import NotFound, SubscriptionError
from tests.client.conftest import Server

V1 = """
from cosmictron import *

@table(public=True)
class Note:
    id: int = field(primary_key=True)
    text: str = ""

@table(public=True)
class Tag:
    id: int = field(primary_key=True)
    name: str = ""

@reducer
def note(ctx: ReducerContext, id: int, text: str) -> None:
    ctx.db.note.insert(Note(id=id, text=text))

@reducer
def tag(ctx: ReducerContext, id: int, name: str) -> None:
    ctx.db.tag.insert(Tag(id=id, name=name))
"""

# Compatible: a column with a default on ``note`` and a new reducer returning a value.
V2 = (
    V1.replace('    text: str = ""\n', '    text: str = ""\n    stars: int = 0\n', 1)
    + """
@reducer
def star(ctx: ReducerContext, id: int) -> int:
    row = ctx.db.note.id.find(id)
    row.stars += 1
    ctx.db.note.id.update(row)
    return row.stars
"""
)

# Incompatible (needs clear): ``tag`` is dropped.
V3 = V2[: V2.index("@table(public=True)\nclass Tag")] + V2[V2.index("@reducer\ndef note") :]
V3 = V3.replace(
    "@reducer\ndef tag(ctx: ReducerContext, id: int, name: str) -> None:\n"
    "    ctx.db.tag.insert(Tag(id=id, name=name))\n",
    "",
)

NOTES = "SELECT * FROM note"
TAGS = "SELECT * FROM tag"


class Watcher:
    """Records every callback of a client; ``updated`` fires on each module update."""

    def __init__(self, client: Client) -> None:
        self.events: list[tuple[str, Any, ...]] = []
        self.module_updates: list[tuple[DatabaseSchema, list[str]]] = []
        self.ended: list[tuple[str, SubscriptionError]] = []
        self.updated = asyncio.Event()
        client.on_insert(lambda table, row: self.events.append(("insert", table, dict(row))))
        client.on_delete(lambda table, row: self.events.append(("delete", table, dict(row))))
        client.on_subscription_ended(lambda query, error: self.ended.append((query, error)))
        client.on_module_updated(self._module_updated)

    def _module_updated(self, schema: DatabaseSchema, changed: list[str]) -> None:
        self.module_updates.append((schema, changed))
        self.updated.set()

    async def next_update(self) -> None:
        await asyncio.wait_for(self.updated.wait(), 30)
        self.updated.clear()


async def deploy(app: Server, source: str, token: str, clear: bool = False) -> None:
    reply = await asyncio.to_thread(app.deploy, "notes", source, token, clear)
    assert reply.status in (200, 201), reply


async def settled(client: Client) -> None:
    """Wait until the resync (if any) has resubscribed and the cache is caught up."""
    task = client._resync_task
    if task is not None:
        await asyncio.wait_for(asyncio.shield(task), 30)
    await client.wait_caught_up()


def test_compatible_update_refetches_schema_and_refills_the_changed_table(
    app: Server,
) -> None:
    _, token = app.deployer()

    async def scenario() -> None:
        await deploy(app, V1, token)
        async with await connect("notes", NOTES, TAGS, server=app.url, token=token) as client:
            watcher = Watcher(client)
            await client.call("note", 1, "first")
            await client.call("tag", 1, "red")
            with pytest.raises(NotFound):
                await client.call("star", 1)  # not in v1
            watcher.events.clear()
            await deploy(app, V2, token)
            await watcher.next_update()
            await settled(client)
            ((schema, changed),) = watcher.module_updates
            assert changed == ["note"] and "star" in schema.reducers
            assert client.schema is schema
            assert watcher.ended == []  # both queries still fit: resubscribed
            assert client.queries == (NOTES, TAGS)
            # The note row left in its old shape and came back in the new one; tag untouched.
            assert watcher.events == [
                ("delete", "note", {"id": 1, "text": "first"}),
                ("insert", "note", {"id": 1, "text": "first", "stars": 0}),
            ]
            assert client.table("note").find(1).stars == 0
            assert client.table("tag").find(1).name == "red"
            # The new reducer is known (its return value decoded) and updates flow again.
            assert await client.call("star", 1) == 1
            assert client.table("note").find(1).stars == 1
            await client.call("tag", 2, "blue")
            assert client.table("tag").count() == 2
            assert client.statistics().module_updates == 1

    asyncio.run(scenario())


def test_incompatible_update_ends_the_queries_that_no_longer_fit(app: Server) -> None:
    _, token = app.deployer()

    async def scenario() -> None:
        await deploy(app, V2, token)
        async with await connect("notes", NOTES, TAGS, server=app.url, token=token) as client:
            watcher = Watcher(client)
            errors: list[Any] = []
            client.on_error(errors.append)
            await client.call("note", 1, "first")
            await client.call("tag", 1, "red")
            watcher.events.clear()
            await deploy(app, V3, token, clear=True)
            await watcher.next_update()
            await settled(client)
            ((schema, changed),) = watcher.module_updates
            assert changed == ["tag"] and "tag" not in schema.tables
            ((query, error),) = watcher.ended
            assert query == TAGS and "tag" in str(error)
            assert errors and "clear" in str(errors[0])  # the server's reason, as before
            assert client.queries == (NOTES,)
            with pytest.raises(NotFound, match="no table named 'tag'"):
                client.table("tag")
            assert client.table("note").count() == 0  # cleared by the deploy
            assert sorted(watcher.events, key=repr) == sorted(
                [
                    ("delete", "tag", {"id": 1, "name": "red"}),
                    ("delete", "note", {"id": 1, "text": "first", "stars": 0}),
                ],
                key=repr,
            )
            await client.call("note", 2, "after")
            assert client.table("note").find(2).text == "after"

    asyncio.run(scenario())


def test_every_query_ended_leaves_an_empty_subscription(app: Server) -> None:
    _, token = app.deployer()

    async def scenario() -> None:
        await deploy(app, V2, token)
        async with await connect("notes", TAGS, server=app.url, token=token) as client:
            watcher = Watcher(client)
            await client.call("tag", 1, "red")
            await deploy(app, V3, token, clear=True)
            await watcher.next_update()
            await settled(client)
            assert [query for query, _ in watcher.ended] == [TAGS]
            assert client.queries == ()
            await client.subscribe(NOTES)  # a new subscription works as usual
            await client.call("note", 1, "x")
            assert client.table("note").count() == 1

    asyncio.run(scenario())


def test_an_update_to_an_unread_table_keeps_the_subscription(app: Server) -> None:
    _, token = app.deployer()

    async def scenario() -> None:
        await deploy(app, V1, token)
        async with await connect("notes", TAGS, server=app.url, token=token) as client:
            watcher = Watcher(client)
            await client.call("tag", 1, "red")
            sends = client.statistics().full_resends
            await deploy(app, V2, token)
            await watcher.next_update()
            await settled(client)
            assert watcher.module_updates[0][1] == ["note"]
            assert watcher.ended == [] and client.statistics().full_resends == sends
            assert client.table("tag").count() == 1 and client.table("note").count() == 0
            await client.call("tag", 2, "blue")
            assert client.table("tag").count() == 2

    asyncio.run(scenario())


def test_an_update_while_disconnected_is_followed_on_reconnect(app: Server) -> None:
    _, token = app.deployer()

    async def scenario() -> None:
        await deploy(app, V2, token)
        async with await connect("notes", NOTES, TAGS, server=app.url, token=token) as client:
            watcher = Watcher(client)
            await client.call("note", 1, "first")
            await client.call("tag", 1, "red")
            client.hold_reconnect()
            await client.drop_connection()
            await deploy(app, V3, token, clear=True)
            client.allow_reconnect()
            await watcher.next_update()
            await settled(client)
            assert watcher.module_updates[0][1] == ["tag"]
            assert [query for query, _ in watcher.ended] == [TAGS]
            assert client.queries == (NOTES,) and client.table("note").count() == 0
            await client.call("note", 3, "back")
            assert client.table("note").find(3).text == "back"

    asyncio.run(scenario())


def test_the_cache_matches_the_server_after_an_update_under_concurrent_writes(
    app: Server,
) -> None:
    """Another client writes while the update and the resync (its probes included) run:
    the cache ends up exactly the server's rows, with no update applied twice or lost."""
    _, token = app.deployer()

    async def scenario() -> None:
        await deploy(app, V2, token)
        async with (
            await connect("notes", NOTES, TAGS, server=app.url, token=token) as client,
            await connect("notes", server=app.url, token=token) as writer,
        ):
            watcher = Watcher(client)
            stop = asyncio.Event()

            async def write() -> None:
                n = 0
                while not stop.is_set():
                    n += 1
                    await writer.call("note", n, f"note {n}")

            for n in range(1, 4):
                await client.call("tag", n, f"tag {n}")
            writing = asyncio.create_task(write())
            await asyncio.sleep(0.2)
            await deploy(app, V3, token, clear=True)
            await watcher.next_update()
            await settled(client)
            await asyncio.sleep(0.2)  # more writes after the resubscription
            stop.set()
            await writing
            await client.wait_caught_up()
            server_rows = await client.sql("SELECT id, text, stars FROM note")
            cached = [dict(row) for row in client.table("note").iter()]
            key = lambda row: row["id"]  # noqa: E731
            assert sorted(cached, key=key) == sorted(server_rows, key=key)
            assert server_rows, "the writer kept writing across the update"
            assert client.queries == (NOTES,)

    asyncio.run(scenario())
