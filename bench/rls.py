"""Row-level security benchmark: a join visibility filter against a one-table peer.

    .venv/bin/python bench/rls.py [--quick] [--out bench/results/rls.json] [--tmpdir DIR]

Two databases (``development`` profile: fsync never) with the same rows: ``readers``
rooms (1,000; ``--quick`` 100) of ``per_room`` messages each (10), one reader per room.
They differ only in the filter on ``message``:

- ``join``: ``SELECT m.* FROM message m JOIN member mem ON mem.room = m.room WHERE
  mem.identity = :sender`` (the reader is a member of the message's room);
- ``peer``: ``SELECT * FROM message WHERE recipient = :sender``, where each message's
  ``recipient`` is its room's one reader: the same visible rows, from one table.

Every reader subscribes to ``SELECT * FROM message``. Measured, in the same run:

- ``insert``: one message inserted per transaction (rooms in turn), µs of subscription
  maintenance per transaction (``Database.subscription_statistics``), join and peer;
- ``sql``: a reader's one-off ``SELECT * FROM message``, µs per query, join and peer;
- ``membership``: join only: one transaction moves a reader to another room (delete and
  insert a ``member`` row), which re-evaluates that reader's query (the filter's table
  changed); µs of maintenance per transaction, and how many live queries were
  re-evaluated per transaction (1 when the guard on ``mem.identity`` works).

Prints a table with join / peer ratios and writes JSON; no target is asserted. See
bench/README.md, "Row-level security".
"""

from __future__ import annotations

import dataclasses
import gc
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from common import (  # noqa: E402
    fmt,
    machine_info,
    parse_args,
    run_took,
    temp_parent,
    text_table,
    write_results,
)

import cosmictron  # noqa: E402
from cosmictron import DurabilityConfig, Identity  # noqa: E402

TABLES = '''\
"""Written by bench/rls.py: rooms, members and messages."""
from cosmictron import Identity, ReducerContext, field, reducer, table, visibility_filter

@table(public=True)
class Member:
    id: int = field(primary_key=True)
    room: int = field(default=0, index="btree")
    identity: Identity = field(default=Identity.zero(), index="hash")

@table(public=True)
class Message:
    id: int = field(primary_key=True)
    room: int = field(default=0, index="btree")
    recipient: Identity = field(default=Identity.zero(), index="hash")
    text: str = ""

@reducer
def say(ctx: ReducerContext, id: int, room: int, recipient: Identity) -> None:
    ctx.db.message.insert(Message(id, room, recipient, "hello"))

@reducer
def move(ctx: ReducerContext, id: int, new_id: int, room: int) -> None:
    old = ctx.db.member.id.find(id)
    ctx.db.member.id.delete(id)
    ctx.db.member.insert(Member(new_id, room, old.identity))
'''
JOIN_FILTER = (
    "SELECT m.* FROM message m JOIN member mem ON mem.room = m.room WHERE mem.identity = :sender"
)
PEER_FILTER = "SELECT * FROM message WHERE recipient = :sender"
QUERY = "SELECT * FROM message"


@dataclasses.dataclass(frozen=True)
class Settings:
    readers: int
    per_room: int
    seconds: float  # per measured loop
    queries: int  # one-off queries timed per filter


FULL = Settings(readers=1000, per_room=10, seconds=2.0, queries=300)
QUICK = Settings(readers=100, per_room=10, seconds=0.2, queries=30)


def reader(n: int) -> Identity:
    return Identity((n + 1).to_bytes(32, "big"))


class Side:
    """One database with one of the two filters, loaded and fully subscribed."""

    def __init__(self, parent: str, name: str, rule: str, settings: Settings) -> None:
        directory = Path(parent) / name
        directory.mkdir()
        module = directory / "module.py"
        module.write_text(TABLES + f"\nRULE = visibility_filter({rule!r})\n")
        self.db = cosmictron.Database.open(
            str(directory / "db"),
            module=str(module),
            durability=DurabilityConfig.from_profile("development"),
        )
        self.settings = settings
        rooms = settings.readers
        self.db.bulk_insert("member", [(n, n, reader(n)) for n in range(rooms)])
        self.db.bulk_insert(
            "message",
            [(i, i % rooms, reader(i % rooms), "hello") for i in range(rooms * settings.per_room)],
        )
        self.next_message = rooms * settings.per_room
        self.next_member = rooms
        self.members = list(range(rooms))  # member row id of reader n
        self.updates = 0
        for n in range(rooms):
            self.db.subscribe([QUERY], on_update=self.count, sender=reader(n))

    def count(self, update: Any) -> None:
        self.updates += 1

    def maintenance(self) -> float:
        seconds: float = self.db.subscription_statistics()["maintenance_seconds"]
        return seconds

    def insert_loop(self) -> dict[str, Any]:
        gc.collect()
        rooms = self.settings.readers
        before, updates = self.maintenance(), self.updates
        done = 0
        deadline = time.perf_counter() + self.settings.seconds
        while time.perf_counter() < deadline:
            i = self.next_message
            self.db.call("say", i, i % rooms, reader(i % rooms))
            self.next_message += 1
            done += 1
        return {
            "transactions": done,
            "maintenance_us_per_tx": (self.maintenance() - before) / done * 1e6,
            "updates_per_tx": (self.updates - updates) / done,
        }

    def sql_loop(self) -> dict[str, Any]:
        gc.collect()
        rooms = self.settings.readers
        rows = 0
        started = time.perf_counter()
        for q in range(self.settings.queries):
            rows += len(self.db.sql(QUERY, sender=reader(q % rooms)).rows)
        elapsed = time.perf_counter() - started
        return {
            "queries": self.settings.queries,
            "us_per_query": elapsed / self.settings.queries * 1e6,
            "rows_per_query": rows / self.settings.queries,
        }

    def membership_loop(self) -> dict[str, Any]:
        gc.collect()
        rooms = self.settings.readers
        live = self.db.core.subscriptions.live_queries()  # the figure needs the internal count
        evaluated = sum(query.reevaluations for query in live)
        before, updates = self.maintenance(), self.updates
        done = 0
        deadline = time.perf_counter() + self.settings.seconds
        while time.perf_counter() < deadline:
            n = done % rooms
            room = (n + 1 + done // rooms) % rooms
            self.db.call("move", self.members[n], self.next_member, room)
            self.members[n] = self.next_member
            self.next_member += 1
            done += 1
        return {
            "transactions": done,
            "maintenance_us_per_tx": (self.maintenance() - before) / done * 1e6,
            "updates_per_tx": (self.updates - updates) / done,
            "reevaluated_queries_per_tx": (sum(query.reevaluations for query in live) - evaluated)
            / done,
        }

    def close(self) -> None:
        self.db.close()


def measure(settings: Settings, parent: str) -> dict[str, Any]:
    join = Side(parent, "join", JOIN_FILTER, settings)
    peer = Side(parent, "peer", PEER_FILTER, settings)
    try:
        results: dict[str, Any] = {}
        # Alternate the two sides so drift affects both alike.
        for key, loop in (("insert", "insert_loop"), ("sql", "sql_loop")):
            results[key] = {
                "join": getattr(join, loop)(),
                "peer": getattr(peer, loop)(),
            }
        ins, sql = results["insert"], results["sql"]
        ins["join_over_peer"] = (
            ins["join"]["maintenance_us_per_tx"] / ins["peer"]["maintenance_us_per_tx"]
        )
        sql["join_over_peer"] = sql["join"]["us_per_query"] / sql["peer"]["us_per_query"]
        results["membership"] = join.membership_loop()
        results["membership"]["over_insert"] = (
            results["membership"]["maintenance_us_per_tx"] / ins["join"]["maintenance_us_per_tx"]
        )
        return results
    finally:
        join.close()
        peer.close()


def table_text(results: dict[str, Any]) -> str:
    ins, sql, move = results["insert"], results["sql"], results["membership"]
    lines = [
        [
            "message insert: maintenance µs/tx",
            fmt(ins["join"]["maintenance_us_per_tx"]),
            fmt(ins["peer"]["maintenance_us_per_tx"]),
            f"{ins['join_over_peer']:.2f}x",
        ],
        [
            "reader's SELECT * FROM message: µs/query",
            fmt(sql["join"]["us_per_query"]),
            fmt(sql["peer"]["us_per_query"]),
            f"{sql['join_over_peer']:.2f}x",
        ],
        ["membership move: maintenance µs/tx", fmt(move["maintenance_us_per_tx"]), "n/a", "n/a"],
    ]
    out = [text_table(["measure", "join filter", "one-table peer", "join / peer"], lines)]
    out.append(
        f"membership move: {move['reevaluated_queries_per_tx']:.2f} queries re-evaluated per "
        f"tx, {move['over_insert']:.1f}x a message insert's maintenance"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "rls.json", argv)
    settings = QUICK if args.quick else FULL
    started = time.perf_counter()
    with temp_parent(args.tmpdir, "cosmictron-bench-rls-") as parent:
        results = measure(settings, parent)
        machine = machine_info(parent)
    print(table_text(results))
    print(f"\n{run_took(started, args.mode)}")
    filters = {"join": JOIN_FILTER, "peer": PEER_FILTER, "query": QUERY}
    write_results(args.out, "rls", args.mode, settings, machine, started, results, filters=filters)
    return 0


if __name__ == "__main__":
    sys.exit(main())
