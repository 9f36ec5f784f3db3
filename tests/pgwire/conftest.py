"""A real server with ``--pg-listen``, a deployed module, and the tokens to reach it.

One server per test module (starting one and deploying costs about a second); each
test that writes uses rows of its own. ``PG`` has the PostgreSQL port, the owner's
token and a reader's (an identity without rights), and connection strings for both.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.server.conftest import STARTED, Server, start_server, stop_server

MODULE = r"""
import enum
from typing import Optional
from cosmictron import table, field, reducer, ReducerContext, Identity, Timestamp
from cosmictron import TimeDuration, i16, i32, u64, f32

@table(name="item", public=True, indexes=[])
class Item:
    id: int = field(primary_key=True)
    name: str = field(unique=True)
    price: float = 0.0
    qty: int = 0
    active: bool = True
    note: Optional[str] = None

@table(name="secret")
class Secret:
    id: int = field(primary_key=True)
    value: str = ""

@table(name="kinds", public=True)
class Kinds:
    id: int = field(primary_key=True)
    small: i16 = 0
    medium: i32 = 0
    big: u64 = 0
    ratio: f32 = 0.0
    blob: bytes = b""
    at: Timestamp = Timestamp(0)
    span: TimeDuration = TimeDuration(0)
    who: Optional[Identity] = None
    tags: list[str]

@reducer
def seed(ctx: ReducerContext, count: int) -> None:
    for i in range(1, count + 1):
        ctx.db.item.insert(Item(id=i, name=f"item{i}", price=i * 1.5, qty=i % 7, active=i % 2 == 0))
    ctx.db.secret.insert(Secret(id=1, value="hidden"))
    ctx.db.kinds.insert(Kinds(id=1, small=-3, medium=70000, big=2**63 + 5, ratio=0.5,
        blob=b"\x00\xffab", at=Timestamp(1_700_000_000_123_456), span=TimeDuration(90_061_000_001),
        who=ctx.sender, tags=["a", "b"]))
"""


@dataclass
class PG:
    server: Server
    host: str
    port: int
    owner_token: str
    reader_token: str
    database: str = "shop"

    def dsn(self, token: str | None = None, **extra: str) -> str:
        parts = {
            "host": self.host,
            "port": str(self.port),
            "dbname": self.database,
            "user": "someone",
            "password": self.owner_token if token is None else token,
            **extra,
        }
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def url(self, token: str | None = None, scheme: str = "postgresql") -> str:
        password = self.owner_token if token is None else token
        return f"{scheme}://someone:{password}@{self.host}:{self.port}/{self.database}"


def start_pg_server(
    data_dir: Path, *extra: str, env: dict[str, str] | None = None
) -> tuple[Server, str, int]:
    server = start_server(
        data_dir, "--profile", "development", "--pg-listen", "127.0.0.1:0", *extra, env=env
    )
    return server, *pg_address(server)


def pg_address(server: Server) -> tuple[str, int]:
    """The host and port of a server's PostgreSQL port, from its "listening" line."""
    found = re.search(r"postgresql on ([0-9.]+):(\d+)", server.output[0])
    assert found, server.output[0]
    return found.group(1), int(found.group(2))


@contextmanager
def shop_server(data_dir: Path, env: dict[str, str]) -> Iterator[PG]:
    """A server started with ``env`` (the limits a module's tests change), the shop
    deployed and 5 items seeded; the owner's token is also the ``PG``'s reader token.
    For a module-scoped fixture: stopped here, not by the per-test clean-up."""
    server, host, port = start_pg_server(data_dir, env=env)
    STARTED.remove(server.process)
    try:
        _, owner = server.deployer()
        assert server.deploy("shop", MODULE, owner).status == 201
        assert server.request("POST", "/v1/database/shop/call/seed", [5], owner).status == 200
        yield PG(server, host, port, owner, owner)
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PG]:
    data_dir = tmp_path_factory.mktemp("pgwire") / "data"
    server, host, port = start_pg_server(data_dir)
    # Shared by the module's tests: stopped here, not by the per-test clean-up.
    STARTED.remove(server.process)
    try:
        _, owner = server.deployer()
        reply = server.deploy("shop", MODULE, owner)
        assert reply.status == 201, reply
        reply = server.request("POST", "/v1/database/shop/call/seed", [50], owner)
        assert reply.status == 200, reply
        _, reader = server.identity()
        yield PG(server, host, port, owner, reader)
    finally:
        out = stop_server(server)
        assert server.process.returncode == 0, out
