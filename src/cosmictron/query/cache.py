"""The statement cache: SQL text planned once, run many times with different parameters.

Parsing with SQLGlot and planning cost hundreds of microseconds; looking a plan up costs
well under one. ``StatementCache`` keeps the last ``limits.sql_statements_cached_max``
prepared statements, weighing at most ``limits.sql_statements_cached_bytes_max`` bytes
(least recently used out first), keyed by:

* the SQL text, exactly as given;
* the schema, by identity (and checked again on a hit): a new module schema, as after
  a reopen or a module update, never sees a plan made for the old one;
* the Python type of each parameter the text names (absent ones included): the planner
  checks types (``price + :x`` needs a number, ``LIMIT :n`` an int) and plans a NULL
  parameter as the constant NULL, so a plan is valid for every call with the same types.
  Parameters the text does not name are not part of the key and not kept: a request
  cannot pin memory in the cache with parameters the statement never uses.

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

import re
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
from cosmictron.query.plan import Col, IndexScan, Param, Project, plan_fields
from cosmictron.query.sizes import SCALAR_BYTES
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


class _Family:
    """The plans of one text (for one schema and visibility): one per combination of
    the types of the parameters the text names."""

    __slots__ = ("names", "plans", "weight")

    def __init__(self, names: tuple[str, ...], weight: int) -> None:
        self.names = names
        self.plans: dict[tuple[type, ...], Prepared] = {}
        self.weight = weight


class _Absent:
    """The type a parameter the caller did not give has in a cache key."""


class StatementCache:
    """A bounded LRU map from (text, schema, the types of the parameters the text names)
    to ``Prepared``, bounded in entries and in bytes.

    Plans of one text form a family, found by the text; the family knows which
    parameters the text names (``referenced_names``), and only their types pick the
    plan. Parameters a request brings that the text does not name are never part of a
    key and never kept: they are ignored (``params.check_sizes`` bounds them per
    request). Each family's weight (its text and plans, ``plan_bytes``) counts against
    ``limits.sql_statements_cached_bytes_max``; past it or past
    ``limits.sql_statements_cached_max`` plans, least recently used families leave.
    """

    def __init__(self) -> None:
        self._families: OrderedDict[tuple[str, int, bool], _Family] = OrderedDict()
        self._lock = threading.Lock()
        self._plans = 0
        self._bytes = 0

    def __len__(self) -> int:
        return self._plans

    @property
    def retained_bytes(self) -> int:
        """The estimated bytes the cache holds now (texts and plans)."""
        return self._bytes

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
        family_key = (text, id(schema), restricted)
        family = self._families.get(family_key)
        if family is None:
            return None
        names = family.names
        if not names:
            entry = family.plans.get(())
        elif params and len(names) == 1:  # the common case, without a generator
            entry = family.plans.get((type(params.get(names[0], _Absent)),))
        elif params:
            entry = family.plans.get(tuple(type(params.get(n, _Absent)) for n in names))
        else:
            entry = family.plans.get((_Absent,) * len(names))
        if entry is None or entry.schema is not schema:
            return None
        try:
            self._families.move_to_end(family_key)
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
        """Cache ``statement`` (from ``parse.prepare``), evicting the least recently used.

        A statement heavier than the whole byte budget is returned without being kept.
        """
        entry = prepared(statement, schema)
        family_key = (text, id(schema), restricted)
        weight = plan_bytes(statement)
        with self._lock:
            family = self._families.get(family_key)
            if family is None:
                family = _Family(referenced_names(text), len(text) + FAMILY_BYTES)
                self._families[family_key] = family
                self._bytes += family.weight
            given = params or {}
            types = tuple(type(given.get(n, _Absent)) for n in family.names)
            old = family.plans.get(types)
            if old is not None:
                old_weight = plan_bytes(old.statement)
                family.weight -= old_weight
                self._bytes -= old_weight
                self._plans -= 1
            family.plans[types] = entry
            family.weight += weight
            self._bytes += weight
            self._plans += 1
            self._families.move_to_end(family_key)
            self._evict()
        return entry

    def _evict(self) -> None:
        entries_max = max(limits.sql_statements_cached_max, 0)
        bytes_max = max(limits.sql_statements_cached_bytes_max, 0)
        while self._families and (self._plans > entries_max or self._bytes > bytes_max):
            _, family = self._families.popitem(last=False)
            self._plans -= len(family.plans)
            self._bytes -= family.weight

    def clear(self) -> None:
        with self._lock:
            self._families.clear()
            self._plans = 0
            self._bytes = 0


FAMILY_BYTES = 256
"""What a family costs besides its text: its key, its dict and its slot in the LRU."""

NODE_BYTES = 64
"""What one object of a plan (a node, an expression, a tuple) is counted as."""

_PLACEHOLDER = re.compile(r":(\w+)")


def referenced_names(text: str) -> tuple[str, ...]:
    """The parameter names ``text`` may reference (``:name``), sorted, each once.

    Read from the text, not the plan, since a NULL parameter leaves no slot in the plan.
    A ``:word`` inside a string literal or comment is included too, which is harmless:
    the key then also holds that parameter's type, if it is given, and the name is the
    text's own (so bounded by it).
    """
    return tuple(sorted(set(_PLACEHOLDER.findall(text))))


def plan_bytes(statement: Any) -> int:
    """A plan's estimated weight: ``NODE_BYTES`` per object, plus its strings' lengths.

    Walks the plan without recursing; schemas and column types are shared with the
    module, so they are not counted (nor walked).
    """
    total = 0
    stack: list[Any] = [statement]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bytes:
            total += len(item)
            continue
        if isinstance(item, tuple | list | frozenset | set):
            total += NODE_BYTES
            stack.extend(item)
        elif isinstance(item, dict):
            total += NODE_BYTES
            stack.extend(item.keys())
            stack.extend(item.values())
        elif names := plan_fields(type(item)):
            total += NODE_BYTES
            stack.extend([getattr(item, name) for name in names])
        else:
            total += SCALAR_BYTES
    return total


STATEMENTS = StatementCache()
"""The process's statement cache, shared by every database (keyed by schema)."""
