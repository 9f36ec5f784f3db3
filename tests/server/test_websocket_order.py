"""Frames to a client leave strictly in commit order (issue 20), even when a reducer's
large return value is encoded off the event loop while other clients commit: the
``ReducerResult`` keeps its place in the client's queue (``WebSocketClient._reserve``), so
no later transaction's ``TransactionUpdate`` overtakes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from tests.server.conftest import Server

MODULE = """
from cosmictron import table, reducer, ReducerContext, field

@table(name="note", public=True)
class Note:
    id: int = field(primary_key=True, auto_inc=True)
    who: str = ""

@reducer
def post(ctx: ReducerContext, who: str) -> int:
    return ctx.db.note.insert(Note(who=who)).id

@reducer
def big(ctx: ReducerContext, size: int) -> str:
    ctx.db.note.insert(Note(who="big"))
    return "x" * size
"""

BIG_BYTES = 3_000_000  # far past json_inline_bytes_max: encoded on a worker thread
BIG_CALLS = 6
OTHER_CALLS = 300


@pytest.fixture
def notes(server: Server) -> Iterator[Server]:
    _, token = server.deployer()
    assert server.deploy("notes", MODULE, token).status == 201
    yield server


def test_a_large_result_is_not_overtaken_by_later_updates(notes: Server) -> None:
    async def main() -> list[tuple[str, int]]:
        url = f"{notes.url}/v1/database/notes/subscribe"
        async with aiohttp.ClientSession() as http:
            watcher = await http.ws_connect(url, protocols=("v1.json.cosmictron",), max_msg_size=0)
            writer = await http.ws_connect(url, protocols=("v1.json.cosmictron",))
            await watcher.receive_json()
            await writer.receive_json()
            subscribe = {"request_id": 0, "query_id": 1, "query_strings": ["SELECT * FROM note"]}
            await watcher.send_json({"Subscribe": subscribe})
            assert "SubscribeApplied" in await watcher.receive_json()

            async def hammer() -> None:
                for k in range(OTHER_CALLS):
                    call = {"request_id": k, "reducer": "post", "args": ["w"]}
                    await writer.send_json({"CallReducer": call})
                for _ in range(OTHER_CALLS):
                    await writer.receive_json()

            async def ask_big() -> None:
                for k in range(BIG_CALLS):
                    call = {"request_id": 1000 + k, "reducer": "big", "args": [BIG_BYTES]}
                    await watcher.send_json({"CallReducer": call})

            seen: list[tuple[str, int]] = []
            results = 0

            async def read() -> None:
                nonlocal results
                while results < BIG_CALLS or len(seen) < OTHER_CALLS + 2 * BIG_CALLS:
                    frame = await watcher.receive(timeout=60)
                    ((kind, body),) = json.loads(frame.data).items()
                    offset: Any = body.get("tx_offset")
                    assert offset is not None, (kind, body.get("status"), body.get("error"))
                    seen.append((kind, int(offset)))
                    results += kind == "ReducerResult"

            await asyncio.gather(hammer(), ask_big(), read())
            await watcher.close()
            await writer.close()
            return seen

    seen = asyncio.run(main())
    assert sum(kind == "ReducerResult" for kind, _ in seen) == BIG_CALLS
    offsets = [offset for _, offset in seen]
    out_of_order = [
        (seen[i - 1], seen[i]) for i in range(1, len(seen)) if offsets[i] < offsets[i - 1]
    ]
    assert not out_of_order, out_of_order[:5]
    # Each result comes right after its own transaction's update.
    for i, (kind, offset) in enumerate(seen):
        if kind == "ReducerResult":
            assert seen[i - 1] == ("TransactionUpdate", offset)
