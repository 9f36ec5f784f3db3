"""Procedures: real I/O outside transactions, ``with_tx``, timeouts, replay without I/O.

A tiny HTTP server on loopback (``http.server`` in a thread) stands in for the outside
world: ``/value`` answers at once and counts its hits, ``/gate`` answers only when the
test opens the gate (it signals ``entered`` first). Gates, not sleeps or timing
assertions, show that a procedure waiting on I/O blocks no reducer. Only the timeout
test waits for real time to pass: its procedure's 0.2 s timeout.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cosmictron import Database, InvalidRequest, ProcedureTimedOut, ReducerFailed
from tests.host.test_scheduler import records

MODULE = """
import urllib.request

def get(url):
    with urllib.request.urlopen(url, timeout=30) as reply:
        return reply.read().decode()

@table(public=True)
class Fetched:
    id: int = field(primary_key=True, auto_inc=True)
    body: str = ""

@procedure
def fetch(ctx: ProcedureContext, url: str) -> str:
    body = get(url)
    ctx.with_tx(lambda tx: tx.db.fetched.insert(Fetched(body=body)))
    return body

@procedure
def fetch_twice(ctx: ProcedureContext, url: str) -> int:
    first = ctx.with_tx(lambda tx: tx.db.fetched.insert(Fetched(body=get(url))).id)
    second = ctx.with_tx(lambda tx: tx.db.fetched.insert(Fetched(body="again")).id)
    return first + second

@procedure
def fetch_then_fail(ctx: ProcedureContext, url: str) -> str:
    body = get(url)

    def write(tx):
        tx.db.fetched.insert(Fetched(body=body))
        raise ValueError("the answer was not good enough")

    try:
        ctx.with_tx(write)
    except ReducerFailed as exc:
        return f"rolled back: {exc}"
    return "committed"

@procedure(timeout_s=0.2)
def slow(ctx: ProcedureContext, url: str) -> str:
    body = get(url)
    ctx.with_tx(lambda tx: tx.db.fetched.insert(Fetched(body=body)))
    return body

@procedure
def broken(ctx: ProcedureContext) -> str:
    raise RuntimeError("the API is down")

@reducer
def count(ctx: ReducerContext) -> int:
    return ctx.db.fetched.count()

@reducer
def calls_a_procedure(ctx: ReducerContext) -> None:
    fetch(ctx, "http://127.0.0.1:1/")
"""


class World:
    """The loopback HTTP server and its gate."""

    def __init__(self) -> None:
        self.hits = 0
        self.gate = threading.Event()
        self.entered = threading.Event()
        world = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/gate":
                    world.entered.set()
                    world.gate.wait(60)
                    body = b"released"
                else:
                    world.hits += 1
                    body = b"hello"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def world() -> Iterator[World]:
    world = World()
    yield world
    world.close()


@pytest.fixture
def db(open_db: Callable[..., Database]) -> Database:
    return open_db(MODULE)


def bodies(db: Database) -> list[str]:
    return [row.body for row in sorted(db.rows("fetched"), key=lambda row: row.id)]


def test_a_procedure_does_io_and_its_with_tx_commits(db, world):
    assert db.call("fetch", world.url + "/value") == "hello"
    assert bodies(db) == ["hello"] and world.hits == 1
    outcome = db.execute_reducer("fetch_twice", [world.url + "/value"])
    assert outcome.return_value == 2 + 3 and outcome.tx_offset == db.tx_offset
    assert bodies(db) == ["hello", "hello", "again"]


def test_a_failing_with_tx_rolls_back_and_reaches_the_procedure(db, world):
    reply = db.call("fetch_then_fail", world.url + "/value")
    assert reply.startswith("rolled back:") and "not good enough" in reply
    assert bodies(db) == []
    logged = [line["message"] for line in db.logs(level="ERROR")]
    assert any("fetch_then_fail/with_tx" in message for message in logged)


def test_a_failing_procedure_is_reported_and_logged(db):
    with pytest.raises(ReducerFailed, match="the API is down"):
        db.call("broken")
    assert any("the API is down" in line["message"] for line in db.logs(level="ERROR"))


def test_arguments_are_checked_before_anything_runs(db):
    with pytest.raises(InvalidRequest, match="argument 'url'"):
        db.call("fetch", 5)


def test_a_reducer_cannot_call_a_procedure(db):
    with pytest.raises(ReducerFailed, match="cannot be called from a reducer"):
        db.call("calls_a_procedure")


def test_a_timeout_is_reported_and_stops_later_transactions(db, world):
    call = db.start_procedure("slow", [world.url + "/gate"])
    with pytest.raises(ProcedureTimedOut, match="'slow' did not finish within .* 0.2 s"):
        call.result()
    world.gate.set()  # the I/O returns now, after the deadline: its with_tx must refuse
    assert isinstance(call.future.exception(timeout=30), ProcedureTimedOut)
    assert bodies(db) == []


def test_slow_io_in_a_procedure_does_not_block_reducers(db, world):
    call = db.start_procedure("fetch", [world.url + "/gate"])
    assert world.entered.wait(30), "the procedure never reached the gate"
    for _ in range(3):
        assert db.call("count") == 0  # would hang if the procedure held the writer lock
    assert not call.future.done()
    world.gate.set()
    assert call.result().return_value == "released"
    assert db.call("count") == 1


def test_replay_restores_with_tx_effects_without_the_io(
    open_db: Callable[..., Database], world: World, tmp_path: Path
):
    db = open_db(MODULE)
    db.call("fetch", world.url + "/value")
    db.close()
    world.close()  # the outside world is gone: replay must not need it
    names = [record.body[3] for record in records(tmp_path / "data")]
    assert names == ["fetch/with_tx"]
    reopened = open_db()
    assert bodies(reopened) == ["hello"] and world.hits == 1


def test_procedures_are_in_the_schema(db):
    described = {r["name"]: r for r in db.schema.describe()["reducers"]}
    assert described["fetch"]["kind"] == "procedure"
    assert described["fetch"]["params"][0]["name"] == "url"
    assert described["count"]["kind"] == "reducer"
