"""How replies leave the server: framed by us in batches, or by aiohttp, and never early.

A client's ready messages are framed by ``frames_out.FrameWriter`` and written in one go,
unless compression was negotiated (then aiohttp frames them) — both checked here by a
real aiohttp client reading replies whose frames cross every length encoding (7-bit,
16-bit, 64-bit), pipelined so that several go out in one write. And a message waits for
its transaction to be durable (the watermark calls the client back): with the sync held
off, neither a subscriber's update nor the caller's result leaves; after a SIGKILL under
fsync ``always``, everything any WebSocket client was sent is still there.
"""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.server.conftest import Server, start_server, stop_server
from tests.server.inprocess import (
    JSON,
    MSGPACK,
    TASKS_MODULE,
    decode,
    encode,
    holding_syncs,
    running,
    send,
)

MODULE = (
    TASKS_MODULE
    + """
@reducer
def echo(ctx: ReducerContext, size: int) -> str:
    return "x" * size
"""
)

# Return values whose frames are just under and over 126 bytes (16-bit length) and
# 65,536 bytes (64-bit length), in both encodings; the large ones are also encoded off
# the event loop (past json_inline_bytes_max / 2).
SIZES = [*range(0, 160), *range(65_380, 65_560, 3)]


@pytest.fixture
def echo_server(server: Server) -> Server:
    _, token = server.deployer()
    assert server.deploy("echo", MODULE, token).status == 201
    return server


@pytest.mark.parametrize("compress", [0, 15], ids=["direct", "permessage-deflate"])
@pytest.mark.parametrize("protocol", [JSON, MSGPACK])
def test_replies_of_every_frame_length_arrive_whole_and_in_order(
    echo_server: Server, protocol: str, compress: int
) -> None:
    async def main() -> None:
        url = f"{echo_server.url}/v1/database/echo/subscribe"
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                url, protocols=(protocol,), compress=compress, max_msg_size=0
            )
            assert ws.compress == compress  # negotiated as asked
            assert "IdentityToken" in decode(protocol, await ws.receive(timeout=30))
            send = ws.send_str if protocol == JSON else ws.send_bytes
            for start in range(0, len(SIZES), 32):  # 32 in flight: batches of replies
                window = SIZES[start : start + 32]
                for n, size in enumerate(window, start):
                    call = {"request_id": n, "reducer": "echo", "args": [size]}
                    await send(encode(protocol, {"CallReducer": call}))  # type: ignore[operator]
                for n, size in enumerate(window, start):
                    result = decode(protocol, await ws.receive(timeout=60))["ReducerResult"]
                    assert result["request_id"] == n
                    assert result["status"] == "committed", result
                    assert result["return_value"] == "x" * size
            await ws.close()

    asyncio.run(main())


def test_nothing_a_websocket_client_was_sent_is_lost_to_sigkill(tmp_path: Path) -> None:
    """Pipelining callers and subscribers under fsync ``always``; SIGKILL at a random
    moment; every id a ``ReducerResult`` returned and every row a ``TransactionUpdate``
    carried is in the database after a restart."""
    data_dir = tmp_path / "data"
    server = start_server(data_dir, "--profile", "production")
    _, token = server.deployer()
    assert server.deploy("tasks", MODULE, token).status == 201
    url = f"{server.url}/v1/database/tasks/subscribe"
    acknowledged: set[int] = set()
    seen: set[int] = set()

    async def caller(http: aiohttp.ClientSession, index: int, protocol: str) -> None:
        ws = await http.ws_connect(url, protocols=(protocol,))
        await ws.receive(timeout=30)  # IdentityToken
        send = ws.send_str if protocol == JSON else ws.send_bytes
        n = 0
        in_flight = 0
        while True:
            while in_flight < 8:
                call = {"request_id": n, "reducer": "add", "args": [f"{index}-{n}"]}
                await send(encode(protocol, {"CallReducer": call}))  # type: ignore[operator]
                n += 1
                in_flight += 1
            frame = await ws.receive(timeout=30)
            if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return  # the server died
            result = decode(protocol, frame)["ReducerResult"]
            assert result["status"] == "committed", result
            acknowledged.add(result["return_value"])
            in_flight -= 1

    async def subscriber(http: aiohttp.ClientSession, protocol: str) -> None:
        ws = await http.ws_connect(url, protocols=(protocol,), max_msg_size=0)
        await ws.receive(timeout=30)  # IdentityToken
        subscribe = {"request_id": 0, "query_id": 1, "query_strings": ["SELECT * FROM task"]}
        send = ws.send_str if protocol == JSON else ws.send_bytes
        await send(encode(protocol, {"Subscribe": subscribe}))  # type: ignore[operator]
        while True:
            frame = await ws.receive(timeout=30)
            if frame.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                return
            update = decode(protocol, frame).get("TransactionUpdate")
            if update is not None:
                seen.update(row["id"] for table in update["tables"] for row in table["inserts"])

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            tasks = [asyncio.create_task(caller(http, i, (JSON, MSGPACK)[i % 2])) for i in range(4)]
            tasks += [asyncio.create_task(subscriber(http, p)) for p in (JSON, MSGPACK)]
            await asyncio.sleep(random.uniform(1.0, 2.0))
            server.process.send_signal(signal.SIGKILL)
            for task in tasks:
                try:
                    await task
                except (TimeoutError, aiohttp.ClientError, ConnectionError):
                    pass

    try:
        asyncio.run(main())
    finally:
        stop_server(server, signal.SIGKILL)
    assert acknowledged, "no call was acknowledged before the kill"
    assert seen, "no update was received before the kill"
    server = start_server(data_dir, "--profile", "production")
    try:
        _, token = server.identity()  # the calls outrun an anonymous reader's row budget
        reply = server.request("POST", "/v1/database/tasks/sql", "SELECT id FROM task", token=token)
        assert reply.status == 200, reply
        present = {row["id"] for row in reply.body["rows"]}
    finally:
        stop_server(server)
    assert not acknowledged - present, sorted(acknowledged - present)[:10]
    assert not seen - present, sorted(seen - present)[:10]


# The deploy route keys the request with a str (SHOWS_TRACEBACK); aiohttp warns about it,
# which pytest makes an error in this process (a server process only prints it).
@pytest.mark.filterwarnings("ignore::aiohttp.web_exceptions.NotAppKeyWarning")
@pytest.mark.parametrize("protocol", [JSON, MSGPACK])
def test_no_update_or_result_leaves_before_its_transaction_is_durable(
    tmp_path: Path, protocol: str
) -> None:
    """The server runs in this process (fsync ``always``) so the test can hold the commit
    log's sync token: the call commits, but nothing can become durable until the token
    is released; until then the subscriber gets no update and the caller no result."""

    async def main() -> None:
        data = tmp_path / "data"
        async with running(data, "tasks", MODULE) as server, aiohttp.ClientSession() as http:
            url = server.ws_url("tasks")
            watcher = await http.ws_connect(url, protocols=(protocol,))
            caller = await http.ws_connect(url, protocols=(protocol,))
            for ws in (watcher, caller):
                assert "IdentityToken" in decode(protocol, await ws.receive(timeout=30))
            query = {"request_id": 0, "query_id": 1, "query_strings": ["SELECT * FROM task"]}
            await send(watcher, protocol, {"Subscribe": query})
            assert "SubscribeApplied" in decode(protocol, await watcher.receive(timeout=30))
            db = server.db("tasks")
            with holding_syncs(db):
                call = {"request_id": 5, "reducer": "add", "args": ["held"]}
                await send(caller, protocol, {"CallReducer": call})
                update = asyncio.create_task(watcher.receive(timeout=60))
                result = asyncio.create_task(caller.receive(timeout=60))
                done, _ = await asyncio.wait({update, result}, timeout=1.5)
                assert not done, [decode(protocol, task.result()) for task in done]
                assert db.tx_offset > db.durable_offset  # committed, not yet durable
            got = decode(protocol, await update)["TransactionUpdate"]
            assert got["tables"][0]["inserts"][0]["title"] == "held"
            answered = decode(protocol, await result)["ReducerResult"]
            assert answered["request_id"] == 5 and answered["status"] == "committed"
            assert answered["tx_offset"] == got["tx_offset"]
            await watcher.close()
            await caller.close()

    asyncio.run(main())
