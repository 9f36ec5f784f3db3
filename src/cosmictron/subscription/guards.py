"""Guards: which of a transaction's changed rows can affect a query, found by value.

A query with a conjunct ``column = constant`` over a table that appears once in its FROM
is indexed by the manager under that value instead of under the table: a changed row
carrying another value fails the conjunct in every delta term, so the query need not run
for it. ``guards`` finds such conjuncts, and one hop further the tables joined to a
guarded table through its primary key or a unique column (``Guard.through``).
``join_filters.py`` adds the guards of the tables only a join filter reads.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore import Datastore
from cosmictron.query.plan import Binary, Col, Const, Expr
from cosmictron.subscription.terms import Row, Source, index_on, is_unique
from cosmictron.values import Identity

GUARD_TYPES = (int, float, str, bytes, bool, Identity)
"""Constant types a guard indexes by (hashable, and equal exactly when SQL's ``=`` is)."""


@dataclass(frozen=True)
class Guard:
    """A value every changed row of one table must lead to, to affect a query.

    ``column`` of the changed row is the value itself, or, when ``through`` names a
    joined table, the key looked up in that table's primary key (``index`` None) or
    unique single-column index, whose row's ``target`` column is the value. Equal guards
    (same table, same path) group the queries that differ only in their constant.
    """

    column: int
    through: str | None = None
    index: str | None = None
    target: int = 0

    def value_of(self, row: Row, datastore: Datastore) -> Any:
        """The guard value a changed row leads to (``MISSING`` if the join finds none)."""
        if self.through is None:
            return row[self.column]
        table = datastore.tables[self.through]
        key = row[self.column]
        if self.index is None:
            found = table.rows.get(key)
        else:
            index = table.index_named(self.index)
            assert index is not None
            keys = list(index.row_keys(key))
            found = table.rows.get(keys[0]) if keys else None
        return MISSING if found is None else found[self.target]


MISSING = object()


def guards(sources: list[Source], predicates: list[Expr]) -> dict[str, tuple[Guard, Any]]:
    """Per table, a ``Guard`` and the constant its value must equal, where one exists.

    From a conjunct ``column = constant`` over a table that appears once in FROM: a
    row of that table with another value fails the conjunct in every delta term, so the
    manager need not run this query for it. One hop further, a table joined to such a
    table by an equality on the latter's primary key or unique column is guarded through
    the lookup. This is what lets thousands of queries that differ only in a constant
    (``WHERE owner = :sender``, ``JOIN room ... WHERE room.name = :r``) cost a
    transaction only the ones whose constant its rows lead to.
    """
    counts = Counter(source.name for source in sources)

    def source_of(slot: int) -> Source | None:
        for source in sources:
            if source.base <= slot < source.base + source.width:
                return source
        return None

    found: dict[str, tuple[Guard, Any]] = {}
    for predicate in predicates:
        if not isinstance(predicate, Binary) or predicate.op != "=":
            continue
        for column, other in ((predicate.left, predicate.right), (predicate.right, predicate.left)):
            if not isinstance(column, Col) or not isinstance(other, Const):
                continue
            if type(other.value) not in GUARD_TYPES:
                continue
            source = source_of(column.slot)
            if source is not None and counts[source.name] == 1 and source.name not in found:
                found[source.name] = (Guard(column.slot - source.base), other.value)
    direct = dict(found)
    for predicate in predicates:
        if not isinstance(predicate, Binary) or predicate.op != "=":
            continue
        for near, far in ((predicate.left, predicate.right), (predicate.right, predicate.left)):
            if not isinstance(near, Col) or not isinstance(far, Col):
                continue
            changed, joined = source_of(near.slot), source_of(far.slot)
            if changed is None or joined is None or changed.name in found:
                continue
            if joined.name not in direct or joined.name == changed.name:
                continue
            if counts[changed.name] != 1:
                continue
            key_column = joined.table.columns[far.slot - joined.base].name
            indexed, index = index_on(joined.table, key_column)
            if not indexed or not is_unique(joined.table, index):
                continue
            target_guard, value = direct[joined.name]
            guard = Guard(near.slot - changed.base, joined.name, index, target_guard.column)
            found[changed.name] = (guard, value)
    return found
