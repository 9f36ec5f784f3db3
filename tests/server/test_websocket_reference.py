"""What docs/reference/websocket.md says of the two messages added to DESIGN.md §5's
list (issue 16), beyond what tests/server/test_websocket.py checks: ``ModuleUpdated``
follows every deploy over a database, even one that changes nothing, and carries no
``request_id``; ``OneOffQuery``'s ``params`` may be absent or null."""

from __future__ import annotations

import asyncio

from tests.server.conftest import Server
from tests.server.test_websocket import MODULE, Connect, chat, run

__all__ = ["chat"]  # the fixture, used by name


def test_a_deploy_that_changes_nothing_is_announced_too(chat: tuple[Server, str]) -> None:
    server, token = chat

    async def scenario(connect: Connect) -> None:
        client = await connect()
        await client.expect("IdentityToken")
        reply = await asyncio.to_thread(server.deploy, "chat", MODULE, token)
        assert reply.status == 200 and reply.body["migration"]["tables_changed"] == []
        announced = await client.expect("ModuleUpdated")
        assert announced == {"tx_offset": reply.body["migration"]["tx_offset"], "cleared": False}

    run(server, scenario)


def test_one_off_query_params_may_be_absent_or_null(chat: tuple[Server, str]) -> None:
    server, _ = chat

    async def scenario(connect: Connect) -> None:
        client = await connect()
        await client.expect("IdentityToken")
        for extra in ({}, {"params": None}):
            request_id = await client.send("OneOffQuery", query_string="SELECT 1 AS one", **extra)
            reply = await client.expect("OneOffQueryResult")
            assert reply["request_id"] == request_id and "error" not in reply, reply
            assert reply["tables"][0]["rows"] == [{"one": 1}]

    run(server, scenario)
