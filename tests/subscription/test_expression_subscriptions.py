"""Subscriptions whose WHERE uses functions, CASE, CAST, IS, GLOB and LIKE … ESCAPE.

These are row-local, so they are maintained incrementally like any other condition:
each is a conjunct the delta terms check per changed row. A reader who is not the owner
subscribes through a visibility filter; after every random transaction the result kept
only from updates must equal the same query run afresh for that reader (and that in
turn the query over the rows the filter admits, computed here in Python).
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from cosmictron.values import Identity
from tests.subscription.conftest import Mirror

ALICE = Identity(b"\x0a" * 32)
BOB = Identity(b"\x0b" * 32)

MODULE = """
from typing import Optional

@table(public=True)
class Item:
    id: int = field(primary_key=True)
    owner: Identity = field(default=Identity.zero(), index="hash")
    name: str = ""
    price: Optional[float] = None
    qty: Optional[int] = None

@table(public=True)
class Tag:
    item_id: int = field(primary_key=True)
    label: str = ""

MINE = visibility_filter("SELECT * FROM item WHERE owner = :sender")
"""

QUERIES = [
    "SELECT * FROM item WHERE LOWER(name) LIKE 'a%' AND COALESCE(price, 0) > 1",
    "SELECT * FROM item WHERE CASE WHEN qty IS NULL THEN 'none' WHEN qty > 2 THEN 'many' "
    "ELSE 'few' END = 'many'",
    "SELECT * FROM item WHERE CAST(price AS INTEGER) IS NOT qty",
    "SELECT * FROM item WHERE name GLOB '[a-c]*' OR ABS(qty) IN ()",
    "SELECT * FROM item WHERE NOT (qty NOT IN ()) OR name LIKE '%!%%' ESCAPE '!'",
    "SELECT * FROM item WHERE LENGTH(TRIM(name)) BETWEEN 2 AND 3 AND ROUND(price, 1) >= 1.5",
    "SELECT * FROM item WHERE MAX(qty, 1) = 1 AND SUBSTR(name, 2, 1) <> 'x'",
    "SELECT * FROM item WHERE NULLIF(qty, 0) IS NULL",
    "SELECT item.* FROM item JOIN tag ON tag.item_id = item.id "
    "WHERE UPPER(tag.label) = REPLACE(UPPER(item.name), ' ', '')",
    "SELECT * FROM item WHERE TYPEOF(price) = 'real' ORDER BY price DESC LIMIT 3",
]

NAMES = ["ab", "Abc", "b%c", " ac ", "bx", "cab", "a b", "x", "AB"]


@pytest.fixture
def db(open_db: Any) -> Any:
    return open_db(MODULE)


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def random_write(db: Any, rng: random.Random) -> None:
    """One transaction as the owner: an insert, an update or a delete."""
    item = rng.randint(1, 12)
    action = rng.randrange(4)
    if action == 0:
        db.sql(f"DELETE FROM item WHERE id = {item}")
    elif action == 1:
        db.sql(f"DELETE FROM tag WHERE item_id = {item}")
        label = rng.choice(NAMES).replace(" ", "").upper()
        db.sql(f"INSERT INTO tag VALUES ({item}, {literal(label)})")
    else:
        owner = rng.choice([ALICE, BOB])
        price = rng.choice([None, 0.5, 1.45, 1.55, 2.0, 3.75, -2.5])
        qty = rng.choice([None, 0, 1, 2, 3, -4])
        name = rng.choice(NAMES)
        db.sql(f"DELETE FROM item WHERE id = {item}")
        db.sql(
            "INSERT INTO item VALUES (:id, :owner, :name, :price, :qty)",
            {"id": item, "owner": owner, "name": name, "price": price, "qty": qty},
        )


@pytest.mark.parametrize("seed", [1, 2])
def test_row_local_expressions_are_maintained_for_a_filtered_reader(db: Any, seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(10):
        random_write(db, rng)
    mirrors = []
    for query in QUERIES:
        mirror = Mirror()
        subscription = db.subscribe([query], on_update=mirror, sender=ALICE)
        mirror.start(subscription.initial)
        mirrors.append((query, mirror))
        how = subscription.explain()[0]
        assert how.startswith("Subscription: incremental"), (query, how)  # not re-evaluated
    seen = 0
    for step in range(60):
        random_write(db, rng)
        for query, mirror in mirrors:
            fresh = db.sql(query, sender=ALICE)
            alone = db.sql(owner_version(query), {"alice": ALICE})  # the owner, filtering
            assert Counter(fresh.rows) == Counter(alone.rows), query
            seen += len(fresh.rows)
            expected = Counter(tuple(row) for row in fresh.rows)
            kept = Counter(tuple(_plain(v) for v in row) for row in mirror.table("item").elements())
            assert kept == Counter(tuple(_plain(v) for v in row) for row in expected.elements()), (
                f"seed {seed} step {step}: {query}"
            )
            assert all(row[1] == ALICE for row in fresh.rows)  # the filter still applies
    assert seen > 100, "the run hardly ever had rows to compare"
    everything = db.sql("SELECT * FROM item").rows
    assert any(row[1] == BOB for row in everything), "the run never wrote a hidden row"


def owner_version(query: str) -> str:
    """``query`` restricted by hand to Alice's rows, for the owner (who sees all)."""
    head, _, condition = query.partition(" WHERE ")
    condition, order, tail = condition.partition(" ORDER BY ")
    return f"{head} WHERE ({condition}) AND item.owner = :alice {order}{tail}"


def _plain(value: Any) -> Any:
    """A value as the mirror holds it (identities as hex text)."""
    return value.hex() if isinstance(value, Identity) else value


def test_a_filtered_reader_sees_only_admitted_rows_under_functions(db: Any) -> None:
    db.sql(
        "INSERT INTO item VALUES (1, :a, 'ab', 2.0, 3), (2, :b, 'ab', 2.0, 3), "
        "(3, :a, 'x', NULL, 0)",
        {"a": ALICE, "b": BOB},
    )
    query = "SELECT id, UPPER(name), COALESCE(price, -1) FROM item ORDER BY id"
    assert db.sql(query, sender=ALICE).rows == [(1, "AB", 2.0), (3, "X", -1)]
    count = "SELECT COUNT(*), SUM(CASE WHEN qty > 0 THEN 1 ELSE 0 END) FROM item"
    assert db.sql(count, sender=ALICE).rows == [(2, 1)]
    assert db.sql(count).rows == [(3, 2)]


def test_nulls_last_with_limit_is_maintained_by_re_evaluation(db: Any) -> None:
    db.sql("INSERT INTO item (id, name, price) VALUES (1, 'a', NULL), (2, 'b', 2.0)")
    mirror = Mirror()
    query = "SELECT * FROM item ORDER BY price NULLS LAST LIMIT 2"
    sub = db.subscribe([query], on_update=mirror)
    mirror.start(sub.initial)
    assert any("re-evaluated" in line and "NULLS FIRST/LAST" in line for line in sub.explain())
    assert sorted(row[0] for row in mirror.table("item")) == [1, 2]
    db.sql("INSERT INTO item (id, name, price) VALUES (3, 'c', 1.0)")  # pushes the NULL out
    assert sorted(row[0] for row in mirror.table("item")) == [2, 3]
    kept = Counter(tuple(_plain(v) for v in row) for row in mirror.table("item").elements())
    fresh = Counter(tuple(_plain(v) for v in row) for row in db.sql(query).rows)
    assert kept == fresh
