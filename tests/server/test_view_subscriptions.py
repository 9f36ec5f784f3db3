"""Subscribing to a query that names a view, over a real server's WebSocket.

The view is made through ``POST /v1/database/{name}/sql`` by the owner, then a client
subscribes to ``SELECT ... FROM view``: the view is expanded as ``db.sql`` expands it,
so the initial rows are the view's, and a reducer writing the table under the view
sends the difference in a ``TransactionUpdate`` (the query is re-evaluated when that
table changes). ``CREATE OR REPLACE VIEW`` changes what new subscriptions see.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.server.conftest import Server, fresh_database
from tests.server.test_websocket import MODULE, Connect, run

LONG = "SELECT * FROM long_message ORDER BY id"
JOINED = "SELECT l.id, n.text AS note FROM long_message l JOIN note n ON n.id = l.id"


@pytest.fixture
def chat(module_server: Server) -> Iterator[tuple[Server, str]]:
    """The module's one server with a new ``chat`` database for this test."""
    with fresh_database(module_server, "chat", MODULE) as token:
        yield module_server, token


def test_a_subscription_to_a_view_updates_live_when_its_table_changes(
    chat: tuple[Server, str],
) -> None:
    server, owner = chat
    for text in ("hi", "a longer one"):
        assert server.request("POST", "/v1/database/chat/call/post", [text], owner).status == 200
    made = server.request(
        "POST",
        "/v1/database/chat/sql",
        "CREATE VIEW long_message AS SELECT id, text FROM message WHERE LENGTH(text) > 3",
        owner,
        content_type="text/plain",
    )
    assert made.status == 200, made

    async def scenario(connect: Connect) -> None:
        alice = await connect()
        await alice.expect("IdentityToken")
        applied = await alice.subscribe(1, LONG, JOINED)
        tables = {table["table_name"]: table for table in applied["tables"]}
        assert tables[LONG]["rows"] == [{"id": 2, "text": "a longer one"}]
        assert tables[JOINED]["rows"] == []

        await alice.send("CallReducer", reducer="post", args=["another long one"])
        update = await alice.expect("TransactionUpdate")
        await alice.expect("ReducerResult")
        changed = {table["table_name"]: table for table in update["tables"]}
        assert changed == {
            LONG: {
                "table_name": LONG,
                "inserts": [{"id": 3, "text": "another long one"}],
                "deletes": [],
            }
        }

        await alice.send("CallReducer", reducer="post", args=["no"])  # not in the view
        await alice.expect("ReducerResult")
        await alice.barrier()  # no TransactionUpdate came for it

        # Note 1 pairs with message 1, which the view leaves out: JOINED is unchanged.
        await alice.send("CallReducer", reducer="write", args=["first"])
        await alice.expect("ReducerResult")
        await alice.barrier()
        await alice.send("CallReducer", reducer="write", args=["second"])
        update = await alice.expect("TransactionUpdate")
        await alice.expect("ReducerResult")
        changed = {table["table_name"]: table for table in update["tables"]}
        assert changed[JOINED]["inserts"] == [{"id": 2, "note": "second"}]
        await alice.barrier()

    run(server, scenario)


def test_create_or_replace_view_changes_what_a_new_subscription_sees(
    chat: tuple[Server, str],
) -> None:
    server, owner = chat
    for text in ("hi", "a longer one"):
        server.request("POST", "/v1/database/chat/call/post", [text], owner)
    for statement in (
        "CREATE VIEW long_message AS SELECT id, text FROM message WHERE LENGTH(text) > 3",
        "CREATE OR REPLACE VIEW long_message AS SELECT id, text FROM message WHERE id = 1",
    ):
        reply = server.request(
            "POST", "/v1/database/chat/sql", statement, owner, content_type="text/plain"
        )
        assert reply.status == 200, reply

    async def scenario(connect: Connect) -> None:
        alice = await connect()
        await alice.expect("IdentityToken")
        applied = await alice.subscribe(1, LONG)
        assert applied["tables"][0]["rows"] == [{"id": 1, "text": "hi"}]

    run(server, scenario)
