"""Differential property test: a result kept from updates equals the query run afresh.

Random transactions (inserts, updates, deletes, some failing) over three tables, random
subscribed queries (filters, 2- and 3-way joins, a self-join, a non-equi join, live
top-N windows); after every transaction, each subscriber's result maintained only from
its updates equals the query re-run from scratch through ``db.sql`` (as a multiset;
for a top-N, the first n rows of the full result in the documented total order).
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cosmictron import Database, DurabilityConfig
from cosmictron.errors import ReducerFailed
from tests.subscription.conftest import MODULE, Mirror

FAST = DurabilityConfig.from_profile("development")

# (text with {x}, table name)
BAGS = [
    ("SELECT * FROM a WHERE v > {x}", "a"),
    ("SELECT * FROM b WHERE w IS NULL OR w < {x}", "b"),
    ("SELECT * FROM c WHERE k IN (0, {x}) AND NOT a_id = 1", "c"),
    ("SELECT a.* FROM a JOIN b ON a.k = b.k WHERE b.w > {x}", "a"),
    ("SELECT b.* FROM a JOIN b ON a.k = b.k", "b"),
    ("SELECT c.* FROM a JOIN c ON c.a_id = a.id WHERE a.v <= {x}", "c"),
    ("SELECT a.* FROM a JOIN c ON c.a_id = a.id JOIN b ON b.k = c.k WHERE b.w <> {x}", "a"),
    ("SELECT b.* FROM b JOIN a ON a.k = b.k JOIN c ON c.k = b.k AND c.a_id = a.id", "b"),
    ("SELECT c.* FROM c JOIN b ON b.id = c.k JOIN a ON a.id = b.k WHERE a.v + b.w > {x}", "c"),
    ("SELECT x.* FROM a x JOIN a y ON x.k = y.v", "a"),
    ("SELECT a.* FROM a JOIN b ON a.v < b.w", "a"),
    ("SELECT b.* FROM b JOIN c ON b.id = :p", "b"),
    ("SELECT * FROM a WHERE a.id = :p OR v = {x} ORDER BY v", "a"),
    # Equalities to constants: the manager indexes these queries by value (guards).
    ("SELECT * FROM a WHERE v = {x}", "a"),
    ("SELECT a.* FROM a JOIN b ON a.k = b.k WHERE b.w = {x} AND a.v = :p", "a"),
    ("SELECT c.* FROM c JOIN a ON c.a_id = a.id WHERE a.k = {x} AND c.k = 1", "c"),
    ("SELECT x.* FROM a x JOIN a y ON x.k = y.k WHERE y.v = {x}", "a"),
    # ... and through a join on a primary key (c and b are guarded by a's row).
    ("SELECT c.* FROM c JOIN a ON c.a_id = a.id WHERE a.v = {x}", "c"),
    ("SELECT b.* FROM a JOIN b ON a.id = b.k WHERE a.v = {x} AND b.w > 0", "b"),
]

# (text with {x} and {n}, companion text (the rows, then the sort values), which sort
# values are descending, table name)
TOPS = [
    ("SELECT * FROM a ORDER BY v DESC LIMIT {n}", "SELECT *, v FROM a", [True], "a"),
    ("SELECT * FROM b ORDER BY w LIMIT {n}", "SELECT *, w FROM b", [False], "b"),
    (
        "SELECT a.* FROM a JOIN c ON c.a_id = a.id ORDER BY c.k, a.id DESC LIMIT {n}",
        "SELECT a.*, c.k, a.id FROM a JOIN c ON c.a_id = a.id",
        [False, True],
        "a",
    ),
    (
        "SELECT * FROM c WHERE k = {x} ORDER BY a_id LIMIT {n}",
        "SELECT *, a_id FROM c WHERE k = {x}",
        [False],
        "c",
    ),
    (
        "SELECT b.* FROM b JOIN a ON a.k = b.k WHERE a.v > {x} ORDER BY b.w DESC LIMIT {n}",
        "SELECT b.*, b.w FROM b JOIN a ON a.k = b.k WHERE a.v > {x}",
        [True],
        "b",
    ),
]

SMALL = st.integers(0, 3)
IDS = st.integers(1, 6)
COLUMNS = {
    "a": lambda: st.fixed_dictionaries({"id": IDS, "k": st.none() | SMALL, "v": SMALL}),
    "b": lambda: st.fixed_dictionaries({"id": IDS, "k": SMALL, "w": st.none() | SMALL}),
    "c": lambda: st.fixed_dictionaries({"id": IDS, "a_id": IDS, "k": SMALL}),
}


def operation(table: str) -> st.SearchStrategy[list[Any]]:
    values = COLUMNS[table]()
    return st.one_of(
        st.tuples(st.just("put"), st.just(table), values).map(list),
        st.tuples(st.just("put"), st.just(table), values).map(list),
        st.tuples(st.just("ins"), st.just(table), values).map(list),
        st.tuples(st.just("del"), st.just(table), st.fixed_dictionaries({"id": IDS})).map(list),
    )


OPERATION = st.sampled_from(["a", "b", "c"]).flatmap(operation)
TRANSACTION = st.lists(OPERATION, min_size=1, max_size=5).flatmap(
    lambda ops: st.sampled_from([ops, ops, ops, ops, ops, [*ops, ["fail", "a", {}]]])
)


def run(db: Database, ops: list[Any]) -> None:
    try:
        db.call("batch", json.dumps(ops))
    except ReducerFailed:
        pass  # a duplicate key, a missing row, or the explicit failure: nothing kept


def total_order(spec: list[bool], width: int) -> Any:
    def compare(left: tuple[Any, ...], right: tuple[Any, ...]) -> int:
        for position, descending in enumerate(spec):
            a, b = left[width + position], right[width + position]
            key_a, key_b = (a is not None, a), (b is not None, b)
            if key_a != key_b:
                result = -1 if key_a < key_b else 1
                return -result if descending else result
        a_row = tuple((v is not None, v) for v in left[:width])
        b_row = tuple((v is not None, v) for v in right[:width])
        return (a_row > b_row) - (a_row < b_row)

    return functools.cmp_to_key(compare)


def expected_top(db: Database, companion: str, spec: list[bool], n: int) -> Counter[Any]:
    result = db.sql(companion)
    width = len(result.columns) - len(spec)
    rows = sorted(result.rows, key=total_order(spec, width))
    return Counter(row[:width] for row in rows[:n])


@settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    setup=st.lists(TRANSACTION, min_size=2, max_size=6),
    x=SMALL,
    n=st.integers(1, 3),
    transactions=st.lists(TRANSACTION, min_size=1, max_size=12),
    p=IDS,
)
def test_results_maintained_from_updates_equal_the_query_run_afresh(
    setup: list[Any], x: int, n: int, transactions: list[Any], p: int
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        module = Path(directory) / "module.py"
        module.write_text(
            "from __future__ import annotations\nfrom typing import Optional\n"
            "from cosmictron import *\n" + MODULE
        )
        db = Database.open(Path(directory) / "data", str(module), durability=FAST)
        try:
            for ops in setup:
                run(db, ops)
            watched = []
            every = [("bag", number) for number in range(len(BAGS))]
            every += [("top", number) for number in range(len(TOPS))]
            for kind, number in every:
                mirror = Mirror()
                if kind == "bag":
                    text, table = BAGS[number]
                    text = text.format(x=x)
                    check = (text, table, None)
                else:
                    text, companion, spec, table = TOPS[number]
                    text = text.format(x=x, n=n)
                    check = (text, table, (companion.format(x=x), spec, n))
                sub = db.subscribe([text], on_update=mirror, params={"p": p})
                assert sub.initial["tx_offset"] == db.tx_offset
                mirror.start(sub.initial)
                watched.append((mirror, check))
            for ops in [*transactions, *setup]:
                before = db.tx_offset
                run(db, ops)
                for mirror, (text, table, top) in watched:
                    if top is None:
                        expected = Counter(db.sql(text, {"p": p}).rows)
                    else:
                        expected = expected_top(db, *top)
                    assert mirror.table(table) == expected, (text, ops)
                    for update in mirror.updates:
                        assert update["tables"], "an update always changes something"
                    offsets = [u["tx_offset"] for u in mirror.updates]
                    assert offsets == sorted(set(offsets))
                    if db.tx_offset == before and mirror.updates:
                        assert mirror.updates[-1]["tx_offset"] <= before
        finally:
            db.close()
