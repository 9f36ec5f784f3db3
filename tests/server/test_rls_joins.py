"""Row-level security across a join, over a real server: HTTP SQL and a live WebSocket.

A message is visible to the members of its room. Two identities talk to the server
through real sockets; joining and leaving a room reveals and hides its messages in
their SQL results and, live, in their subscriptions.
"""

from __future__ import annotations

from typing import Any

from tests.server.conftest import Server
from tests.server.test_websocket import Client, Connect, run

MODULE = """
from cosmictron import *

@table(public=True)
class Member:
    id: int = field(primary_key=True, auto_inc=True)
    room: str = field(default="", index="btree")
    identity: Identity = field(default=Identity.zero(), index="hash")

@table(public=True)
class Message:
    id: int = field(primary_key=True, auto_inc=True)
    room: str = field(default="", index="btree")
    text: str = ""

IN_MY_ROOMS = visibility_filter(
    "SELECT m.* FROM message m JOIN member mem ON mem.room = m.room "
    "WHERE mem.identity = :sender"
)

@reducer
def enter(ctx: ReducerContext, room: str) -> int:
    return ctx.db.member.insert(Member(room=room, identity=ctx.sender)).id

@reducer
def leave(ctx: ReducerContext, room: str) -> None:
    for row in list(ctx.db.member.room.filter(room)):
        if row.identity == ctx.sender:
            ctx.db.member.delete(row)

@reducer
def say(ctx: ReducerContext, room: str, text: str) -> None:
    ctx.db.message.insert(Message(room=room, text=text))
"""


def texts(reply: Any) -> list[str]:
    assert reply.status == 200, reply
    return sorted(row["text"] for row in reply.body["rows"])


def sql(server: Server, query: str, token: str) -> Any:
    return server.request("POST", "/v1/database/rooms/sql", query, token)


def call(server: Server, reducer: str, args: list[Any], token: str) -> None:
    reply = server.request("POST", f"/v1/database/rooms/call/{reducer}", args, token)
    assert reply.status == 200, reply


def test_membership_reveals_and_hides_messages_over_http_and_websocket(server: Server) -> None:
    _, owner = server.deployer()  # deploying needs the right to (granted by the operator)
    assert server.deploy("rooms", MODULE, owner).status == 201
    _, alice = server.identity()
    _, bob = server.identity()
    call(server, "enter", ["red"], alice)
    call(server, "say", ["red", "red one"], owner)
    call(server, "say", ["blue", "blue one"], owner)

    assert texts(sql(server, "SELECT * FROM message", alice)) == ["red one"]
    assert texts(sql(server, "SELECT * FROM message", bob)) == []
    assert texts(sql(server, "SELECT * FROM message", owner)) == ["blue one", "red one"]
    count = sql(server, "SELECT COUNT(*) AS n FROM message", bob)
    assert count.body["rows"] == [{"n": 0}]  # an aggregate counts only visible rows
    anonymous = server.request("POST", "/v1/database/rooms/sql", "SELECT * FROM message")
    assert texts(anonymous) == []  # no token: a reader who is a member of nothing

    async def scenario(connect: Connect) -> None:
        alice_ws: Client = await connect("rooms", token=alice)
        await alice_ws.expect("IdentityToken")
        bob_ws: Client = await connect("rooms", token=bob)
        await bob_ws.expect("IdentityToken")
        initial = await bob_ws.subscribe(1, "SELECT * FROM message")
        assert initial["tables"][0]["rows"] == []
        initial = await alice_ws.subscribe(1, "SELECT * FROM message")
        assert [row["text"] for row in initial["tables"][0]["rows"]] == ["red one"]

        # Bob enters blue: its existing message appears in his subscription, live.
        await bob_ws.send("CallReducer", reducer="enter", args=["blue"])
        update = await bob_ws.expect("TransactionUpdate")
        assert [row["text"] for row in update["tables"][0]["inserts"]] == ["blue one"]
        assert (await bob_ws.expect("ReducerResult"))["status"] == "committed"

        # A new message in blue reaches bob, not alice.
        call(server, "say", ["blue", "blue two"], owner)
        update = await bob_ws.expect("TransactionUpdate")
        assert [row["text"] for row in update["tables"][0]["inserts"]] == ["blue two"]
        assert texts(sql(server, "SELECT * FROM message", bob)) == ["blue one", "blue two"]

        # Bob leaves: both blue messages are deleted from his view.
        await bob_ws.send("CallReducer", reducer="leave", args=["blue"])
        update = await bob_ws.expect("TransactionUpdate")
        deleted = sorted(row["text"] for row in update["tables"][0]["deletes"])
        assert deleted == ["blue one", "blue two"] and update["tables"][0]["inserts"] == []
        await bob_ws.expect("ReducerResult")
        assert texts(sql(server, "SELECT * FROM message", bob)) == []

        # Alice saw none of it: her next frame is the answer to her own query.
        request_id = await alice_ws.send("OneOffQuery", query_string="SELECT * FROM message")
        result = await alice_ws.expect("OneOffQueryResult")
        assert result["request_id"] == request_id
        assert [row["text"] for row in result["tables"][0]["rows"]] == ["red one"]
        await alice_ws.ws.close()
        await bob_ws.ws.close()

    run(server, scenario)
