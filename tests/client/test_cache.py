"""The SDK's cache against the database itself, through drops and server restarts.

A seeded random workload (``WORKLOAD_SEED``) of inserts, updates, deletes and failing
calls runs on a real server, some calls from the client under test and some from another
identity over HTTP. After every transaction the cache must equal a fresh SQL query of
every table (the oracle), and the callbacks fired for that transaction must turn the
previous cache into the new one exactly (``Recorder``): each change fired once, with its
rows, and only once the whole transaction was in the cache.

Reconnecting is tested both ways: dropping the socket from the client side (the server
resumes exactly what was missed) and SIGKILLing the server and restarting it on the same
data directory and port (the resume window starts empty, so every row is sent again and
the callbacks fire for the difference only). ``hold_reconnect`` keeps the client away
while transactions happen, so there is always something to catch up on.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from cosmictron.client import Client, connect
from cosmictron.values import json_form as encode
from tests.client.conftest import MODULE, QUERIES
from tests.server.conftest import Server, start_server, stop_server

WORKLOAD_SEED = 5
TABLES = ("item", "log", "seat")
Snapshot = dict[str, Counter[str]]


def text(row: Any) -> str:
    return json.dumps(encode(dict(row)), sort_keys=True)


def snapshot(client: Client) -> Snapshot:
    return {name: Counter(text(row) for row in client.table(name).iter()) for name in TABLES}


class Recorder:
    """Checks every transaction's callbacks against the cache before and after it."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.before = snapshot(client)
        self.events: list[tuple[str, str, Any, Any]] = []
        self.applied: list[int] = []
        self.problems: list[str] = []
        client.on_insert(lambda table, row: self.record("insert", table, None, row))
        client.on_delete(lambda table, row: self.record("delete", table, row, None))
        client.on_update(lambda table, old, new: self.record("update", table, old, new))
        client.on_applied(self.transaction_applied)

    def record(self, kind: str, table: str, old: Any, new: Any) -> None:
        cache = self.client.table(table)
        held = Counter(text(row) for row in cache.iter())
        if new is not None and held[text(new)] == 0:
            self.problems.append(f"{kind} {table} {new}: not in the cache yet")
        if kind == "delete" and held[text(old)] > 0 and cache.info.primary_key:
            self.problems.append(f"delete {table} {old}: still in the cache")
        self.events.append((kind, table, old, new))

    def transaction_applied(self, tx_offset: int) -> None:
        expected = {name: Counter(rows) for name, rows in self.before.items()}
        for _, table, old, new in self.events:
            if old is not None:
                expected[table][text(old)] -= 1
            if new is not None:
                expected[table][text(new)] += 1
        after = snapshot(self.client)
        expected = {name: +rows for name, rows in expected.items()}  # drop zero counts
        if expected != after:
            self.problems.append(f"at {tx_offset}: the events do not explain the change")
        if self.applied and tx_offset < self.applied[-1]:
            self.problems.append(f"offset {tx_offset} after {self.applied[-1]}")
        self.before, self.events = after, []
        self.applied.append(tx_offset)


async def database_rows(client: Client) -> Snapshot:
    """The oracle: every table as a fresh SQL query returns it."""
    return {
        name: Counter(
            json.dumps(row, sort_keys=True) for row in await client.sql(f"SELECT * FROM {name}")
        )
        for name in TABLES
    }


async def step(client: Client, server: Server, other_token: str, rng: random.Random) -> None:
    """One random call: from the client (awaited) or from another identity over HTTP."""
    key = rng.randint(1, 6)
    choice = rng.choice(["put", "put", "remove", "log", "unlog", "sit", "sit", "fail"])
    args: list[Any] = {
        "put": [key, f"name {rng.randint(1, 7)}", rng.randint(0, 9)],  # names collide: Conflict
        "remove": [key],
        "log": [rng.choice("abc"), rng.randint(0, 2)],
        "unlog": [rng.choice("abc")],
        "sit": [rng.choice(["red", "blue"]), key % 3, rng.choice(["", "ann", "bob"])],
        "fail": [key],
    }[choice]
    if rng.random() < 0.3:
        reply = server.request("POST", f"/v1/database/shop/call/{choice}", args, other_token)
        if reply.status == 200:
            await client.wait_applied(reply.body["tx_offset"])
        return
    try:
        await client.call(choice, *args)
    except Exception as exc:  # a failing call is part of the workload
        assert type(exc).__name__ == "ReducerFailed", exc


async def check_consistent(client: Client, recorder: Recorder) -> None:
    assert await database_rows(client) == snapshot(client)
    assert recorder.problems == []


async def workload(
    client: Client, recorder: Recorder, server: Server, other: str, rng: random.Random, n: int
) -> None:
    for _ in range(n):
        await step(client, server, other, rng)
        await check_consistent(client, recorder)


def test_cache_equals_the_database_through_a_drop_and_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data, "--profile", "development")
    try:
        _, owner = server.deployer()
        assert server.deploy("shop", MODULE, owner).status == 201
        _, other = server.identity()
        rng = random.Random(WORKLOAD_SEED)

        async def scenario() -> Server:
            nonlocal server
            client = await connect("shop", *QUERIES, server=server.url, use_saved_token=False)
            recorder = Recorder(client)
            first_identity = client.identity
            await workload(client, recorder, server, other, rng, 25)
            # Exact resume: the client drops the socket; others write while it is away.
            client.hold_reconnect()
            await client.drop_connection()
            for _ in range(6):
                server.request(
                    "POST", "/v1/database/shop/call/put", [rng.randint(1, 6), f"away {_}", 1], other
                )
                server.request(
                    "POST", "/v1/database/shop/call/log", ["z", rng.randint(0, 2)], other
                )
            client.allow_reconnect()
            await client.wait_caught_up()
            await check_consistent(client, recorder)
            assert client.statistics().resumes == 1
            await workload(client, recorder, server, other, rng, 10)
            # The server is killed and restarted: a full resend, callbacks for the difference.
            client.hold_reconnect()
            port = server.url.rsplit(":", 1)[1]
            stop_server(server, signal.SIGKILL)
            server = start_server(data, "--listen", f"127.0.0.1:{port}", "--profile", "development")
            server.request("POST", "/v1/database/shop/call/put", [9, "after restart", 2], other)
            server.request("POST", "/v1/database/shop/call/unlog", ["z"], other)
            client.allow_reconnect()
            await client.wait_caught_up()
            await check_consistent(client, recorder)
            statistics = client.statistics()
            assert statistics.full_resends == 2 and statistics.connections == 3
            assert client.identity == first_identity  # it came back as itself
            await workload(client, recorder, server, other, rng, 10)
            await client.close()
            return server

        server = asyncio.run(scenario())
    finally:
        stop_server(server)
