"""Replies written by the thread that waited for the sync (``FrameWriter.write_now``).

A call's reply may leave from the database's sync thread instead of after a hop to the
event loop, when nothing else of its client can be due before it (docs/design/server.md,
"Where database work runs"). These run the server in this process on uvloop (the only
loop the direct write is made for), fsync ``always``, with real aiohttp clients, and
check that the direct path is taken, that it never answers before the transaction is
durable (the sync token held), and that every reply keeps its order when direct and
loop-written replies mix (pipelined calls, failed calls, a subscriber's own update).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import uvloop

from cosmictron.server import frames_out
from cosmictron.server.websocket_client import WebSocketClient
from tests.server.inprocess import (
    JSON,
    MSGPACK,
    TASKS_MODULE,
    InProcessServer,
    decode,
    holding_syncs,
    running,
    send,
)

MODULE = (
    TASKS_MODULE
    + """
@reducer
def fail(ctx: ReducerContext, title: str) -> int:
    ctx.db.task.insert(Task(title=title))
    raise ValueError("refused: " + title)
"""
)

# The deploy route keys the request with a str (SHOWS_TRACEBACK); aiohttp warns about it,
# which pytest makes an error in this process (a server process only prints it).
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")


async def connect(
    http: aiohttp.ClientSession, server: InProcessServer, protocol: str
) -> tuple[aiohttp.ClientWebSocketResponse, WebSocketClient]:
    ws = await http.ws_connect(server.ws_url("tasks"), protocols=(protocol,))
    token = decode(protocol, await ws.receive(timeout=30))["IdentityToken"]["token"]
    return ws, server.client_of(token)


def call(n: int, reducer: str = "add") -> dict[str, Any]:
    return {"CallReducer": {"request_id": n, "reducer": reducer, "args": [f"t{n}"]}}


@pytest.mark.skipif(
    not frames_out.DIRECT_WRITES,
    reason="the direct write needs the compiled server/_direct.pyx (not built, or "
    "COSMICTRON_PURE set): every reply goes the loop's way, which the other tests cover",
)
@pytest.mark.parametrize("protocol", [JSON, MSGPACK])
def test_a_lone_callers_replies_leave_from_the_sync_thread_and_only_once_durable(
    tmp_path: Path, protocol: str
) -> None:
    async def main() -> None:
        async with (
            running(tmp_path / "data", "tasks", MODULE) as server,
            aiohttp.ClientSession() as http,
        ):
            ws, client = await connect(http, server, protocol)
            for n in range(20):
                await send(ws, protocol, call(n))
                result = decode(protocol, await ws.receive(timeout=30))["ReducerResult"]
                assert result["request_id"] == n and result["status"] == "committed", result
            assert client.frames.direct_writes > 0  # the path under test was taken
            written = client.frames.direct_writes

            db = server.db("tasks")
            with holding_syncs(db):
                await send(ws, protocol, call(99))
                reply = asyncio.create_task(ws.receive(timeout=60))
                done, _ = await asyncio.wait({reply}, timeout=1.5)
                assert not done, decode(protocol, reply.result())
                assert db.tx_offset > db.durable_offset  # committed, not yet durable
                assert client.frames.direct_writes == written
            result = decode(protocol, await reply)["ReducerResult"]
            assert result["request_id"] == 99 and result["status"] == "committed"
            assert result["tx_offset"] <= db.durable_offset
            assert client.frames.direct_writes == written + 1  # written by the sync's thread
            await ws.close()

    uvloop.run(main())


@pytest.mark.parametrize("protocol", [JSON, MSGPACK])
def test_pipelined_and_failed_calls_keep_their_order_when_direct_and_loop_replies_mix(
    tmp_path: Path, protocol: str
) -> None:
    """Four clients each keep 1 to 8 calls in flight, every fifth call failing: each
    client's replies come in the order sent, whichever way each was written."""

    async def caller(http: aiohttp.ClientSession, server: InProcessServer, depth: int) -> int:
        ws, client = await connect(http, server, protocol)
        sent = answered = 0
        while answered < 120:
            while sent < 120 and sent - answered < depth:
                await send(ws, protocol, call(sent, "fail" if sent % 5 == 4 else "add"))
                sent += 1
            result = decode(protocol, await ws.receive(timeout=30))["ReducerResult"]
            assert result["request_id"] == answered, (result, answered)
            expected = "failed" if answered % 5 == 4 else "committed"
            assert result["status"] == expected, result
            answered += 1
        await ws.close()
        return client.frames.direct_writes

    async def main() -> None:
        async with (
            running(tmp_path / "data", "tasks", MODULE) as server,
            aiohttp.ClientSession() as http,
        ):
            direct = await asyncio.gather(*(caller(http, server, d) for d in (1, 2, 4, 8)))
            if frames_out.DIRECT_WRITES:
                assert direct[0] > 0, direct  # the lone-call path was part of the mix

    uvloop.run(main())


@pytest.mark.parametrize("protocol", [JSON, MSGPACK])
def test_a_subscribers_own_update_still_precedes_its_result(tmp_path: Path, protocol: str) -> None:
    """A client that subscribes gets its transaction's update before the call's result
    (the update reaches its queue through the loop, so its replies take the loop's way)."""

    async def main() -> None:
        async with (
            running(tmp_path / "data", "tasks", MODULE) as server,
            aiohttp.ClientSession() as http,
        ):
            ws, client = await connect(http, server, protocol)
            query = {"request_id": 0, "query_id": 1, "query_strings": ["SELECT * FROM task"]}
            await send(ws, protocol, {"Subscribe": query})
            assert "SubscribeApplied" in decode(protocol, await ws.receive(timeout=30))
            for n in range(1, 11):
                await send(ws, protocol, call(n))
                update = decode(protocol, await ws.receive(timeout=30))["TransactionUpdate"]
                result = decode(protocol, await ws.receive(timeout=30))["ReducerResult"]
                assert result["request_id"] == n and result["status"] == "committed"
                assert update["tx_offset"] == result["tx_offset"]
            assert client.frames.direct_writes == 0
            await ws.close()

    uvloop.run(main())
