"""The statement cache: SQL text planned once, run many times with different parameters.

Parsing with SQLGlot and planning cost hundreds of microseconds; looking a plan up costs
well under one. ``StatementCache`` keeps the last ``limits.sql_statements_cached_max``
prepared statements (least recently used out first), keyed by:

* the SQL text, exactly as given;
* the schema, by identity (and checked again on a hit): a new module schema, as after
  a reopen or a module update, never sees a plan made for the old one;
* each given parameter's name and Python type, in order: the planner checks types
  (``price + :x`` needs a number, ``LIMIT :n`` an int) and plans a NULL parameter as
  the constant NULL, so a plan is valid for every call with the same names and types.

Parameter *values* are never part of a plan: each ``Param`` slot is filled per
execution (``params.bind``), coercion and its errors included. Permissions are not
cached either: they depend on the caller, and the host checks them on every call from
the statement's ``tables``.

A ``Prepared`` also carries what running it needs, computed once: the conversions of
result columns to Python values (None where no column needs one) and, for the most
common query, a point lookup (``SELECT <columns> FROM t WHERE pk = <value>``) that reads
one dict entry instead of running the plan's operators.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from cosmictron import limits
from cosmictron.datastore import ColumnType, ModuleSchema
from cosmictron.query.coerce import base
from cosmictron.query.params import coercer, has_params
from cosmictron.query.plan import Col, IndexScan, Param, Project
from cosmictron.query.statements import Explain, SelectStatement, Statement

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class PointLookup:
    """``SELECT`` of plain columns through a single-column primary-key equality.

    ``param`` names the parameter holding the key (None: the key is ``key``);
    ``coerce`` turns its value into the key; ``project`` maps the stored row to the
    output row (None: the row as stored); ``converters`` as in ``Prepared``.
    """

    table: str
    param: str | None
    key: Any
    coerce: Converter
    project: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
    columns: tuple[str, ...]
    converters: tuple[Converter | None, ...] | None


@dataclass(frozen=True)
class Prepared:
    """One cached statement: its plan with ``Param`` slots, and what running it needs."""

    statement: Statement | Explain
    schema: ModuleSchema
    parametrised: bool
    converters: tuple[Converter | None, ...] | None
    point: PointLookup | None

    @property
    def tables(self) -> frozenset[str]:
        return self.statement.tables


def prepared(statement: Statement | Explain, schema: ModuleSchema) -> Prepared:
    """Wrap a statement ``parse.prepare`` returned, precomputing how it runs."""
    converters = None
    point = None
    if isinstance(statement, SelectStatement):
        found = tuple(converter(t) for t in statement.types)
        converters = found if any(c is not None for c in found) else None
        point = _point_lookup(statement, converters)
    return Prepared(statement, schema, has_params(statement), converters, point)


def converter(column_type: ColumnType | None) -> Converter | None:
    """Canonical to Python (enum names to members, ...); None where they are the same."""
    inner = base(column_type)
    if inner is None or type(inner).to_python is ColumnType.to_python:
        return None
    return inner.to_python


def _point_lookup(
    statement: SelectStatement, converters: tuple[Converter | None, ...] | None
) -> PointLookup | None:
    plan = statement.plan
    if not isinstance(plan, Project) or not isinstance(plan.child, IndexScan):
        return None
    scan = plan.child
    if scan.mode != "eq" or scan.index is not None or len(scan.table.primary_key) != 1:
        return None
    if plan.width != len(plan.exprs) or not all(isinstance(e, Col) for e in plan.exprs):
        return None
    slots = [e.slot for e in plan.exprs if isinstance(e, Col)]
    project: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None
    if slots == list(range(len(scan.table.columns))):
        project = None
    elif len(slots) == 1:
        only = slots[0]

        def project(row: tuple[Any, ...]) -> tuple[Any, ...]:
            return (row[only],)
    else:
        project = itemgetter(*slots)
    value = scan.values[0]
    columns = statement.columns
    if isinstance(value, Param):
        return PointLookup(
            scan.name, value.name, None, coercer(value), project, columns, converters
        )
    if has_params(value):
        return None
    return PointLookup(scan.name, None, value, _same, project, columns, converters)


def _same(value: Any) -> Any:
    return value


class StatementCache:
    """A bounded LRU map from (text, schema, parameter types) to ``Prepared``."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[Any, ...], Prepared] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(
        self,
        text: str,
        schema: ModuleSchema,
        params: Mapping[str, Any] | None,
        restricted: bool = False,
    ) -> Prepared | None:
        """The cached statement, or None (a miss: prepare it, then ``put`` it).

        ``restricted`` statements (planned with visibility filters) are kept apart.
        """
        # ``_key``, inlined: this runs on every call.
        if params:
            key = (text, id(schema), restricted, *params, *map(type, params.values()))
        else:
            key = (text, id(schema), restricted)
        entry = self._entries.get(key)
        if entry is None or entry.schema is not schema:
            return None
        try:
            self._entries.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile: still valid to run
            pass
        return entry

    def put(
        self,
        text: str,
        schema: ModuleSchema,
        params: Mapping[str, Any] | None,
        statement: Statement | Explain,
        restricted: bool = False,
    ) -> Prepared:
        """Cache ``statement`` (from ``parse.prepare``), evicting the least recently used."""
        entry = prepared(statement, schema)
        key = _key(text, schema, params, restricted)
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > max(limits.sql_statements_cached_max, 0):
                self._entries.popitem(last=False)
        return entry

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _key(
    text: str, schema: ModuleSchema, params: Mapping[str, Any] | None, restricted: bool
) -> tuple[Any, ...]:
    """The text, the schema's id, whether restricted, the parameters' names, their types.

    Flat, because that is cheapest to build; unambiguous, since names are strings and
    types are not.
    """
    if not params:
        return (text, id(schema), restricted)
    return (text, id(schema), restricted, *params, *map(type, params.values()))


STATEMENTS = StatementCache()
"""The process's statement cache, shared by every database (keyed by schema)."""
