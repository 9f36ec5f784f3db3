"""SIGKILL the server under load; after a restart every acknowledged call is there.

Writers call a reducer over HTTP from several threads against the ``production``
profile (fsync ``always``: a call is acknowledged only once it is on disk). The server is
killed with SIGKILL at a random moment; a new server on the same data directory must
hold every row whose call got a 200, and nothing half-applied (a counter row moves with
each insert in the same transaction).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.crash_harness import call_until_sigkill
from tests.server.conftest import start_server, stop_server

MODULE = """
from cosmictron import *

@table(public=True)
class Entry:
    n: int = field(primary_key=True)

@table(public=True)
class Counter:
    id: int = field(primary_key=True)
    total: int = 0

@reducer
def add(ctx: ReducerContext, n: int) -> None:
    ctx.db.entry.insert(Entry(n))
    counter = ctx.db.counter.id.find(0)
    if counter is None:
        ctx.db.counter.insert(Counter(0, 1))
    else:
        ctx.db.counter.id.update(Counter(0, counter.total + 1))
"""


def run_round(data_dir: Path, seed: int, token: str | None) -> tuple[str, set[int]]:
    server = start_server(data_dir, "--profile", "production")
    if token is None:
        _, token = server.deployer()
        assert server.deploy("crash", MODULE, token).status == 201
    existing = server.request("POST", "/v1/database/crash/sql", "SELECT n FROM entry").body
    base = max((row["n"] for row in existing["rows"]), default=0) + 1
    acknowledged = call_until_sigkill(
        server, "/v1/database/crash/call/add", 8, base, random.Random(seed).uniform(0.3, 0.8)
    )
    return token, acknowledged


@pytest.mark.parametrize("rounds", [3])
def test_every_acknowledged_call_survives_sigkill(tmp_path: Path, rounds: int) -> None:
    data_dir = tmp_path / "data"
    token = None
    every: set[int] = set()
    for seed in range(rounds):
        token, acknowledged = run_round(data_dir, seed, token)
        assert acknowledged, "no call was acknowledged before the kill"
        every |= acknowledged
        server = start_server(data_dir, "--profile", "production")
        try:
            rows = server.request("POST", "/v1/database/crash/sql", "SELECT n FROM entry").body
            present = {row["n"] for row in rows["rows"]}
            missing = every - present
            assert not missing, f"round {seed}: acknowledged calls lost: {sorted(missing)[:10]}"
            counter = server.request(
                "POST", "/v1/database/crash/sql", "SELECT total FROM counter"
            ).body["rows"]
            assert counter == [{"total": len(present)}], "a transaction was half applied"
        finally:
            stop_server(server)
