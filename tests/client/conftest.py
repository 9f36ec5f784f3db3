"""A real server with the test module deployed, and an SDK client for it.

``MODULE`` has what the cache must handle: a keyed table with a unique column and typed
values (Identity, Timestamp, bytes, Optional), a keyless table (a bag) and a table with
a composite key; reducers insert, update, delete and fail.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.conftest import Server, server, start_server, stop_server

MODULE = """
from typing import Optional

from cosmictron import *


@table(public=True)
class Item:
    id: int = field(primary_key=True)
    name: str = field(default="", unique=True)
    qty: int = 0
    owner: Identity = field(default=Identity.zero())
    at: Timestamp = field(default=Timestamp(0))
    blob: bytes = b""
    note: Optional[str] = None


@table(public=True)
class Log:
    kind: str = ""
    n: int = 0


@table(public=True, primary_key=("room", "seat"))
class Seat:
    room: str = ""
    seat: int = 0
    who: str = ""


@reducer
def put(ctx: ReducerContext, id: int, name: str, qty: int) -> int:
    old = ctx.db.item.id.find(id)
    if old is not None:
        ctx.db.item.id.delete(id)
    note = None if qty % 2 else f"even {qty}"
    ctx.db.item.insert(Item(id=id, name=name, qty=qty, owner=ctx.sender, at=ctx.timestamp,
                            blob=bytes([qty % 256]), note=note))
    return qty


@reducer
def remove(ctx: ReducerContext, id: int) -> bool:
    return ctx.db.item.id.delete(id)


@reducer
def log(ctx: ReducerContext, kind: str, n: int) -> None:
    ctx.db.log.insert(Log(kind=kind, n=n))


@reducer
def unlog(ctx: ReducerContext, kind: str) -> int:
    gone = [row for row in ctx.db.log.iter() if row.kind == kind]
    for row in gone:
        ctx.db.log.delete(row)
    return len(gone)


@reducer
def sit(ctx: ReducerContext, room: str, seat: int, who: str) -> None:
    ctx.db.seat.primary_key.delete((room, seat))
    if who:
        ctx.db.seat.insert(Seat(room=room, seat=seat, who=who))


@reducer
def fail(ctx: ReducerContext, id: int) -> None:
    ctx.db.item.insert(Item(id=id, name=f"doomed {id}"))
    raise ValueError(f"refusing {id}")


@reducer
def stamp(ctx: ReducerContext) -> Timestamp:
    return ctx.timestamp
"""

QUERIES = ("SELECT * FROM item", "SELECT * FROM log", "SELECT * FROM seat")


@pytest.fixture(autouse=True)
def config_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Keep the saved settings of the tests away from the user's."""
    directory = tmp_path / "config"
    monkeypatch.setenv("COSMICTRON_CONFIG_DIR", str(directory))
    monkeypatch.delenv("COSMICTRON_SERVER", raising=False)
    return directory


@pytest.fixture
def app(server: Server) -> Iterator[Server]:
    """The server with MODULE deployed as database ``shop``."""
    _, token = server.deployer()
    assert server.deploy("shop", MODULE, token).status == 201
    yield server


__all__ = ["MODULE", "QUERIES", "Server", "server", "start_server", "stop_server"]
