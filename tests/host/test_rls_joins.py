"""Row-level security across joins, checked against an oracle.

The module's filters chain through three tables and a self-join:

* ``room``: visible when not archived (one table);
* ``member``: my memberships in visible rooms (a join to ``room``, whose own filter
  applies: a second hop), or every member of a room where I am a moderator (a self-join,
  read as stored);
* ``message``: the messages of rooms where I have a visible membership (a join to
  ``member``, through ``member``'s filters, through ``room``'s), or my own messages;
* ``reaction``: visible when its message is (one join filter, three hops deep: the
  only filter on its table, so subscriptions index it by the message ids it admits);
* ``tag``: no filter.

The oracle computes what each reader may see by brute force in plain Python, loads
exactly those rows into a second database with the same tables and no filters, and
runs the same query there as its owner: the reader's result must be the same bag of
rows. Subscriptions get a random sequence of reducer transactions (several tables per
transaction), and after each one the subscriber's copy, kept only from updates, must
equal the oracle's result.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cosmictron
from cosmictron.errors import QueryTooCostly, ResourceExhausted, SchemaError
from cosmictron.subscription import replayable
from cosmictron.values import Identity
from tests.subscription.conftest import Mirror

READERS = [Identity(bytes([n]) * 32) for n in (1, 2, 3)]

TABLES = """
import json
from cosmictron import *

@table(public=True)
class Room:
    id: int = field(primary_key=True)
    archived: bool = False

@table(public=True)
class Member:
    id: int = field(primary_key=True)
    room_id: int = field(default=0, index="btree")
    identity: Identity = field(default=Identity.zero(), index="hash")
    role: int = 0

@table(public=True)
class Message:
    id: int = field(primary_key=True)
    room_id: int = field(default=0, index="btree")
    author: Identity = field(default=Identity.zero())
    stars: int = 0

@table(public=True)
class Reaction:
    id: int = field(primary_key=True)
    message_id: int = field(default=0, index="btree")
    who: Identity = field(default=Identity.zero())

@table(public=True)
class Tag:
    id: int = field(primary_key=True)
    message_id: int = 0
    label: str = ""

def _row(kind, values):
    if kind == "room":
        return Room(values[0], bool(values[1]))
    if kind == "member":
        return Member(values[0], values[1], Identity.from_hex(values[2]), values[3])
    if kind == "message":
        return Message(values[0], values[1], Identity.from_hex(values[2]), values[3])
    if kind == "reaction":
        return Reaction(values[0], values[1], Identity.from_hex(values[2]))
    return Tag(values[0], values[1], values[2])

@reducer
def apply(ctx: ReducerContext, ops: str) -> None:
    for kind, verb, values in json.loads(ops):
        handle = getattr(ctx.db, kind)
        if verb == "put":
            if handle.id.find(values[0]) is None:
                handle.insert(_row(kind, values))
            else:
                handle.id.update(_row(kind, values))
        else:
            handle.id.delete(values[0])

@reducer
def load(ctx: ReducerContext, rows: str) -> None:
    for kind in ("room", "member", "message", "reaction", "tag"):
        handle = getattr(ctx.db, kind)
        for row in list(handle.iter()):
            handle.delete(row)
    for kind, values in json.loads(rows):
        getattr(ctx.db, kind).insert(_row(kind, values))
"""

FILTERS = """
OPEN_ROOMS = visibility_filter("SELECT * FROM room WHERE archived = FALSE")
MY_MEMBERSHIPS = visibility_filter(
    "SELECT m.* FROM member m JOIN room r ON r.id = m.room_id WHERE m.identity = :sender"
)
MODERATED = visibility_filter(
    "SELECT m.* FROM member m JOIN member me ON me.room_id = m.room_id "
    "WHERE me.identity = :sender AND me.role > 0"
)
MY_ROOMS_MESSAGES = visibility_filter(
    "SELECT msg.* FROM message msg JOIN member mem ON mem.room_id = msg.room_id "
    "WHERE mem.identity = :sender"
)
MY_MESSAGES = visibility_filter("SELECT * FROM message WHERE author = :sender")
ON_VISIBLE_MESSAGES = visibility_filter(
    "SELECT x.* FROM reaction x JOIN message msg ON msg.id = x.message_id"
)
"""

QUERIES = [
    "SELECT * FROM message",
    "SELECT * FROM member",
    "SELECT * FROM room",
    "SELECT * FROM message WHERE id = 3",
    "SELECT * FROM message WHERE stars > 1 AND room_id IN (1, 2)",
    "SELECT m.id, t.label FROM message m JOIN tag t ON t.message_id = m.id",
    "SELECT mem.id, m.id FROM member mem JOIN message m ON m.room_id = mem.room_id",
    "SELECT a.id, b.id FROM message a JOIN message b ON a.room_id = b.room_id",
    "SELECT r.id, m.id FROM room r LEFT JOIN message m ON m.room_id = r.id",
    "SELECT room_id, COUNT(*), SUM(stars), MAX(stars) FROM message GROUP BY room_id",
    "SELECT COUNT(*) FROM member",
    "SELECT DISTINCT room_id FROM member",
    "SELECT room_id, COUNT(*) FROM member GROUP BY room_id HAVING COUNT(*) > 1",
    "SELECT id, stars FROM message ORDER BY stars DESC, id LIMIT 3",
    "SELECT t.label FROM tag t JOIN message m ON m.id = t.message_id "
    "JOIN member mem ON mem.room_id = m.room_id WHERE mem.role > 0",
    "SELECT * FROM reaction",
    "SELECT COUNT(*) FROM reaction",
    "SELECT x.id, m.id FROM reaction x LEFT JOIN message m ON m.id = x.message_id",
]

SUBSCRIPTIONS = [
    "SELECT * FROM message",
    "SELECT * FROM member",
    "SELECT * FROM room",
    "SELECT * FROM message WHERE stars > 1",
    "SELECT m.* FROM message m JOIN tag t ON t.message_id = m.id",
    "SELECT t.* FROM tag t JOIN message m ON m.id = t.message_id",
    "SELECT m.* FROM member m JOIN room r ON r.id = m.room_id WHERE r.id < 3",
    "SELECT * FROM message ORDER BY stars DESC, id LIMIT 2",
    "SELECT * FROM reaction",
    "SELECT x.* FROM reaction x JOIN message m ON m.id = x.message_id WHERE m.stars > 0",
    "SELECT * FROM reaction ORDER BY id DESC LIMIT 2",
]

# -- the oracle ---------------------------------------------------------------------------

Rows = dict[str, dict[int, tuple[Any, ...]]]


def visible_rows(state: Rows, reader: Identity) -> Rows:
    """What ``reader`` may see, by brute force, from the filters' meaning in words."""
    rooms = {k: r for k, r in state["room"].items() if not r[1]}
    raw_members = state["member"]
    members = {}
    for key, (_, room, who, _) in raw_members.items():
        mine = who == reader and room in rooms
        moderated = any(
            m_room == room and m_who == reader and m_role > 0
            for _, m_room, m_who, m_role in raw_members.values()
        )
        if mine or moderated:
            members[key] = raw_members[key]
    messages = {}
    for key, (_, room, author, _) in state["message"].items():
        member = any(m_room == room and m_who == reader for _, m_room, m_who, _ in members.values())
        if member or author == reader:
            messages[key] = state["message"][key]
    reactions = {k: r for k, r in state["reaction"].items() if r[1] in messages}
    return {
        "room": rooms,
        "member": members,
        "message": messages,
        "reaction": reactions,
        "tag": dict(state["tag"]),
    }


def wire(state: Rows) -> str:
    rows = []
    for kind in ("room", "member", "message", "reaction", "tag"):
        for values in state[kind].values():
            rows.append([kind, [v.hex() if isinstance(v, Identity) else v for v in values]])
    return json.dumps(rows)


def apply_ops(state: Rows, ops: list[Any]) -> None:
    for kind, verb, values in ops:
        if verb == "put":
            row = tuple(
                Identity.from_hex(v) if isinstance(v, str) and len(v) == 64 else v for v in values
            )
            state[kind][values[0]] = row
        else:
            state[kind].pop(values[0], None)


# -- strategies ---------------------------------------------------------------------------

IDS = st.integers(1, 6)
ROOMS = st.integers(1, 3)
WHO = st.sampled_from([r.hex() for r in READERS])
OP = st.one_of(
    st.tuples(st.just("room"), st.just("put"), st.tuples(ROOMS, st.booleans())),
    st.tuples(st.just("member"), st.just("put"), st.tuples(IDS, ROOMS, WHO, st.integers(0, 1))),
    st.tuples(st.just("member"), st.just("delete"), st.tuples(IDS)),
    st.tuples(st.just("message"), st.just("put"), st.tuples(IDS, ROOMS, WHO, st.integers(0, 3))),
    st.tuples(st.just("message"), st.just("delete"), st.tuples(IDS)),
    st.tuples(st.just("tag"), st.just("put"), st.tuples(IDS, IDS, st.sampled_from("abc"))),
    st.tuples(st.just("room"), st.just("delete"), st.tuples(ROOMS)),
    st.tuples(st.just("reaction"), st.just("put"), st.tuples(IDS, IDS, WHO)),
    st.tuples(st.just("reaction"), st.just("delete"), st.tuples(IDS)),
)
TRANSACTION = st.lists(OP.map(lambda op: [op[0], op[1], list(op[2])]), min_size=1, max_size=4)


class Pair:
    """The filtered database, and the oracle database (same tables, no filters)."""

    def __init__(self, directory: Path) -> None:
        dev = cosmictron.DurabilityConfig.from_profile("development")
        (directory / "filtered.py").write_text(TABLES + FILTERS)
        (directory / "plain.py").write_text(TABLES)
        self.db = cosmictron.Database.open(
            directory / "filtered", module=str(directory / "filtered.py"), durability=dev
        )
        self.oracle = cosmictron.Database.open(
            directory / "plain", module=str(directory / "plain.py"), durability=dev
        )
        self.state: Rows = {"room": {}, "member": {}, "message": {}, "reaction": {}, "tag": {}}

    def close(self) -> None:
        self.db.close()
        self.oracle.close()

    def apply(self, ops: list[Any]) -> None:
        self.db.call("apply", json.dumps(ops))
        apply_ops(self.state, ops)

    def expected(self, query: str, reader: Identity) -> list[tuple[Any, ...]]:
        self.oracle.call("load", wire(visible_rows(self.state, reader)))
        rows: list[tuple[Any, ...]] = self.oracle.sql(query).rows
        return rows


def check_queries(pair: Pair) -> None:
    for reader in READERS:
        for query in QUERIES:
            got = pair.db.sql(query, sender=reader).rows
            expected = pair.expected(query, reader)
            if "ORDER BY" in query:
                assert got == expected, (query, reader)
            else:
                assert Counter(got) == Counter(expected), (query, reader)
    everything = pair.db.sql("SELECT COUNT(*) FROM message").rows[0][0]
    assert everything == len(pair.state["message"])  # the owner is not filtered


def run_queries(setup: list[list[Any]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        pair = Pair(Path(directory))
        try:
            for ops in setup:
                pair.apply(ops)
            check_queries(pair)
        finally:
            pair.close()


def run_subscriptions(setup: list[list[Any]], transactions: list[list[Any]]) -> None:
    with tempfile.TemporaryDirectory() as directory:
        pair = Pair(Path(directory))
        try:
            for ops in setup:
                pair.apply(ops)
            mirrors: dict[tuple[Identity, str], Mirror] = {}
            for reader in READERS:
                for query in SUBSCRIPTIONS:
                    mirror = Mirror()
                    sub = pair.db.subscribe([query], on_update=mirror, sender=reader)
                    mirror.start(sub.initial)
                    mirrors[(reader, query)] = mirror
            for ops in transactions:
                pair.apply(ops)
                for (reader, query), mirror in mirrors.items():
                    table = query.split("FROM ")[1].split()[0]
                    expected = Counter(pair.expected(query, reader))
                    assert mirror.table(table) == expected, (query, reader, ops)
        finally:
            pair.close()


QUERY_SETTINGS = settings(
    max_examples=12,
    derandomize=True,  # the same examples on every run: CI stays deterministic
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SUBSCRIPTION_SETTINGS = settings(
    max_examples=10,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@QUERY_SETTINGS
@given(setup=st.lists(TRANSACTION, min_size=1, max_size=8))
def test_a_readers_queries_equal_the_same_queries_over_only_their_rows(
    setup: list[list[Any]],
) -> None:
    run_queries(setup)


@SUBSCRIPTION_SETTINGS
@given(
    setup=st.lists(TRANSACTION, min_size=0, max_size=4),
    transactions=st.lists(TRANSACTION, min_size=1, max_size=8),
)
def test_a_readers_subscriptions_follow_membership_changes(
    setup: list[list[Any]], transactions: list[list[Any]]
) -> None:
    run_subscriptions(setup, transactions)


@pytest.mark.soak
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(setup=st.lists(TRANSACTION, min_size=1, max_size=20))
def test_soak_queries_over_only_the_readers_rows(setup: list[list[Any]]) -> None:
    run_queries(setup)


@pytest.mark.soak
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    setup=st.lists(TRANSACTION, min_size=0, max_size=10),
    transactions=st.lists(TRANSACTION, min_size=1, max_size=30),
)
def test_soak_subscriptions_follow_membership_changes(
    setup: list[list[Any]], transactions: list[list[Any]]
) -> None:
    run_subscriptions(setup, transactions)


# -- fixed cases ---------------------------------------------------------------------------


def test_a_membership_reveals_and_hides_a_rooms_messages_in_a_subscription() -> None:
    alice, bob = READERS[0].hex(), READERS[1].hex()
    run_subscriptions(
        [[["room", "put", [1, False]], ["message", "put", [1, 1, alice, 2]]]],
        [
            [["member", "put", [1, 1, bob, 0]]],  # bob joins: message 1 appears
            [["member", "put", [2, 1, bob, 0]]],  # a second membership: still once
            [["member", "delete", [1]]],  # one left: still visible
            [["room", "put", [1, True]]],  # the room is archived: the hop hides it
            [["room", "put", [1, False]], ["member", "delete", [2]]],  # both at once
        ],
    )


CYCLE = """
@table(public=True)
class A:
    id: int = field(primary_key=True)
    b_id: int = 0

@table(public=True)
class B:
    id: int = field(primary_key=True)
    a_id: int = 0

FA = visibility_filter("SELECT a.* FROM a JOIN b ON b.id = a.b_id")
FB = visibility_filter("SELECT b.* FROM b JOIN a ON a.id = b.a_id")
"""


def test_filters_that_read_each_other_in_a_cycle_refuse_the_module(open_db: Any) -> None:
    with pytest.raises(SchemaError, match=r"cycle: a -> b -> a"):
        open_db("from cosmictron import *\n" + CYCLE)


def test_a_longer_cycle_is_named_whole(open_db: Any) -> None:
    source = (
        "from cosmictron import *\n"
        + CYCLE.replace(
            'FB = visibility_filter("SELECT b.* FROM b JOIN a ON a.id = b.a_id")',
            'FB = visibility_filter("SELECT b.* FROM b JOIN c ON c.id = b.a_id")\n'
            'FC = visibility_filter("SELECT c.* FROM c JOIN a ON a.id = c.id")',
        )
        + "\n@table(public=True)\nclass C:\n    id: int = field(primary_key=True)\n"
    )
    with pytest.raises(SchemaError, match=r"cycle: a -> b -> c -> a"):
        open_db(source)


def test_explain_shows_each_hop_of_the_filter(open_db: Any) -> None:
    db = open_db(TABLES + FILTERS)
    lines = [row[0] for row in db.sql("EXPLAIN SELECT * FROM message", sender=READERS[0]).rows]
    text = "\n".join(lines)
    assert "IN VISIBLE [SELECT msg.* FROM message msg JOIN member mem" in text
    assert "  IndexScan member AS mem USING identity" in text  # the subplan, indented
    assert "archived = FALSE" in text  # member's own filter, one hop further
    assert READERS[0].hex() in text  # the reader's identity, bound


def test_a_filter_reading_more_rows_than_the_limit_is_named_in_the_error(
    open_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = open_db(TABLES + FILTERS)
    alice = READERS[0].hex()
    ops = [["room", "put", [1, False]]]
    ops += [["member", "put", [n, 1, alice, 0]] for n in range(1, 5)]
    ops += [["message", "put", [1, 1, alice, 0]]]
    db.call("apply", json.dumps(ops))
    monkeypatch.setattr(cosmictron.limits, "query_rows_max", 3)
    assert len(db.sql("SELECT * FROM member", rows_max=100).rows) == 4  # the owner: no filter
    with pytest.raises(ResourceExhausted, match=r"visibility filter .*member mem.* more than 3"):
        db.sql("SELECT * FROM message", sender=READERS[0], rows_max=100)
    monkeypatch.setattr(cosmictron.limits, "query_rows_max", 4)  # four memberships fit
    assert len(db.sql("SELECT * FROM message", sender=READERS[0], rows_max=100).rows) == 1


def test_an_alias_on_a_one_table_filter_is_allowed(open_db: Any) -> None:
    source = TABLES + "\nX = visibility_filter(\"SELECT * FROM tag t WHERE t.label = 'a'\")\n"
    db = open_db(source)
    ops = [["tag", "put", [1, 1, "a"]], ["tag", "put", [2, 1, "b"]]]
    db.call("apply", json.dumps(ops))
    assert db.sql("SELECT id FROM tag", sender=READERS[0]).rows == [(1,)]


def test_readers_whose_identities_share_a_prefix_never_share_a_subscription(
    open_db: Any,
) -> None:
    # ``repr(Identity)`` shows 8 bytes; live queries were once keyed by the plan's repr,
    # so these two readers shared one query and each received the other's rows.
    first = Identity(bytes(31) + b"\x01")
    second = Identity(bytes(31) + b"\x02")
    db = open_db(TABLES + FILTERS)
    mirrors = {}
    for who in (first, second):
        mirror = Mirror()
        mirror.start(db.subscribe(["SELECT * FROM message"], on_update=mirror, sender=who).initial)
        mirrors[who] = mirror
    ops = [["message", "put", [1, 1, first.hex(), 0]], ["message", "put", [2, 1, second.hex(), 0]]]
    db.call("apply", json.dumps(ops))
    assert [row[0] for row in mirrors[first].table("message")] == [1]
    assert [row[0] for row in mirrors[second].table("message")] == [2]


ROOMS_MODULE = """
from cosmictron import *

@table(public=True)
class Member:
    id: int = field(primary_key=True)
    room: int = field(default=0, index="btree")
    identity: Identity = field(default=Identity.zero(), index="hash")

@table(public=True)
class Message:
    id: int = field(primary_key=True)
    room: int = field(default=0, index="btree")
    stars: int = 0

@table(public=True)
class Room:
    id: int = field(primary_key=True)
    name: str = ""

IN_MY_ROOMS = visibility_filter(
    "SELECT m.* FROM message m JOIN member mem ON mem.room = m.room WHERE mem.identity = :sender"
)
MY_ROOMS = visibility_filter(
    "SELECT r.* FROM room r JOIN member mem ON mem.room = r.id WHERE mem.identity = :sender"
)
"""


def test_a_join_filter_found_through_an_index_returns_exactly_the_admitted_rows(
    open_db: Any,
) -> None:
    # Few rooms admitted out of many rows: the executor looks the rooms up in the
    # ``room`` index (btree) and the ``id`` primary key instead of scanning.
    db = open_db(ROOMS_MODULE)
    alice = READERS[0]
    rooms = [3, 7, 11]
    db.bulk_insert("member", [(n, room, alice) for n, room in enumerate(rooms)])
    db.bulk_insert("member", [(100 + n, n, READERS[1]) for n in range(20)])
    db.bulk_insert("message", [(n, n % 20, n % 5) for n in range(400)])
    db.bulk_insert("room", [(n, f"room {n}") for n in range(20)])
    got = db.sql("SELECT id FROM message", sender=alice).rows
    assert sorted(got) == [(n,) for n in range(400) if n % 20 in rooms]
    starred = db.sql("SELECT COUNT(*) FROM message WHERE stars > 2", sender=alice).rows
    assert starred == [(sum(1 for n in range(400) if n % 20 in rooms and n % 5 > 2),)]
    assert sorted(db.sql("SELECT id FROM room", sender=alice).rows) == [(r,) for r in rooms]
    joined = db.sql(
        "SELECT r.id, COUNT(*) FROM room r JOIN message m ON m.room = r.id GROUP BY r.id",
        sender=alice,
    ).rows
    assert sorted(joined) == [(r, 20) for r in rooms]


def chain_module(length: int) -> str:
    """Tables t0..t{length}; each t_i but the last has two filters joining t_{i+1}."""
    lines = ["from cosmictron import *"]
    for n in range(length + 1):
        lines += ["@table(public=True)", f"class T{n}:", "    id: int = field(primary_key=True)"]
        lines += ["    up: int = 0", ""]
    for n in range(length):
        for column in ("id", "up"):
            lines.append(
                f'F{n}_{column} = visibility_filter("SELECT a.* FROM t{n} a '
                f'JOIN t{n + 1} b ON b.{column} = a.up")'
            )
    return "\n".join(lines) + "\n"


def test_filters_expanding_past_the_reads_limit_refuse_the_module(
    open_db: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # t3 reads t4 twice (2); t2: 2 * (1 + 2) = 6; t1: 14; t0: 30 reads in all.
    monkeypatch.setattr(cosmictron.limits, "visibility_filter_reads_max", 29)
    with pytest.raises(SchemaError, match=r"'t0' read 30 tables .* limit is 29"):
        open_db(chain_module(4), path=tmp_path / "over")
    monkeypatch.setattr(cosmictron.limits, "visibility_filter_reads_max", 30)
    db = open_db(chain_module(4), path=tmp_path / "at")
    db.sql("INSERT INTO t4 (id, up) VALUES (1, 1)")
    db.sql("INSERT INTO t0 (id, up) VALUES (1, 1)")
    db.sql("INSERT INTO t1 (id, up) VALUES (1, 1)")
    db.sql("INSERT INTO t2 (id, up) VALUES (1, 1)")
    db.sql("INSERT INTO t3 (id, up) VALUES (1, 1)")
    assert db.sql("SELECT id FROM t0", sender=READERS[0]).rows == [(1,)]  # 4 hops, all admit
    db.sql("DELETE FROM t4")
    assert db.sql("SELECT id FROM t0", sender=READERS[0]).rows == []  # the last hop hides all


def test_a_readers_filter_work_counts_against_its_query_budget(open_db: Any) -> None:
    # The reader's query returns nothing, but its filter examines every member row of
    # the reader (an index lookup): that work is charged to the reader's budget.
    db = open_db(ROOMS_MODULE)
    alice = READERS[0]
    db.bulk_insert("member", [(n, 1000 + n, alice) for n in range(300)])
    db.bulk_insert("message", [(n, n, 0) for n in range(10)])
    assert db.sql("SELECT id FROM message", sender=alice, rows_examined_max=1000).rows == []
    with pytest.raises(QueryTooCostly, match="rows-examined budget"):
        db.sql("SELECT id FROM message", sender=alice, rows_examined_max=200)
    assert len(db.sql("SELECT id FROM message", rows_examined_max=200).rows) == 10  # owner


def test_a_join_filtered_subscription_is_never_replayed_on_resume(open_db: Any) -> None:
    """Resuming a client recomputes past deltas only for queries whose delta reads the
    transaction's own rows; a join filter's admitted keys depend on ``member`` as it was
    then, and recomputing would move the shared query's kept result. Such clients get
    their rows again instead (``subscription.replayable``)."""
    db = open_db(ROOMS_MODULE)
    alice = READERS[0]
    filtered = db.subscribe(["SELECT * FROM message"], sender=alice)
    unfiltered = db.subscribe(["SELECT * FROM member"], sender=alice)
    assert not replayable(filtered.queries)
    assert replayable(unfiltered.queries)
