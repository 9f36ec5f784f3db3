"""The WebSocket protocol end to end: a real server process, real aiohttp WebSocket clients.

Each test runs its clients in ``asyncio.run``. Nothing sleeps: to show that no other
message is pending, a client sends a ``OneOffQuery`` (``Client.barrier``). A client's
requests are handled in order and its messages leave in order, so every update queued
before that query's result arrives before it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.server.conftest import Server, fresh_database, start_server, stop_server, strict_loads

PROTOCOL = "v1.json.cosmictron"

MODULE = """
from cosmictron import *

@table(public=True)
class Message:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@table(public=True)
class Note:
    id: int = field(primary_key=True, auto_inc=True)
    owner: Identity = field(default=Identity.zero())
    text: str = ""

@table(public=True)
class Presence:
    connection: str = field(primary_key=True)
    who: Identity = field(default=Identity.zero())

@table
class Gate:
    id: int = field(primary_key=True)
    closed: bool = False

MINE = visibility_filter("SELECT * FROM note WHERE owner = :sender")

@reducer
def post(ctx: ReducerContext, text: str) -> int:
    if text == "fail":
        raise ValueError("no message may say fail")
    return ctx.db.message.insert(Message(text=text)).id

@reducer
def post_many(ctx: ReducerContext, count: int, size: int) -> None:
    for _ in range(count):
        ctx.db.message.insert(Message(text="x" * size))

@reducer
def write(ctx: ReducerContext, text: str) -> int:
    return ctx.db.note.insert(Note(owner=ctx.sender, text=text)).id

@reducer
def close_gate(ctx: ReducerContext) -> None:
    ctx.db.gate.insert(Gate(id=1, closed=True))

@client_connected
def hello(ctx: ReducerContext) -> None:
    if ctx.db.gate.id.find(1) is not None:
        raise PermissionError("the gate is closed")
    ctx.db.presence.insert(Presence(connection=ctx.connection_id.hex(), who=ctx.sender))

@client_disconnected
def bye(ctx: ReducerContext) -> None:
    ctx.db.presence.connection.delete(ctx.connection_id.hex())
"""

ALL_MESSAGES = "SELECT * FROM message"


class Client:
    """One WebSocket connection with helpers to send requests and await replies."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.next_id = 0

    async def send(self, kind: str, **fields: Any) -> int:
        self.next_id += 1
        await self.ws.send_str(json.dumps({kind: {"request_id": self.next_id, **fields}}))
        return self.next_id

    async def receive(self) -> tuple[str, dict[str, Any]]:
        frame = await self.ws.receive(timeout=15)
        assert frame.type is aiohttp.WSMsgType.TEXT, (frame.type, frame.data, frame.extra)
        ((kind, body),) = strict_loads(frame.data).items()
        return kind, body

    async def expect(self, kind: str) -> dict[str, Any]:
        got, body = await self.receive()
        assert got == kind, (got, body)
        return body

    async def subscribe(self, query_id: Any, *queries: str, **extra: Any) -> dict[str, Any]:
        request_id = await self.send(
            "Subscribe", query_id=query_id, query_strings=list(queries), **extra
        )
        applied = await self.expect("SubscribeApplied")
        assert applied["request_id"] == request_id and applied["query_id"] == query_id
        return applied

    async def call(self, reducer: str, *args: Any) -> dict[str, Any]:
        """Call and return the ReducerResult (for callers that subscribe to nothing)."""
        request_id = await self.send("CallReducer", reducer=reducer, args=list(args))
        result = await self.expect("ReducerResult")
        assert result["request_id"] == request_id
        return result

    async def barrier(self) -> None:
        """Assert that nothing else was queued for this client before now."""
        request_id = await self.send("OneOffQuery", query_string="SELECT COUNT(*) FROM gate")
        result = await self.expect("OneOffQueryResult")
        assert result["request_id"] == request_id


Connect = Callable[..., Awaitable[Client]]


def run(server: Server, scenario: Callable[[Connect], Awaitable[None]]) -> None:
    """Run ``scenario(connect)`` with a client session; ``connect`` opens a ``Client``."""

    async def main() -> None:
        async with aiohttp.ClientSession() as http:

            async def connect(
                database: str = "chat", token: str | None = None, query: str = ""
            ) -> Client:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                url = f"{server.url}/v1/database/{database}/subscribe{query}"
                ws = await http.ws_connect(url, protocols=(PROTOCOL,), headers=headers)
                assert ws.protocol == PROTOCOL
                return Client(ws)

            await scenario(connect)

    asyncio.run(main())


@pytest.fixture
def chat(module_server: Server) -> Iterator[tuple[Server, str]]:
    """The module's one server with a new ``chat`` database for this test."""
    with fresh_database(module_server, "chat", MODULE) as token:
        yield module_server, token


def test_identity_subscribe_and_updates_from_others_and_self(chat: tuple[Server, str]) -> None:
    server, _ = chat
    server.request("POST", "/v1/database/chat/call/post", ["before"])

    async def scenario(connect: Connect) -> None:
        alice = await connect()
        hello = await alice.expect("IdentityToken")
        assert len(hello["identity"]) == 64 and len(hello["connection_id"]) == 32
        assert hello["token"].count(".") == 2
        applied = await alice.subscribe(1, ALL_MESSAGES)
        assert applied["tables"] == [
            {"table_name": "message", "rows": [{"id": 1, "text": "before"}]}
        ]
        start = applied["tx_offset"]
        bob = await connect()
        await bob.expect("IdentityToken")
        result = await bob.call("post", "from bob")
        assert result["status"] == "committed" and result["return_value"] == 2
        update = await alice.expect("TransactionUpdate")
        assert update["tx_offset"] == result["tx_offset"] > start
        assert update["timestamp"].endswith("Z")
        assert update["tables"] == [
            {"table_name": "message", "inserts": [{"id": 2, "text": "from bob"}], "deletes": []}
        ]
        # A note is outside alice's query: no update for it.
        await bob.call("write", "unseen")
        await alice.barrier()
        # Her own call: the TransactionUpdate first, then the ReducerResult.
        request_id = await alice.send("CallReducer", reducer="post", args=["mine"])
        own = await alice.expect("TransactionUpdate")
        mine = await alice.expect("ReducerResult")
        assert mine == {
            "request_id": request_id,
            "status": "committed",
            "return_value": 3,
            "error": None,
            "tx_offset": own["tx_offset"],
        }
        # Two subscriptions of one client: one update per transaction, bag-summed.
        await alice.subscribe("twice", "SELECT * FROM message WHERE id > 3")
        await bob.call("post", "four")
        merged = await alice.expect("TransactionUpdate")
        assert merged["tables"][0]["inserts"] == [{"id": 4, "text": "four"}] * 2
        await alice.barrier()
        await alice.ws.close()
        await bob.ws.close()

    run(server, scenario)


def test_unsubscribe_failed_reducer_and_one_off_queries(chat: tuple[Server, str]) -> None:
    server, _ = chat

    async def scenario(connect: Connect) -> None:
        client = await connect()
        await client.expect("IdentityToken")
        await client.subscribe(7, ALL_MESSAGES)
        request_id = await client.send("CallReducer", reducer="post", args=["fail"])
        failed = await client.expect("ReducerResult")
        assert failed["request_id"] == request_id and failed["status"] == "failed"
        assert "no message may say fail" in failed["error"] and failed["tx_offset"] is None
        bad_args = await client.call("post", 1, 2)
        assert bad_args["status"] == "failed" and "takes 1 arguments" in bad_args["error"]
        unknown = await client.call("nope")
        assert "no reducer named 'nope'" in unknown["error"]
        await client.barrier()  # no TransactionUpdate for any failed call
        request_id = await client.send("Unsubscribe", query_id=7)
        assert await client.expect("UnsubscribeApplied") == {
            "request_id": request_id,
            "query_id": 7,
        }
        await client.call("post", "after")  # no update after UnsubscribeApplied
        again = await client.send("Unsubscribe", query_id=7)
        error = await client.expect("SubscriptionError")
        assert error["request_id"] == again and "no subscription" in error["error"]
        request_id = await client.send("OneOffQuery", query_string="SELECT text FROM message")
        assert await client.expect("OneOffQueryResult") == {
            "request_id": request_id,
            "tables": [{"table_name": "result", "columns": ["text"], "rows": [{"text": "after"}]}],
        }
        request_id = await client.send("OneOffQuery", query_string="SELECT nope FROM message")
        error = await client.expect("OneOffQueryResult")
        assert error["request_id"] == request_id and "unknown column 'nope'" in error["error"]
        await client.send("Subscribe", query_id=8, query_strings=["DELETE FROM note"])
        error = await client.expect("SubscriptionError")
        assert error["query_id"] == 8 and error["error"]
        await client.send("Subscribe", query_id=9, query_strings=["SELECT * FROM gate"])
        assert "private" in (await client.expect("SubscriptionError"))["error"]
        await client.ws.close()

    run(server, scenario)


def test_row_level_security(chat: tuple[Server, str]) -> None:
    server, owner_token = chat
    _, alice_token = server.identity()

    async def scenario(connect: Connect) -> None:
        alice = await connect(query=f"?token={alice_token}")  # the browsers' way
        assert (await alice.expect("IdentityToken"))["token"] == alice_token
        owner = await connect(token=owner_token)
        await owner.expect("IdentityToken")
        await owner.call("write", "written before")
        initial = await alice.subscribe(1, "SELECT * FROM note")
        assert initial["tables"] == [{"table_name": "note", "rows": []}]
        initial = await owner.subscribe(1, "SELECT * FROM note")
        assert [row["text"] for row in initial["tables"][0]["rows"]] == ["written before"]
        await owner.send("CallReducer", reducer="write", args=["the owner's"])
        seen_by_owner = await owner.expect("TransactionUpdate")
        assert seen_by_owner["tables"][0]["inserts"][0]["text"] == "the owner's"
        await owner.expect("ReducerResult")
        request_id = await alice.send("CallReducer", reducer="write", args=["alice's"])
        update = await alice.expect("TransactionUpdate")
        assert [row["text"] for row in update["tables"][0]["inserts"]] == ["alice's"]
        assert (await alice.expect("ReducerResult"))["request_id"] == request_id
        await alice.barrier()  # the owner's note never reached alice
        assert (await owner.expect("TransactionUpdate"))["tx_offset"] == update["tx_offset"]
        await alice.ws.close()
        await owner.ws.close()

    run(server, scenario)


def test_lifecycle_reducers(chat: tuple[Server, str]) -> None:
    server, owner_token = chat

    async def scenario(connect: Connect) -> None:
        watcher = await connect()
        await watcher.expect("IdentityToken")
        applied = await watcher.subscribe(1, "SELECT * FROM presence")
        assert len(applied["tables"][0]["rows"]) == 1  # the watcher itself
        visitor = await connect()
        hello = await visitor.expect("IdentityToken")
        arrived = await watcher.expect("TransactionUpdate")
        row = {"connection": hello["connection_id"], "who": hello["identity"]}
        assert arrived["tables"][0]["inserts"] == [row]
        await visitor.ws.close()
        left = await watcher.expect("TransactionUpdate")
        assert left["tables"][0]["deletes"] == [row]
        await watcher.ws.close()

    run(server, scenario)
    assert (
        server.request("POST", "/v1/database/chat/call/close_gate", [], owner_token).status == 200
    )
    refused = handshake(server, "/v1/database/chat/subscribe")
    assert refused == (
        403,
        "client_connected refused the connection: reducer 'hello' failed: "
        "PermissionError: the gate is closed",
    ), refused

    async def refused_client(connect: Connect) -> None:
        with pytest.raises(aiohttp.WSServerHandshakeError) as raised:
            await connect()
        assert raised.value.status == 403

    run(server, refused_client)


def handshake(
    server: Server, path: str, protocol: str | None = PROTOCOL, token: str | None = None
) -> tuple[int, str]:
    """A WebSocket upgrade request the server must refuse: (status, error message)."""

    async def main() -> tuple[int, str]:
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        if protocol is not None:
            headers["Sec-WebSocket-Protocol"] = protocol
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        async with (
            aiohttp.ClientSession() as http,
            http.get(server.url + path, headers=headers) as reply,
        ):
            body = await reply.json()
            return reply.status, body["error"]["message"]

    return asyncio.run(main())


def test_refusals_before_the_upgrade(chat: tuple[Server, str]) -> None:
    server, _ = chat
    path = "/v1/database/chat/subscribe"
    assert handshake(server, path, token="a.b.c")[0] == 401
    assert handshake(server, "/v1/database/absent/subscribe")[0] == 404
    status, message = handshake(server, path, protocol=None)
    assert status == 400 and "v1.json.cosmictron" in message
    assert handshake(server, path, protocol="v2.bsatn")[0] == 400
    plain = server.request("GET", path)
    assert plain.status == 400 and "WebSocket" in plain.body["error"]["message"]


def test_bad_frames(chat: tuple[Server, str]) -> None:
    server, _ = chat

    async def scenario(connect: Connect) -> None:
        client = await connect()
        await client.expect("IdentityToken")
        await client.ws.send_str("{not json")
        error = await client.expect("SubscriptionError")
        assert error["request_id"] is None and "not valid JSON" in error["error"]
        await client.ws.send_str('{"Publish": {"request_id": 1}}')
        assert (
            "unknown message kind 'Publish'" in (await client.expect("SubscriptionError"))["error"]
        )
        await client.ws.send_str('{"Subscribe": {"request_id": 2, "query_id": 3}}')
        error = await client.expect("SubscriptionError")
        assert error["request_id"] == 2 and error["query_id"] == 3
        assert "'query_strings'" in error["error"]
        await client.ws.send_str('{"CallReducer": {"request_id": 4}}')
        failed = await client.expect("ReducerResult")
        assert failed["status"] == "failed" and "'reducer' is missing" in failed["error"]
        await client.ws.send_str('{"OneOffQuery": {"request_id": 5, "query_string": 1}}')
        assert "must be a string" in (await client.expect("OneOffQueryResult"))["error"]
        await client.subscribe(1, ALL_MESSAGES)  # the connection is still usable
        await client.ws.send_str("x" * (2 * 1024 * 1024))
        closing = await client.ws.receive(timeout=15)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1009
        assert "larger than the limit (1048576 bytes)" in closing.extra
        binary = await connect()
        await binary.expect("IdentityToken")
        await binary.ws.send_bytes(b"\x00")
        closing = await binary.ws.receive(timeout=15)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1003

    run(server, scenario)


def test_resume_exactly_what_was_missed_then_a_full_resend(chat: tuple[Server, str]) -> None:
    server, _ = chat
    server.request("POST", "/v1/database/chat/call/post", ["before any client"])

    async def scenario(connect: Connect) -> None:
        writer = await connect()
        await writer.expect("IdentityToken")
        reader = await connect()
        token = (await reader.expect("IdentityToken"))["token"]
        query = "SELECT * FROM message WHERE text <> 'skip'"
        await reader.subscribe("q", query)
        await writer.call("post", "seen")
        last = (await reader.expect("TransactionUpdate"))["tx_offset"]
        await reader.ws.close()
        missed = [(await writer.call("post", text))["tx_offset"] for text in ("a", "b")]
        await writer.call("post", "skip")  # not in the query: not replayed
        await writer.call("write", "a note")  # another table: not replayed
        missed.append((await writer.call("post_many", 2, 1))["tx_offset"])
        again = await connect(token=token)
        await again.expect("IdentityToken")
        resumed = await again.subscribe("q", query, since_tx_offset=last)
        assert resumed["resumed"] is True and resumed["tables"] == []
        assert resumed["since_tx_offset"] == last and resumed["tx_offset"] >= missed[-1]
        replayed = [await again.expect("TransactionUpdate") for _ in missed]
        assert [update["tx_offset"] for update in replayed] == missed
        assert [len(update["tables"][0]["inserts"]) for update in replayed] == [1, 1, 2]
        assert replayed[0]["tables"][0]["inserts"][0]["text"] == "a"
        await again.barrier()
        live = await writer.call("post", "live")
        assert (await again.expect("TransactionUpdate"))["tx_offset"] == live["tx_offset"]
        # Offset 0 is older than the window (it began with the first client): all rows.
        full = await again.subscribe("old", query, since_tx_offset=0)
        assert full["resumed"] is False
        texts = [row["text"] for row in full["tables"][0]["rows"]]
        assert texts == ["before any client", "seen", "a", "b", "x", "x", "live"]
        await again.barrier()
        await writer.ws.close()
        await again.ws.close()

    run(server, scenario)


@pytest.fixture
def small_queue_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    monkeypatch.setenv("COSMICTRON_CLIENT_QUEUE_MESSAGES_MAX", "8")
    running = start_server(tmp_path / "data", "--profile", "development")
    yield running
    out = stop_server(running)
    assert running.process.returncode == 0, out


def test_a_slow_consumer_is_disconnected_and_others_keep_up(small_queue_server: Server) -> None:
    server = small_queue_server
    _, token = server.deployer()
    assert server.deploy("chat", MODULE, token).status == 201
    transactions, size = 100, 256 * 1024  # far more than the socket buffers hold

    async def scenario(connect: Connect) -> None:
        slow = await connect()
        await slow.expect("IdentityToken")
        await slow.subscribe(1, ALL_MESSAGES)
        normal = await connect()
        await normal.expect("IdentityToken")
        await normal.subscribe(1, ALL_MESSAGES)
        for _ in range(transactions):
            await normal.send("CallReducer", reducer="post_many", args=[1, size])
            await normal.expect("TransactionUpdate")
            await normal.expect("ReducerResult")
        received = 0
        while True:
            frame = await slow.ws.receive(timeout=15)
            if frame.type is not aiohttp.WSMsgType.TEXT:
                break
            received += 1
        assert frame.type is aiohttp.WSMsgType.CLOSE, frame
        assert frame.data == 1008 and "fell behind" in frame.extra
        assert received < transactions
        await normal.barrier()
        await normal.ws.close()

    run(server, scenario)


@pytest.mark.parametrize("profile", ["production", "balanced"])
def test_confirmed_reads_under_always_and_periodic(tmp_path: Path, profile: str) -> None:
    """Updates wait for the fsync (``always``) or the periodic sync, then arrive in order."""
    server = start_server(tmp_path / "data", "--profile", profile)
    try:
        _, token = server.deployer()
        assert server.deploy("chat", MODULE, token).status == 201

        async def scenario(connect: Connect) -> None:
            subscriber = await connect()
            await subscriber.expect("IdentityToken")
            await subscriber.subscribe(1, ALL_MESSAGES)
            caller = await connect()
            await caller.expect("IdentityToken")
            await caller.subscribe(1, ALL_MESSAGES)
            offsets = []
            for text in ("one", "two", "three"):
                request_id = await caller.send("CallReducer", reducer="post", args=[text])
                own = await caller.expect("TransactionUpdate")
                result = await caller.expect("ReducerResult")
                assert result["request_id"] == request_id
                assert result["tx_offset"] == own["tx_offset"]
                offsets.append(own["tx_offset"])
            seen = [(await subscriber.expect("TransactionUpdate"))["tx_offset"] for _ in offsets]
            assert seen == offsets
            await subscriber.ws.close()
            await caller.ws.close()

        run(server, scenario)
    finally:
        out = stop_server(server)
        assert server.process.returncode == 0, out


def test_hot_swap_while_subscribed(chat: tuple[Server, str]) -> None:
    """A deploy over the database keeps clients connected: a subscription on an unchanged
    table goes on, one on a changed table ends with SubscriptionError; resuming from
    before the swap gets all rows in the new shape."""
    server, token = chat
    grown = MODULE.replace(
        '    owner: Identity = field(default=Identity.zero())\n    text: str = ""\n',
        '    owner: Identity = field(default=Identity.zero())\n    text: str = ""\n'
        "    stars: int = 0\n",
    ).replace(
        "@reducer\ndef post(",
        '@reducer\ndef shout(ctx: ReducerContext) -> str:\n    return "HEY"\n\n@reducer\ndef post(',
    )
    assert grown != MODULE

    async def scenario(connect: Connect) -> None:
        client = await connect(token=token)
        await client.expect("IdentityToken")
        before = await client.subscribe("messages", ALL_MESSAGES)
        await client.subscribe("notes", "SELECT * FROM note")
        await client.send("CallReducer", reducer="write", args=["a note"])
        await client.expect("TransactionUpdate")  # its own write, seen by "notes"
        await client.expect("ReducerResult")
        reply = await asyncio.to_thread(server.deploy, "chat", grown, token)
        assert reply.status == 200, reply
        ended = await client.expect("SubscriptionError")
        assert ended["query_id"] == "notes" and "table 'note' was changed" in ended["error"]
        # Then the announcement, after the subscriptions it ended: refetch the schema.
        announced = await client.expect("ModuleUpdated")
        assert announced == {"tx_offset": reply.body["migration"]["tx_offset"], "cleared": False}
        result_id = await client.send("CallReducer", reducer="post", args=["after the swap"])
        update = await client.expect("TransactionUpdate")
        assert update["tables"][0]["inserts"][0]["text"] == "after the swap"
        assert (await client.expect("ReducerResult"))["request_id"] == result_id
        shout = await client.call("shout")
        assert shout["return_value"] == "HEY"  # the new version's reducer, same connection
        resumed = await client.subscribe(
            "notes-again", "SELECT * FROM note", since_tx_offset=before["tx_offset"]
        )
        assert resumed["resumed"] is False
        assert resumed["tables"][0]["rows"][0]["stars"] == 0  # the new column, its default

    run(server, scenario)


def test_module_updated_reaches_every_client_even_without_subscriptions(
    chat: tuple[Server, str],
) -> None:
    """``ModuleUpdated`` goes to each client of the database, subscribed or not, and not
    to clients of other databases; a deploy that creates a database sends none."""
    server, token = chat
    assert server.deploy("other", MODULE, token).status == 201

    async def scenario(connect: Connect) -> None:
        idle = await connect()
        elsewhere = await connect("other")
        for client in (idle, elsewhere):
            await client.expect("IdentityToken")
        reply = await asyncio.to_thread(server.deploy, "chat", MODULE + "\n# v2\n", token)
        assert reply.status == 200, reply
        announced = await idle.expect("ModuleUpdated")
        assert announced["tx_offset"] == reply.body["migration"]["tx_offset"]
        await idle.barrier()
        await elsewhere.barrier()  # nothing for a client of another database
        cleared = await asyncio.to_thread(server.deploy, "chat", MODULE, token, True)
        assert cleared.status == 200, cleared
        assert (await idle.expect("ModuleUpdated"))["cleared"] is True

    run(server, scenario)


def test_one_off_query_with_parameters(chat: tuple[Server, str]) -> None:
    """``OneOffQuery`` takes ``params`` as ``POST …/sql`` does; bad ones get a reply."""
    server, _ = chat

    async def scenario(connect: Connect) -> None:
        client = await connect()
        await client.expect("IdentityToken")
        for text in ("one", "two"):
            assert (await client.call("post", text))["status"] == "committed"
        request_id = await client.send(
            "OneOffQuery",
            query_string="SELECT text FROM message WHERE text = :wanted",
            params={"wanted": "two"},
        )
        assert await client.expect("OneOffQueryResult") == {
            "request_id": request_id,
            "tables": [{"table_name": "result", "columns": ["text"], "rows": [{"text": "two"}]}],
        }
        await client.send("OneOffQuery", query_string="SELECT :x AS x", params=[1])
        wrong = await client.expect("OneOffQueryResult")
        assert wrong["error_code"] == "protocol_error"
        assert "field 'params' must be a JSON object" in wrong["error"]
        await client.send(
            "OneOffQuery", query_string="SELECT * FROM message WHERE id = :id", params={}
        )
        missing = await client.expect("OneOffQueryResult")
        assert missing["error_code"] == "sql_error" and "id" in missing["error"], missing
        await client.ws.send_str(
            '{"OneOffQuery": {"request_id": 9, "query_string": "SELECT :f AS f",'
            ' "params": {"f": NaN}}}'
        )
        not_finite = await client.expect("OneOffQueryResult")
        assert not_finite["error_code"] == "not_finite" and "'f'" in not_finite["error"]

    run(server, scenario)


def test_metrics_count_connected_clients_and_subscriptions(chat: tuple[Server, str]) -> None:
    server, _ = chat

    def scrape() -> dict[str, float]:
        import urllib.request

        with urllib.request.urlopen(server.metrics_request(), timeout=10) as response:
            text = response.read().decode()
        return {
            line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line and not line.startswith("#")
        }

    async def scenario(connect: Connect) -> None:
        clients = [await connect() for _ in range(3)]
        for number, client in enumerate(clients):
            await client.expect("IdentityToken")
            await client.subscribe(number, ALL_MESSAGES)
        samples = await asyncio.to_thread(scrape)
        assert samples['cosmictron_connected_clients{database="chat"}'] == 3
        assert samples['cosmictron_subscriptions{database="chat"}'] == 3
        assert samples['cosmictron_subscription_queries{database="chat"}'] == 1  # shared

    run(server, scenario)
