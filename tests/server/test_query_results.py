"""Subscriptions whose rows are not whole rows of one table, over a real WebSocket.

A column list, an aggregate or a compound has no table: its rows travel under the
query's text, ``SubscribeApplied`` names their columns and types, and every row (initial,
inserted, deleted) is an object keyed by those names (docs/reference/websocket.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.server.conftest import Server, fresh_database
from tests.server.test_websocket import MODULE, Connect, run

GROUPED = "SELECT text, COUNT(*) FROM message GROUP BY text"
TWICE = "SELECT id, id + 1 AS id FROM message WHERE id <= 2"
BOTH = "SELECT text FROM message UNION SELECT text FROM note"
OWNERS = "SELECT owner, COUNT(*) AS notes FROM note GROUP BY owner"
IN_SUBQUERY = "SELECT * FROM message WHERE id IN (SELECT id FROM message WHERE text = 'b')"


@pytest.fixture
def chat(module_server: Server) -> Iterator[Server]:
    """The module's one server with a new ``chat`` database for this test."""
    with fresh_database(module_server, "chat", MODULE):
        yield module_server


def counted(rows: list[dict[str, Any]]) -> Counter[str]:
    return Counter(repr(sorted(row.items())) for row in rows)


def test_query_results_carry_their_columns_and_rows_keyed_by_them(chat: Server) -> None:
    for text in ("a", "b", "a"):
        chat.request("POST", "/v1/database/chat/call/post", [text])

    async def scenario(connect: Connect) -> None:
        alice = await connect()
        identity = (await alice.expect("IdentityToken"))["identity"]
        applied = await alice.subscribe(1, GROUPED, TWICE, BOTH, OWNERS, IN_SUBQUERY)
        tables = {table["table_name"]: table for table in applied["tables"]}
        assert tables[GROUPED]["columns"] == [
            {"name": "text", "type": "str"},
            {"name": "COUNT(*)", "type": "i64"},
        ]
        assert counted(tables[GROUPED]["rows"]) == counted(
            [{"text": "a", "COUNT(*)": 2}, {"text": "b", "COUNT(*)": 1}]
        )
        # A repeated name gets a suffix, so no value is lost in the object.
        assert [c["name"] for c in tables[TWICE]["columns"]] == ["id", "id:2"]
        assert counted(tables[TWICE]["rows"]) == counted(
            [{"id": 1, "id:2": 2}, {"id": 2, "id:2": 3}]
        )
        assert tables[BOTH]["columns"] == [{"name": "text", "type": "str"}]
        assert tables[OWNERS]["columns"][0] == {"name": "owner", "type": "Identity"}
        assert tables[OWNERS]["rows"] == []
        # Whole rows of one table travel under the table's name, without columns.
        assert tables["message"] == {"table_name": "message", "rows": [{"id": 2, "text": "b"}]}

        await alice.send("CallReducer", reducer="write", args=["c"])  # BOTH and OWNERS
        update = await alice.expect("TransactionUpdate")
        await alice.expect("ReducerResult")
        changed = {table["table_name"]: table for table in update["tables"]}
        assert changed[BOTH] == {"table_name": BOTH, "inserts": [{"text": "c"}], "deletes": []}
        assert changed[OWNERS]["inserts"] == [{"owner": identity, "notes": 1}]
        assert set(changed) == {BOTH, OWNERS}

        await alice.send("CallReducer", reducer="post", args=["b"])
        update = await alice.expect("TransactionUpdate")
        await alice.expect("ReducerResult")
        changed = {table["table_name"]: table for table in update["tables"]}
        assert changed[GROUPED]["inserts"] == [{"text": "b", "COUNT(*)": 2}]
        assert changed[GROUPED]["deletes"] == [{"text": "b", "COUNT(*)": 1}]
        assert changed["message"]["inserts"] == [{"id": 4, "text": "b"}]
        assert set(changed) == {GROUPED, "message"}  # BOTH already had "b"; TWICE unchanged
        await alice.barrier()

    run(chat, scenario)


def test_a_resumed_query_result_is_sent_whole(chat: Server) -> None:
    """A re-evaluated query's past deltas cannot be recomputed: a resume sends every row."""
    chat.request("POST", "/v1/database/chat/call/post", ["a"])

    async def scenario(connect: Connect) -> None:
        alice = await connect()
        await alice.expect("IdentityToken")
        applied = await alice.subscribe(1, GROUPED)
        await alice.send("CallReducer", reducer="post", args=["a"])
        await alice.expect("TransactionUpdate")
        await alice.expect("ReducerResult")
        again = await connect()
        await again.expect("IdentityToken")
        resumed = await again.subscribe(2, GROUPED, since_tx_offset=applied["tx_offset"])
        assert resumed["resumed"] is False
        assert resumed["tables"] == [
            {
                "table_name": GROUPED,
                "rows": [{"text": "a", "COUNT(*)": 2}],
                "columns": [{"name": "text", "type": "str"}, {"name": "COUNT(*)", "type": "i64"}],
            }
        ]

    run(chat, scenario)
