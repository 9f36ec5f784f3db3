"""Updates: several queries' changes of one transaction merged into one message.

A subscription's rows of a table are the bag sum of its queries' results, so its update
for a transaction is the bag sum, per table, of its queries' deltas (``merged_update``),
converted to Python values as ``db.sql`` returns them. The same sum merges several
updates of one transaction into one (``merge_updates``: a server client with several
subscriptions gets one message per transaction). ``replay`` recomputes what some queries
saw of a past transaction, for a client resuming after a disconnect; both paths build
the same message as the commit that made it.

An update is ``{"tx_offset": int, "timestamp": Timestamp, "tables": [{"table_name": str,
"inserts": [row, ...], "deletes": [row, ...]}, ...]}``, tables in the order their queries
were given, rows in the order they were first seen.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import Any

from cosmictron.datastore import Datastore, TableChange
from cosmictron.query.cache import Converter
from cosmictron.subscription.delta import TxView
from cosmictron.subscription.live import LiveQuery
from cosmictron.subscription.terms import Row
from cosmictron.values import Timestamp

Update = dict[str, Any]
"""One transaction's changes to what a subscriber sees (the shape in the docstring)."""


def merged_update(
    offset: int,
    timestamp: Timestamp,
    queries: Sequence[LiveQuery],
    deltas: Mapping[LiveQuery, tuple[list[Row], list[Row]]],
) -> Update | None:
    """An update from these queries' deltas, merged per table (in query order).

    Queries without an entry in ``deltas`` saw nothing; a query listed twice counts
    twice (bag sum). None when the deltas cancel out or are empty.
    """
    parts = []
    converters: dict[str, tuple[Converter | None, ...] | None] = {}
    for query in queries:
        if query not in deltas:
            continue
        inserts, deletes = deltas[query]
        parts.append((query.table_name, inserts, deletes))
        converters[query.table_name] = query.converters
    tables = [
        {
            "table_name": name,
            "inserts": to_python(inserts, converters[name]),
            "deletes": to_python(deletes, converters[name]),
        }
        for name, inserts, deletes in _bag_sum(parts, None)
    ]
    if not tables:
        return None
    return {"tx_offset": offset, "timestamp": timestamp, "tables": tables}


def merge_updates(
    updates: Sequence[Update], key: Callable[[Any], Hashable] | None = None
) -> Update:
    """Several updates of one transaction as one: the bag sum per table.

    ``key`` makes a row comparable when its values may be unhashable (the server passes
    the row's JSON text); rows with equal keys are one row. The offset and timestamp
    are the first update's. ``tables`` is empty when the updates cancel out.
    """
    first = updates[0]
    parts = [
        (table["table_name"], table["inserts"], table["deletes"])
        for update in updates
        for table in update["tables"]
    ]
    tables = [
        {"table_name": name, "inserts": inserts, "deletes": deletes}
        for name, inserts, deletes in _bag_sum(parts, key)
    ]
    return {"tx_offset": first["tx_offset"], "timestamp": first["timestamp"], "tables": tables}


def replayable(queries: Sequence[LiveQuery]) -> bool:
    """Whether past deltas can be recomputed now: single-table filters, no top-N, no
    visibility filter that joins another table, no semi-join counted and no re-evaluated
    query (their deltas depend on what they kept since).

    Such a query's delta reads only the transaction's own changed rows (no other table's
    state, no window), so it is the same today as when the transaction committed. A join,
    or a join filter (whose admitted keys depend on another table as it was then, and
    whose kept result ``delta`` would move), would need the past state; those clients get
    all rows instead.
    """
    return all(
        len(query.tables) == 1
        and not query.top_n
        and not query.filter_tables
        and query.maintenance == "incremental"  # not a count or a result kept since
        for query in queries
    )


def replay(
    queries: Sequence[LiveQuery],
    offset: int,
    timestamp: Timestamp,
    changes: list[TableChange],
    datastore: Datastore,
) -> Update | None:
    """What ``queries`` saw of the past transaction ``offset`` (its ``changes``), merged
    per table as its commit merged it; exact only when ``replayable(queries)``."""
    view = TxView(datastore, changes)
    deltas = {query: query.delta(view) for query in queries if view.tables & query.tables}
    return merged_update(offset, timestamp, queries, deltas)


def to_python(rows: list[Row], converters: tuple[Converter | None, ...] | None) -> list[Row]:
    """Canonical rows as ``db.sql`` returns them (enum names to members, ...)."""
    if converters is None:
        return list(rows)
    return [
        tuple(v if c is None or v is None else c(v) for c, v in zip(converters, row, strict=True))
        for row in rows
    ]


def _bag_sum(
    parts: Iterable[tuple[str, Iterable[Any], Iterable[Any]]],
    key: Callable[[Any], Hashable] | None,
) -> list[tuple[str, list[Any], list[Any]]]:
    """Per table, in first-seen order: the inserts and deletes left once equal rows
    (by ``key``, else by the row itself) inserted and deleted cancel out. Tables left
    with neither are dropped."""
    net: dict[str, Counter[Any]] = {}
    rows: dict[Any, Any] = {}
    for name, inserts, deletes in parts:
        counter = net.setdefault(name, Counter())
        if key is None:
            counter.update(inserts)
            counter.subtract(deletes)
            continue
        for sign, found in ((1, inserts), (-1, deletes)):
            for row in found:
                text = key(row)
                rows[text] = row
                counter[text] += sign
    summed = []
    for name, counter in net.items():
        inserts = [k for k, n in counter.items() if n > 0 for _ in range(n)]
        deletes = [k for k, n in counter.items() if n < 0 for _ in range(-n)]
        if key is not None:
            inserts = [rows[k] for k in inserts]
            deletes = [rows[k] for k in deletes]
        if inserts or deletes:
            summed.append((name, inserts, deletes))
    return summed
