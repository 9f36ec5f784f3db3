"""What ``parse`` returns: one planned statement, ready to execute or explain.

A statement names the tables it reads (``tables``) so the host can check permissions
before anything runs, and carries the plan the rules produced.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cosmictron.datastore import ColumnType, TableSchema
from cosmictron.query.explain import explain
from cosmictron.query.plan import Expr, Node
from cosmictron.query.render import render


@dataclass(frozen=True)
class SelectStatement:
    plan: Node
    columns: tuple[str, ...]
    types: tuple[ColumnType | None, ...]
    tables: frozenset[str]

    def explain(self) -> list[str]:
        return explain(self.plan)


@dataclass(frozen=True)
class Returning:
    """``RETURNING``: expressions over the table's row, evaluated on each row stored,
    changed (its new values) or deleted (its old values)."""

    exprs: tuple[Expr, ...]
    columns: tuple[str, ...]
    types: tuple[ColumnType | None, ...]


@dataclass(frozen=True)
class InsertStatement:
    """Rows as dicts by column name (with a column list) or full value lists.

    With ``source`` (``INSERT … SELECT``) the rows are that plan's output, computed
    when the statement runs; ``names`` are the columns they fill (None: all, in order)
    and ``source_tables`` the tables the query reads. ``on_conflict`` is ``"REPLACE"``
    (``INSERT OR REPLACE``, ``REPLACE INTO``), ``"IGNORE"`` (``INSERT OR IGNORE``) or
    None (a conflict is an error).
    """

    table: TableSchema
    rows: tuple[Any, ...]
    returning: Returning | None = None
    source: Node | None = None
    names: tuple[str, ...] | None = None
    source_tables: frozenset[str] = frozenset()
    on_conflict: str | None = None

    @property
    def tables(self) -> frozenset[str]:
        return frozenset({self.table.name}) | self.source_tables

    def explain(self) -> list[str]:
        verb = "Insert" if self.on_conflict is None else f"Insert or {self.on_conflict.lower()}"
        if self.source is not None:
            return [*explain(self.source), f"{verb} {self.table.name} (the rows above)"]
        return [f"{verb} {self.table.name} ({len(self.rows)} rows)"]


@dataclass(frozen=True)
class UpdateStatement:
    """``assignments`` pairs a column position with its new value's expression."""

    table: TableSchema
    assignments: tuple[tuple[int, Expr], ...]
    source: Node
    returning: Returning | None = None

    @property
    def tables(self) -> frozenset[str]:
        return frozenset({self.table.name})

    def explain(self) -> list[str]:
        sets = ", ".join(f"{self.table.columns[p].name} = {render(e)}" for p, e in self.assignments)
        return [*explain(self.source), f"Update {self.table.name} SET {sets}"]


@dataclass(frozen=True)
class DeleteStatement:
    table: TableSchema
    source: Node
    returning: Returning | None = None

    @property
    def tables(self) -> frozenset[str]:
        return frozenset({self.table.name})

    def explain(self) -> list[str]:
        return [*explain(self.source), f"Delete {self.table.name}"]


Statement = SelectStatement | InsertStatement | UpdateStatement | DeleteStatement


@dataclass(frozen=True)
class Explain:
    """``EXPLAIN <statement>``: the plan's lines instead of running it.

    ``logical`` is a SELECT's plan as built, before the optimizer's rules: what the
    subscription layer decomposes, so the host can add how a subscription to it would
    be kept up to date without planning it again.
    """

    statement: Statement
    logical: SelectStatement | None = field(default=None, compare=False, repr=False)

    @property
    def tables(self) -> frozenset[str]:
        return self.statement.tables
