"""Migrations: what a new module schema changes, whether the stored rows survive it, and
moving the datastore to it in place.

Planning (``plan_migration``) is pure: two ``ModuleSchema`` values in, a ``MigrationPlan``
out, listing what is added, removed or changed and, separately, every change that would
not read the stored rows (``incompatibilities``, one sentence each). Nothing here knows
about modules, the log or subscribers; the host decides what to do with a plan.

What a migration may do, and why the rest is refused:

- add tables; add columns *at the end* of a table, each with a default (stored rows are
  tuples and the log writes them positionally, so a column can only be appended, and
  old rows need a value for it);
- add or remove indexes (a unique one only if the stored rows are unique on it, which
  ``stage_migration`` checks because it depends on data);
- change reducers, visibility filters, a table's ``public`` flag or ``scheduled`` reducer
  (metadata: no stored row changes).

Refused: dropping a table or a column, renaming, retyping or reordering a column,
changing ``auto_inc`` or the primary key (rows are keyed by it), adding an ``auto_inc``
column to a table that exists (old rows have no ids to give), and changing ``event``
(an event table's rows are an append-only record; a reducer that expected to update
rows would fail, or a record that was append-only would become editable).

``stage_migration`` builds the new tables beside the old ones and returns a
``StagedMigration``; only ``commit()`` changes the datastore, so a refusal at any point
before it leaves everything as it was.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cosmictron.datastore.codec import RowCodec
from cosmictron.datastore.index import make_key_getter
from cosmictron.datastore.schema import ModuleSchema, TableSchema
from cosmictron.datastore.store import Datastore
from cosmictron.datastore.table import Table
from cosmictron.datastore.types import REQUIRED
from cosmictron.errors import SchemaError


@dataclass(frozen=True, kw_only=True)
class SchemaChanges:
    """What a module update changes; names are ``table`` or ``table.member``.

    Shared by the plan (what would change) and the host's report (what did), so the two
    cannot drift apart.
    """

    tables_added: tuple[str, ...] = ()
    tables_changed: tuple[str, ...] = ()
    """Existing tables whose description changes (their subscriptions end)."""
    columns_added: tuple[str, ...] = ()
    indexes_added: tuple[str, ...] = ()
    indexes_removed: tuple[str, ...] = ()
    reducers_added: tuple[str, ...] = ()
    reducers_removed: tuple[str, ...] = ()
    reducers_changed: tuple[str, ...] = ()

    def changes(self) -> dict[str, tuple[str, ...]]:
        """The change lists by name (the fields of ``SchemaChanges``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(SchemaChanges)}


@dataclass(frozen=True, kw_only=True)
class MigrationPlan(SchemaChanges):
    """What moving from ``old`` to ``new`` does, and what would not read the old rows."""

    old: ModuleSchema
    new: ModuleSchema
    incompatibilities: tuple[str, ...] = ()

    def check(self) -> None:
        """Raise ``SchemaError`` listing every incompatibility, if there is any."""
        if self.incompatibilities:
            raise SchemaError(
                "the new module cannot migrate the stored data "
                f"({len(self.incompatibilities)} incompatible changes; deploy with clear "
                "to wipe the data instead):\n"
                + "\n".join(f"- {problem}" for problem in self.incompatibilities)
            )


def plan_migration(old: ModuleSchema, new: ModuleSchema) -> MigrationPlan:
    """Compare two schemas: what changes, and what would not read the old rows.

    >>> plan_migration(ModuleSchema(), ModuleSchema()).incompatibilities
    ()
    """
    problems: list[str] = []
    changed: list[str] = []
    columns_added: list[str] = []
    indexes_added: list[str] = []
    indexes_removed: list[str] = []
    for old_table in old.tables:
        new_table = new.table(old_table.name)
        if new_table is None:
            problems.append(f"table {old_table.name!r} was dropped")
            continue
        if new_table.describe() != old_table.describe():
            changed.append(old_table.name)
        problems += _table_problems(old_table, new_table)
        extra = new_table.columns[len(old_table.columns) :]
        if _columns_kept(old_table, new_table):
            columns_added += [f"{old_table.name}.{column.name}" for column in extra]
        old_indexes = {index.name: index for index in old_table.indexes}
        new_indexes = {index.name: index for index in new_table.indexes}
        for name, index in old_indexes.items():
            if new_indexes.get(name) != index:
                indexes_removed.append(f"{old_table.name}.{name}")
        for name, index in new_indexes.items():
            if old_indexes.get(name) != index:
                indexes_added.append(f"{old_table.name}.{name}")
    old_reducers = {reducer.name: reducer for reducer in old.reducers}
    new_reducers = {reducer.name: reducer for reducer in new.reducers}
    return MigrationPlan(
        old=old,
        new=new,
        tables_added=tuple(t.name for t in new.tables if old.table(t.name) is None),
        tables_changed=tuple(changed),
        columns_added=tuple(columns_added),
        indexes_added=tuple(indexes_added),
        indexes_removed=tuple(indexes_removed),
        reducers_added=tuple(n for n in new_reducers if n not in old_reducers),
        reducers_removed=tuple(n for n in old_reducers if n not in new_reducers),
        reducers_changed=tuple(
            n
            for n, r in new_reducers.items()
            if n in old_reducers and old_reducers[n].describe() != r.describe()
        ),
        incompatibilities=tuple(problems),
    )


def _columns_kept(old: TableSchema, new: TableSchema) -> bool:
    """Whether ``old``'s columns are, unchanged, the first columns of ``new``."""
    kept = new.columns[: len(old.columns)]
    return len(kept) == len(old.columns) and all(
        a.describe() == b.describe() for a, b in zip(old.columns, kept, strict=True)
    )


def _table_problems(old: TableSchema, new: TableSchema) -> list[str]:
    """Every change to one existing table that the stored rows would not survive."""
    where = f"table {old.name!r}"
    problems = []
    new_positions = {column.name: p for p, column in enumerate(new.columns)}
    old_names = set(old.column_names)
    for position, column in enumerate(old.columns):
        moved_to = new_positions.get(column.name)
        if moved_to is None:
            problems.append(f"{where}: column {column.name!r} was dropped or renamed")
            continue
        replacement = new.columns[moved_to]
        if moved_to != position:
            problems.append(
                f"{where}: column {column.name!r} moved from position {position + 1} to "
                f"{moved_to + 1} (columns may only be added at the end)"
            )
        if replacement.type != column.type:
            problems.append(
                f"{where}: column {column.name!r} changed type from {column.type.name} to "
                f"{replacement.type.name}"
            )
        if replacement.auto_inc != column.auto_inc:
            problems.append(f"{where}: column {column.name!r} changed auto_inc")
    for position, column in enumerate(new.columns):
        if column.name in old_names:
            continue
        if position < len(old.columns):
            problems.append(
                f"{where}: new column {column.name!r} is at position {position + 1}; "
                f"add columns after the existing ones"
            )
        if column.auto_inc:
            problems.append(
                f"{where}: new column {column.name!r} is auto_inc, which the stored rows "
                f"cannot be given"
            )
        elif column.default is REQUIRED:
            problems.append(
                f"{where}: new column {column.name!r} has no default for the stored rows; "
                f"declare it with a default (field(default=...) or '= value')"
            )
    if new.primary_key != old.primary_key:
        problems.append(
            f"{where}: the primary key changed from {list(old.primary_key)} to "
            f"{list(new.primary_key)}"
        )
    if new.event != old.event:
        problems.append(
            f"{where}: event changed from {old.event} to {new.event} (an event table's "
            f"rows are append-only; make a new table instead)"
        )
    return problems


@dataclass
class StagedMigration:
    """New tables built beside the datastore's; ``commit`` installs them."""

    datastore: Datastore
    schema: ModuleSchema
    tables: dict[str, Table]
    codecs: dict[str, RowCodec]

    def commit(self) -> None:
        """Install the new schema and tables; cannot fail."""
        for table_schema in self.schema.tables:
            self.tables[table_schema.name].schema = table_schema  # a kept table's flags
        self.datastore.schema = self.schema
        self.datastore.tables = self.tables
        self.datastore.codecs = self.codecs


def stage_migration(datastore: Datastore, plan: MigrationPlan) -> StagedMigration:
    """Build the datastore's tables under ``plan.new``, leaving the datastore unchanged.

    A table whose columns, key and indexes are unchanged is kept as it is (only its
    schema object is replaced on commit, for defaults and flags). Any other existing
    table is rebuilt: its rows extended with the new columns' defaults, its indexes
    built over them, its auto-increment counters carried over.

    Raises:
        SchemaError: the plan has incompatibilities, or a new unique index would hold
            duplicates (every such index is named, with a duplicated value).
    """
    plan.check()
    problems = []
    tables: dict[str, Table] = {}
    for table_schema in plan.new.tables:
        old = datastore.tables.get(table_schema.name)
        if old is None:
            tables[table_schema.name] = Table(table_schema)
        elif _same_storage(old.schema, table_schema):
            tables[table_schema.name] = old
        else:
            rows = _extended_rows(old, table_schema)
            duplicates = _unique_violations(old.schema, table_schema, rows)
            if duplicates:
                problems += duplicates
                continue
            table = Table(table_schema)
            table.insert_many(rows)
            for position, value in old.sequences.items():
                table.sequences[position] = value
            tables[table_schema.name] = table
    if problems:
        raise SchemaError(
            "the new module's unique indexes do not hold for the stored rows; nothing "
            "was changed:\n" + "\n".join(f"- {problem}" for problem in problems)
        )
    codecs = {table_schema.name: RowCodec(table_schema) for table_schema in plan.new.tables}
    return StagedMigration(datastore, plan.new, tables, codecs)


def reset_datastore(datastore: Datastore, schema: ModuleSchema) -> None:
    """Empty the datastore and give it ``schema``'s tables (a clear, or a replay start)."""
    datastore.schema = schema
    datastore.tables = {}
    datastore.codecs = {}
    for table_schema in schema.tables:
        datastore.add_table(table_schema)


def _same_storage(old: TableSchema, new: TableSchema) -> bool:
    """Whether ``new`` stores and indexes rows exactly as ``old`` (flags may differ)."""
    return (
        old.columns == new.columns
        and [c.describe() for c in old.columns] == [c.describe() for c in new.columns]
        and old.primary_key == new.primary_key
        and old.indexes == new.indexes
    )


def _extended_rows(old: Table, new: TableSchema) -> list[tuple[Any, ...]]:
    """The stored rows with the new columns' defaults (in canonical form) appended."""
    extra = new.columns[len(old.schema.columns) :]
    if not extra:
        return list(old.rows.values())
    defaults = tuple(column.type.check(column.default) for column in extra)
    return [row + defaults for row in old.rows.values()]


def _unique_violations(
    old: TableSchema, new: TableSchema, rows: list[tuple[Any, ...]]
) -> list[str]:
    """One sentence per new unique index that ``rows`` would break, with an example."""
    problems = []
    for index in new.indexes:
        if not index.unique or index in old.indexes:
            continue
        key_of: Callable[[tuple[Any, ...]], Any] = make_key_getter(
            [new.column_index(c) for c in index.columns]
        )
        counts = Counter(map(key_of, rows))
        repeated = [(key, n) for key, n in counts.items() if n > 1]
        if repeated:
            key, count = repeated[0]
            problems.append(
                f"table {new.name!r}: unique index {index.name!r} on "
                f"{', '.join(index.columns)} cannot be added: {len(repeated)} values are "
                f"held by more than one row (e.g. {key!r}, by {count} rows)"
            )
    return problems
