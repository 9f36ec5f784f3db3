"""``ctx.call_remote`` between two databases of one real server (single-node mode).

The server's relay delivers the calls; the tests read the target back over HTTP, read
a failed call's error from the caller's module log (owner only), and SIGKILL the server
under a loop of calls (fsync ``always``) to check that each call takes effect exactly
once after restarts.
"""

from __future__ import annotations

import json
import os
import random
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.crash_harness import call_until_sigkill
from tests.server.conftest import Server, start_server, stop_server

ORDERS = """
from cosmictron import ReducerContext, field, reducer, table

@table(name="order", public=True)
class Order:
    item: int = field(primary_key=True)

@reducer
def place(ctx: ReducerContext, item: int) -> int:
    ctx.db.order.insert(Order(item=item))
    return ctx.call_remote("billing", "charge", item)

@reducer
def place_to(ctx: ReducerContext, database: str, item: int) -> int:
    return ctx.call_remote(database, "charge", item)
"""

BILLING = """
from cosmictron import ReducerContext, field, reducer, table

@table(name="charge", public=True)
class Charge:
    id: int = field(primary_key=True, auto_inc=True)
    item: int = 0
    by: str = ""

@reducer
def charge(ctx: ReducerContext, item: int) -> None:
    ctx.db.charge.insert(Charge(item=item, by=str(ctx.sender)))
"""


def rows(server: Server, database: str, sql: str) -> list[dict[str, Any]]:
    reply = server.request("POST", f"/v1/database/{database}/sql", sql)
    assert reply.status == 200, reply
    found: list[dict[str, Any]] = reply.body["rows"]
    return found


def wait_for(check: Any, timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def deploy_pair(server: Server) -> tuple[str, str]:
    identity, token = server.deployer()
    assert server.deploy("orders", ORDERS, token).status == 201
    assert server.deploy("billing", BILLING, token).status == 201
    return identity, token


def test_a_call_reaches_the_other_database_once_as_the_owner(server: Server) -> None:
    identity, _ = deploy_pair(server)
    _, stranger = server.identity()
    reply = server.request("POST", "/v1/database/orders/call/place", [7], token=stranger)
    assert reply.status == 200 and reply.body["return_value"] == 1, reply
    charged = wait_for(lambda: rows(server, "billing", "SELECT item, by FROM charge"))
    # It runs as the calling database's owner, not as whoever called that database.
    assert charged == [{"item": 7, "by": identity}]
    time.sleep(0.3)
    assert len(rows(server, "billing", "SELECT item FROM charge")) == 1


def test_an_unknown_target_is_an_error_in_the_callers_log(server: Server) -> None:
    _, token = deploy_pair(server)
    reply = server.request("POST", "/v1/database/orders/call/place_to", ["nowhere", 1])
    assert reply.status == 200, reply

    def failed_line() -> str | None:
        request = urllib.request.Request(
            f"{server.url}/v1/database/orders/logs?num_lines=50",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            lines = [json.loads(line) for line in response.read().splitlines() if line]
        for line in lines:
            if "call_remote #1 to nowhere.charge failed" in line["message"]:
                return str(line["message"])
        return None

    # Five attempts with waits of 0.2, 0.4, 0.8, 1.6 s (limits.remote_call_*).
    message = wait_for(failed_line, 30)
    assert message is not None
    assert "database 'nowhere' does not exist" in message


def run_round(data_dir: Path, rng: random.Random, base: int) -> set[int]:
    """Start the server, call place() from 4 threads, SIGKILL it at a random moment."""
    server = start_server(data_dir, "--profile", "production")
    if base == 1:
        deploy_pair(server)
    acked = call_until_sigkill(
        server, "/v1/database/orders/call/place", 4, base, rng.uniform(0.3, 1.2)
    )
    return acked


def check_exactly_once(data_dir: Path, acked: set[int]) -> None:
    server = start_server(data_dir, "--profile", "production")
    try:

        def settled() -> bool:
            placed = {r["item"] for r in rows(server, "orders", "SELECT item FROM order")}
            charged = [r["item"] for r in rows(server, "billing", "SELECT item FROM charge")]
            return set(charged) == placed

        assert wait_for(settled, 30), "the relay did not deliver every recorded call"
        placed = {r["item"] for r in rows(server, "orders", "SELECT item FROM order")}
        charged = [r["item"] for r in rows(server, "billing", "SELECT item FROM charge")]
        assert acked <= placed, sorted(acked - placed)[:10]
        assert len(charged) == len(set(charged)), "a call took effect twice"
        assert set(charged) == placed
    finally:
        stop_server(server)


def kill_rounds(data_dir: Path, seed: int, rounds: int) -> None:
    rng = random.Random(seed)
    acked: set[int] = set()
    base = 1
    for _ in range(rounds):
        got = run_round(data_dir, rng, base)
        assert got, "no call was acknowledged before the kill"
        acked |= got
        base = max(got) + 1000
        check_exactly_once(data_dir, acked)


def test_calls_apply_exactly_once_across_server_sigkills(tmp_path: Path) -> None:
    kill_rounds(tmp_path / "data", int(os.environ.get("COSMICTRON_CRASH_SEED", "19")), 2)


@pytest.mark.soak
def test_calls_apply_exactly_once_across_server_sigkills_soak(tmp_path: Path) -> None:
    seed = int(os.environ.get("COSMICTRON_CRASH_SEED", str(random.randrange(1 << 30))))
    print(f"COSMICTRON_CRASH_SEED={seed}")
    kill_rounds(tmp_path / "data", seed, 20)
