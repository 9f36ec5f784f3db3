"""The change of a subscribed query's result, computed from one transaction's changes.

``run_term`` computes the change of the result from a transaction's ``TableChange``
lists (``TxView``), never from whole tables (docs/design/subscriptions.md). For k FROM
positions, the telescoping sum

    ΔQ = Σ_i  R1' ⋈ … ⋈ R(i-1)' ⋈ ΔRi ⋈ R(i+1) ⋈ … ⋈ Rk

has one term per position whose table changed. A term starts from that position's
signed rows (+inserts, -deletes) and extends each partial combination one position
at a time (the order chosen once, at compile time: first a position reachable by an
indexed equality, then one sharing a condition, else the next in FROM order;
``terms.py``), looking rows up through a single-column index or the primary key when
an equality allows, otherwise scanning. Positions before ``i`` read the tables as they
are (the state after the commit); positions after ``i`` read them *before* the
transaction, which is the current state with the transaction's inserts skipped (by row
key) and its deletes added back. Each conjunct runs as soon as every position it reads
is bound. The signed output rows are summed in a ``Counter``, so +/- pairs cancel and
the result is an exact bag delta.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from cosmictron.datastore import Datastore, TableChange
from cosmictron.subscription.terms import Lookup, Row, Source, Term


class TxView:
    """One transaction's changes, indexed for the delta terms (built once per commit)."""

    def __init__(self, datastore: Datastore, changes: Iterable[TableChange]) -> None:
        self.datastore = datastore
        self.inserts: dict[str, list[Row]] = {}
        self.deletes: dict[str, list[Row]] = {}
        self.inserted_keys: dict[str, set[Any]] = {}
        self._deletes_by: dict[tuple[str, int], dict[Any, list[Row]]] = {}
        for change in changes:
            name = change.table.name
            if change.inserts:
                self.inserts[name] = change.inserts
                self.inserted_keys[name] = {change.table.row_key(r) for r in change.inserts}
            if change.deletes:
                self.deletes[name] = change.deletes

    @property
    def tables(self) -> set[str]:
        return set(self.inserts) | set(self.deletes)

    def deletes_by(self, table: str, column: int) -> dict[Any, list[Row]]:
        found = self._deletes_by.get((table, column))
        if found is None:
            found = {}
            for row in self.deletes.get(table, ()):
                found.setdefault(row[column], []).append(row)
            self._deletes_by[(table, column)] = found
        return found


def run_term(
    term: Term,
    sources: list[Source],
    tx: TxView,
    signed: Counter[Any],
    entry: Callable[[list[Any]], Any],
) -> None:
    """Add delta term ``term``'s signed output to ``signed``, each output row made by
    ``entry`` from the full joined row (a row, or a top-N's sort entry)."""
    seed = sources[term.seed]
    width = sum(source.width for source in sources)
    full: list[Any] = [None] * width
    steps = term.steps
    datastore = tx.datastore
    seed_position = term.seed

    def extend(depth: int, sign: int) -> None:
        if depth == len(steps):
            signed[entry(full)] += sign
            return
        step = steps[depth]
        source = sources[step.position]
        before = step.position > seed_position
        base, end = source.base, source.base + source.width
        for row in _candidates(source, step.lookup, full, datastore, tx, before):
            full[base:end] = row
            if all(check(full) for check in step.checks):
                extend(depth + 1, sign)

    for rows, sign in ((tx.inserts.get(seed.name, ()), 1), (tx.deletes.get(seed.name, ()), -1)):
        for row in rows:
            full[seed.base : seed.base + seed.width] = row
            if all(check(full) for check in term.seed_checks):
                extend(0, sign)


def split(signed: Counter[Any]) -> tuple[list[Row], list[Row]]:
    """(inserts, deletes) of a signed bag of rows."""
    inserts: list[Row] = []
    deletes: list[Row] = []
    for row, count in signed.items():
        if count > 0:
            inserts.extend([row] * count)
        elif count < 0:
            deletes.extend([row] * -count)
    return inserts, deletes


def _candidates(
    source: Source,
    lookup: Lookup | None,
    full: list[Any],
    datastore: Datastore,
    tx: TxView,
    before: bool,
) -> Iterable[Row]:
    """Rows of one position, after the commit or (``before``) as it was before it."""
    table = datastore.tables[source.name]
    rows = table.rows
    skip = tx.inserted_keys.get(source.name) if before else None
    if lookup is None:
        if skip:
            found: list[Row] = [row for key, row in rows.items() if key not in skip]
        else:
            found = list(rows.values())
        if before:
            found.extend(tx.deletes.get(source.name, ()))
        return found
    key = lookup.key(full)
    if key is None:
        return ()
    if lookup.index is None:
        keys: Iterable[Any] = () if key not in rows else (key,)
    else:
        index = table.index_named(lookup.index)
        assert index is not None
        keys = list(index.row_keys(key))
    found = [rows[k] for k in keys if not skip or k not in skip]
    if before and source.name in tx.deletes:
        found.extend(tx.deletes_by(source.name, lookup.column).get(key, ()))
    return found
