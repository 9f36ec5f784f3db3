"""Procedures over HTTP and WebSocket, against a real server process.

The server's procedure fetches from a loopback HTTP server in this test process
(``World`` from the host tests). The isolation test holds a procedure at that server's
gate and calls a reducer of the same database meanwhile: if the procedure held the
writer lock, or a thread that reducer calls need, the reducer call would wait for the
gate, which opens only after it returned, and the test would time out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.host.test_procedures import MODULE, World
from tests.server.conftest import Reply, Server, fresh_database
from tests.server.test_websocket import Connect, run


@pytest.fixture
def world() -> Iterator[World]:
    world = World()
    yield world
    world.close()


@pytest.fixture
def app(module_server: Server) -> Iterator[Server]:
    """The module's one server with a new ``app`` database for this test."""
    header = "from __future__ import annotations\nfrom cosmictron import *\n"
    with fresh_database(module_server, "app", header + MODULE):
        yield module_server


def test_a_procedure_is_called_like_a_reducer_over_http(app: Server, world: World) -> None:
    reply = app.request("POST", "/v1/database/app/call/fetch", [world.url + "/value"])
    assert reply.status == 200 and reply.body["return_value"] == "hello"
    assert reply.body["tx_offset"] == 1
    rows = app.request("POST", "/v1/database/app/sql", "SELECT body FROM fetched")
    assert rows.body["rows"] == [{"body": "hello"}]
    named = app.request("POST", "/v1/database/app/call/fetch", {"url": world.url + "/value"})
    assert named.status == 200 and named.body["tx_offset"] == 2
    schema = app.request("GET", "/v1/database/app/schema").body
    kinds = {reducer["name"]: reducer["kind"] for reducer in schema["reducers"]}
    assert kinds["fetch"] == "procedure" and kinds["count"] == "reducer"


def test_a_procedure_timeout_is_a_504_naming_it(app: Server, world: World) -> None:
    reply = app.request("POST", "/v1/database/app/call/slow", [world.url + "/gate"])
    world.gate.set()
    assert reply.status == 504
    assert reply.body["error"]["code"] == "procedure_timed_out"
    assert "'slow'" in reply.body["error"]["message"]


def test_a_failing_procedure_and_unknown_names(app: Server) -> None:
    failed = app.request("POST", "/v1/database/app/call/broken", [])
    assert failed.status == 400 and "the API is down" in failed.body["error"]["message"]
    unknown = app.request("POST", "/v1/database/app/call/nope", [])
    assert unknown.status == 404 and "fetch" in unknown.body["error"]["message"]


def test_a_procedure_over_websocket(app: Server, world: World) -> None:
    async def scenario(connect: Connect) -> None:
        client = await connect("app")
        await client.expect("IdentityToken")
        result = await client.call("fetch", world.url + "/value")
        assert result["status"] == "committed" and result["return_value"] == "hello"
        assert result["tx_offset"] == 1
        failed = await client.call("broken")
        assert failed["status"] == "failed" and "the API is down" in failed["error"]
        await client.ws.close()

    run(app, scenario)


def test_a_waiting_procedure_blocks_no_reducer_of_its_database(app: Server, world: World) -> None:
    replies: list[Reply] = []
    blocked = threading.Thread(
        target=lambda: replies.append(
            app.request("POST", "/v1/database/app/call/fetch", [world.url + "/gate"])
        )
    )
    blocked.start()
    try:
        assert world.entered.wait(30), "the procedure never reached the gate"
        for _ in range(3):
            reply = app.request("POST", "/v1/database/app/call/count", [])
            assert reply.status == 200 and reply.body["return_value"] == 0
        assert not replies, "the procedure finished before the gate opened"
    finally:
        world.gate.set()
        blocked.join(timeout=60)
    assert replies[0].status == 200 and replies[0].body["return_value"] == "released"
