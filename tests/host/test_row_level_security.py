"""Row-level security: a non-owner never sees a filtered row, by any road.

The module below has two filters on ``message`` (its author and its recipient may read
it; the filters are OR-ed), one on ``note`` that admits every row, and none on
``member``. Each road a row could leak through is tried: a plain SELECT, the primary-key
fast path, joins (inner, self, LEFT), aggregates, EXPLAIN, and subscriptions, with a
randomised run comparing every delivered update against what the reader may see.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from cosmictron.errors import PermissionDenied, SchemaError, SqlError
from cosmictron.values import Identity
from tests.subscription.conftest import Mirror

ALICE = Identity(b"\x0a" * 32)
BOB = Identity(b"\x0b" * 32)
CAROL = Identity(b"\x0c" * 32)
PEOPLE = [ALICE, BOB, CAROL]

MODULE = """
import json

@table(public=True)
class Member:
    id: Identity = field(primary_key=True)
    name: str = ""

@table(public=True)
class Message:
    id: int = field(primary_key=True)
    author: Identity = field(default=Identity.zero(), index="btree")
    recipient: Identity = field(default=Identity.zero(), index="hash")
    body: str = ""
    stars: int = 0

@table(public=True)
class Note:
    id: int = field(primary_key=True)
    text: str = ""

@table
class Audit:
    id: int = field(primary_key=True)

MINE = visibility_filter("SELECT * FROM message WHERE author = :sender")
TO_ME = visibility_filter("SELECT message.* FROM message WHERE message.recipient = :sender")
ALL_NOTES = visibility_filter("SELECT * FROM note")
AUDIT = visibility_filter("SELECT * FROM audit WHERE id > 0")

@reducer
def post(ctx: ReducerContext, id: int, author: str, recipient: str, body: str, stars: int) -> None:
    row = Message(id, Identity.from_hex(author), Identity.from_hex(recipient), body, stars)
    if ctx.db.message.id.find(id) is None:
        ctx.db.message.insert(row)
    else:
        ctx.db.message.id.update(row)

@reducer
def remove(ctx: ReducerContext, id: int) -> None:
    ctx.db.message.id.delete(id)

@reducer
def join(ctx: ReducerContext, who: str, name: str) -> None:
    ctx.db.member.insert(Member(Identity.from_hex(who), name))
"""


@pytest.fixture
def db(open_db: Any) -> Any:
    database = open_db(MODULE)
    for person, name in zip(PEOPLE, ["alice", "bob", "carol"], strict=True):
        database.call("join", person.hex(), name)
    return database


def post(db: Any, id: int, author: Identity, recipient: Identity, stars: int = 0) -> None:
    db.call("post", id, author.hex(), recipient.hex(), f"m{id}", stars)


def visible(author: Identity, recipient: Identity, reader: Identity) -> bool:
    return reader in (author, recipient)


def seed(db: Any) -> None:
    post(db, 1, ALICE, BOB, 3)
    post(db, 2, BOB, CAROL, 1)
    post(db, 3, CAROL, CAROL, 5)
    post(db, 4, ALICE, ALICE, 2)


def ids(result: Any) -> list[Any]:
    return sorted(row[0] for row in result.rows)


def test_a_non_owner_sees_only_rows_a_filter_admits(db: Any) -> None:
    seed(db)
    assert ids(db.sql("SELECT * FROM message")) == [1, 2, 3, 4]  # the owner sees all
    assert ids(db.sql("SELECT * FROM message", sender=ALICE)) == [1, 4]
    assert ids(db.sql("SELECT * FROM message", sender=BOB)) == [1, 2]  # OR of both filters
    assert ids(db.sql("SELECT * FROM message", sender=CAROL)) == [2, 3]
    stranger = Identity(b"\x77" * 32)
    assert ids(db.sql("SELECT * FROM message", sender=stranger)) == []
    # A WHERE cannot widen the view, even one that names a hidden row exactly.
    query = "SELECT id FROM message WHERE author = :who OR id = 3"
    assert ids(db.sql(query, {"who": CAROL}, sender=ALICE)) == []


def test_the_primary_key_fast_path_is_filtered_too(db: Any) -> None:
    seed(db)
    query = "SELECT * FROM message WHERE id = :id"
    assert db.sql(query, {"id": 3}).rows  # the owner's point lookup, cached first
    assert db.sql(query, {"id": 3}, sender=ALICE).rows == []
    assert ids(db.sql(query, {"id": 4}, sender=ALICE)) == [4]
    assert db.sql("SELECT body FROM message WHERE id = 2", sender=ALICE).rows == []


def test_joins_do_not_reach_hidden_rows(db: Any) -> None:
    seed(db)
    by_author = "SELECT m.* FROM member u JOIN message m ON m.author = u.id"
    assert ids(db.sql(by_author, sender=ALICE)) == [1, 4]
    # The other side of the join shows only members joined to a visible message.
    members = (
        "SELECT u.name FROM member u JOIN message m ON m.author = u.id "
        "WHERE m.stars >= 3 ORDER BY u.name"
    )
    assert db.sql(members).rows == [("alice",), ("carol",)]
    assert db.sql(members, sender=ALICE).rows == [("alice",)]
    assert db.sql(members, sender=BOB).rows == [("alice",)]
    # Each occurrence of a filtered table is filtered: a self-join sees visible pairs.
    pairs = "SELECT a.id, b.id FROM message a JOIN message b ON a.author = b.recipient"
    for reader in PEOPLE:
        for first, second in db.sql(pairs, sender=reader).rows:
            assert first in ids(db.sql("SELECT * FROM message", sender=reader))
            assert second in ids(db.sql("SELECT * FROM message", sender=reader))
    assert sorted(db.sql(pairs, sender=ALICE).rows) == [(1, 4), (4, 4)]


def test_a_left_join_shows_hidden_rows_as_missing(db: Any) -> None:
    seed(db)
    query = (
        "SELECT u.name, m.id FROM member u LEFT JOIN message m ON m.author = u.id "
        "ORDER BY u.name, m.id"
    )
    assert db.sql(query, sender=ALICE).rows == [
        ("alice", 1),
        ("alice", 4),
        ("bob", None),
        ("carol", None),
    ]
    assert db.sql(query, sender=CAROL).rows == [
        ("alice", None),
        ("bob", 2),
        ("carol", 3),
    ]


def test_aggregates_count_only_visible_rows(db: Any) -> None:
    seed(db)
    query = "SELECT COUNT(*), SUM(stars), MAX(id) FROM message"
    assert db.sql(query).rows == [(4, 11, 4)]
    assert db.sql(query, sender=ALICE).rows == [(2, 5, 4)]
    assert db.sql(query, sender=CAROL).rows == [(2, 6, 3)]
    grouped = "SELECT author, COUNT(*) FROM message GROUP BY author ORDER BY author"
    assert db.sql(grouped).rows == [(ALICE, 2), (BOB, 1), (CAROL, 1)]
    assert db.sql(grouped, sender=BOB).rows == [(ALICE, 1), (BOB, 1)]


def test_explain_shows_the_filter_to_a_non_owner(db: Any) -> None:
    owner_plan = "\n".join(r[0] for r in db.sql("EXPLAIN SELECT * FROM message").rows)
    reader_plan = "\n".join(
        r[0] for r in db.sql("EXPLAIN SELECT * FROM message", sender=ALICE).rows
    )
    assert "Filter" not in owner_plan
    me = ALICE.hex()
    assert f"Filter ((author = '{me}') OR (recipient = '{me}'))" in reader_plan


def test_filters_restrict_rows_but_never_open_a_private_table(db: Any) -> None:
    with pytest.raises(PermissionDenied, match="private"):
        db.sql("SELECT * FROM audit", sender=ALICE)
    with pytest.raises(PermissionDenied, match="private"):
        db.subscribe(["SELECT * FROM audit"], sender=ALICE)


def test_a_filter_without_where_admits_every_row(db: Any) -> None:
    db.sql("INSERT INTO note (id, text) VALUES (1, 'a'), (2, 'b')")
    assert ids(db.sql("SELECT * FROM note", sender=BOB)) == [1, 2]


def test_sender_cannot_be_passed_as_a_parameter(db: Any) -> None:
    seed(db)
    with pytest.raises(SqlError, match=":sender is the caller's identity"):
        db.sql("SELECT * FROM message", {"sender": CAROL}, sender=ALICE)
    with pytest.raises(SqlError, match=":sender is the caller's identity"):
        db.subscribe(["SELECT * FROM message"], params={"sender": CAROL}, sender=ALICE)


def test_a_subscription_update_never_carries_a_hidden_row(db: Any) -> None:
    seed(db)
    mirror = Mirror()
    sub = db.subscribe(["SELECT * FROM message"], on_update=mirror, sender=ALICE)
    mirror.start(sub.initial)
    assert sorted(r[0] for r in mirror.table("message")) == [1, 4]
    post(db, 5, BOB, CAROL)  # not Alice's: no update at all
    assert mirror.updates == []
    post(db, 2, BOB, ALICE)  # now addressed to her: it enters
    post(db, 1, BOB, CAROL)  # no longer hers: it leaves, as a delete
    db.call("remove", 3)  # hidden, removed: nothing
    assert [[(u["tables"][0]["inserts"], u["tables"][0]["deletes"])] for u in mirror.updates] == [
        [([(2, BOB, ALICE, "m2", 0)], [])],
        [([], [(1, ALICE, BOB, "m1", 3)])],
    ]
    assert sorted(r[0] for r in mirror.table("message")) == [2, 4]


def test_restricted_queries_are_per_sender_and_unrestricted_ones_shared(db: Any) -> None:
    before = db.core.subscriptions.query_count
    for reader in PEOPLE:
        db.subscribe(["SELECT * FROM message"], sender=reader)
        db.subscribe(["SELECT * FROM member"], sender=reader)
    db.subscribe(["SELECT * FROM message"], sender=ALICE)
    assert db.core.subscriptions.query_count - before == len(PEOPLE) + 1


@pytest.mark.parametrize("seed_value", [1, 2, 3])
def test_random_transactions_never_leak_and_mirrors_stay_exact(db: Any, seed_value: int) -> None:
    """Each reader's maintained results equal the owner's rows filtered by the rule."""
    rng = random.Random(seed_value)
    queries = {
        "all": "SELECT * FROM message",
        "starred": "SELECT * FROM message WHERE stars >= 2",
        "joined": "SELECT m.* FROM member u JOIN message m ON m.recipient = u.id",
        "pairs": "SELECT b.* FROM message a JOIN message b ON a.id = b.stars",
        "top": "SELECT * FROM message ORDER BY stars DESC, id LIMIT 3",
    }
    mirrors: dict[tuple[Identity, str], Mirror] = {}
    for reader in PEOPLE:
        for name, text in queries.items():
            mirror = Mirror()
            mirror.start(db.subscribe([text], on_update=mirror, sender=reader).initial)
            mirrors[(reader, name)] = mirror
    for _ in range(60):
        number = rng.randrange(1, 12)
        if rng.random() < 0.2:
            db.call("remove", number)
        else:
            post(db, number, rng.choice(PEOPLE), rng.choice(PEOPLE), rng.randrange(0, 6))
        everything = db.sql("SELECT * FROM message").rows
        for (reader, name), mirror in mirrors.items():
            shown = mirror.table("message")
            for row in shown:
                assert visible(row[1], row[2], reader), (reader, name, row)
            expected = Counter(db.sql(queries[name], sender=reader).rows)
            assert shown == expected, (reader, name)
            if name == "all":
                assert shown == Counter(r for r in everything if visible(r[1], r[2], reader))


BAD_FILTERS = [
    ("SELECT * FROM nowhere WHERE id = 1", "unknown table 'nowhere'"),
    ("SELECT * FROM message WHERE writer = :sender", "unknown column 'writer'"),
    ("SELECT * FROM message WHERE author = :someone", "parameter :someone is not known"),
    ("SELECT id FROM message", "selects whole rows"),
    (
        "SELECT * FROM message JOIN member ON member.id = message.author",
        "name the table the filter restricts",
    ),
    (
        "SELECT message.* FROM message LEFT JOIN member ON member.id = message.author",
        "LEFT JOIN is not allowed",
    ),
    (
        "SELECT m.* FROM message m JOIN member ON member.id = m.author OR m.stars > 3",
        "must be an equality",
    ),
    (
        "SELECT m.* FROM message m JOIN member ON member.id > m.author",
        "must be an equality",
    ),
    ("SELECT x.* FROM message m", "unknown table or alias 'x'"),
    ("SELECT m.* FROM message m JOIN member m ON m.id = m.id", "appears twice"),
    ("SELECT m.* FROM message m JOIN member mem ON mem.nope = m.author", "unknown column"),
    ("DELETE FROM message", "a filter is SELECT"),
    ("SELECT * FROM message WHERE", "syntax error"),
    ("SELECT * FROM message ORDER BY id", "ORDER is not allowed"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILTERS)
def test_a_bad_filter_refuses_the_module(open_db: Any, text: str, message: str) -> None:
    source = MODULE + f"\nBAD = visibility_filter({json.dumps(text)})\n"
    with pytest.raises(SchemaError, match="visibility filter") as error:
        open_db(source)
    assert message in str(error.value)


def test_filters_are_part_of_the_stored_schema(db: Any) -> None:
    stored = json.loads((db.path / "module" / "schema.json").read_text())
    assert len(stored["visibility_filters"]) == 4
