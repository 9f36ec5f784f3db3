"""One error form everywhere (issue 16): the frames of the module's code reach the
database's owner, over HTTP and WebSocket, and nobody else; deploy errors name the file
as the deployer gave it (``?filename=``); the SDK's failed connection says what to do."""

from __future__ import annotations

import asyncio
import socket

import pytest

from cosmictron.client import connect
from cosmictron.errors import ConnectionLost, ReducerFailed
from tests.server.conftest import Server

MODULE = """\
from cosmictron import ReducerContext, field, reducer, table


@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True)


@reducer
def boom(ctx: ReducerContext, n: int) -> None:
    ctx.db.item.insert(Item(id=n))
    raise ValueError(f"refusing {n}")
"""

FRAMES = '  File "shop.py", line 12, in boom\n    raise ValueError(f"refusing {n}")'


@pytest.fixture
def owned(server: Server) -> tuple[Server, str]:
    _, token = server.deployer()
    reply = server.request("PUT", "/v1/database/shop?filename=shop.py", MODULE, token)
    assert reply.status == 201, reply
    return server, token


def test_http_sends_the_frames_to_the_owner_only(owned):
    server, owner = owned
    mine = server.request("POST", "/v1/database/shop/call/boom", [1], owner)
    assert mine.status == 400
    assert mine.body["error"] == {
        "code": "reducer_failed",
        "message": "reducer 'boom' failed: ValueError: refusing 1",
        "traceback": FRAMES,
    }
    _, stranger = server.identity()
    theirs = server.request("POST", "/v1/database/shop/call/boom", [2], stranger)
    assert theirs.body["error"] == {
        "code": "reducer_failed",
        "message": "reducer 'boom' failed: ValueError: refusing 2",
    }


def test_websocket_and_the_sdk_carry_the_same_error_with_frames_for_the_owner(owned):
    server, owner = owned

    async def call_as(token: str | None) -> ReducerFailed:
        client = await connect("shop", server=server.url, token=token, use_saved_token=False)
        try:
            with pytest.raises(ReducerFailed) as failed:
                await client.call("boom", 3)
        finally:
            await client.close()
        return failed.value

    mine = asyncio.run(call_as(owner))
    http = server.request("POST", "/v1/database/shop/call/boom", [3], owner).body["error"]
    assert (mine.code, str(mine), mine.traceback) == (
        http["code"],
        http["message"],
        http["traceback"],
    )
    assert mine.__notes__ == [FRAMES]  # shown under the SDK user's own traceback
    theirs = asyncio.run(call_as(None))
    assert str(theirs) == http["message"] and theirs.traceback is None


def test_a_deploy_error_names_the_given_file_never_an_upload_path(server):
    _, token = server.deployer()
    broken = "x = 1\ny = (\n"
    reply = server.request("PUT", "/v1/database/bad?filename=src/mine.py", broken, token)
    assert reply.status == 400
    error = reply.body["error"]
    assert error["message"].startswith("module src/mine.py failed to load: SyntaxError")
    assert error["traceback"].startswith('  File "src/mine.py", line 2')
    assert "uploads" not in str(error) and "bad.py" not in str(error)
    unnamed = server.request("PUT", "/v1/database/bad", broken, token).body["error"]
    assert unnamed["message"].startswith("module bad.py failed to load")
    assert "uploads" not in str(unnamed)


def test_a_deploy_s_schema_mistake_found_after_import_points_at_its_declaration(server):
    _, token = server.deployer()
    scheduled = (
        "from cosmictron import ScheduleAt, field, table\n\n\n@table(scheduled='tick')\n"
        "class Timer:\n    id: int = field(primary_key=True, auto_inc=True)\n"
        "    scheduled_at: ScheduleAt = field(default=ScheduleAt.interval(1_000_000))\n"
    )
    reply = server.request("PUT", "/v1/database/bad?filename=timers.py", scheduled, token)
    assert reply.status == 400
    error = reply.body["error"]
    assert "reducer 'tick', which the module does not declare" in error["message"]
    assert (
        error["traceback"]
        == "  File \"timers.py\", line 4, in <module>\n    @table(scheduled='tick')"
    )


def test_a_bad_filename_is_refused(server):
    _, token = server.deployer()
    reply = server.request("PUT", "/v1/database/bad?filename=a%0Ab.py", MODULE, token)
    assert reply.status == 400 and "printable" in reply.body["error"]["message"]
    assert server.request("GET", "/v1/database/bad/schema").status == 404


def test_the_sdk_s_connection_error_says_what_to_do():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def attempt() -> None:
        await connect("shop", server=f"http://127.0.0.1:{port}", use_saved_token=False)

    with pytest.raises(ConnectionLost) as lost:
        asyncio.run(attempt())
    assert str(lost.value) == (
        f"cannot connect to http://127.0.0.1:{port}: connection refused (is the server "
        "running? start it with `cosmictron-cli start`, or pass server=URL or set "
        "COSMICTRON_SERVER)"
    )
    assert "Connect call failed" not in str(lost.value) and "ssl:" not in str(lost.value)
