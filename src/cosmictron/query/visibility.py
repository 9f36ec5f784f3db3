"""Row-level security: a module's visibility filters, applied to every read by a non-owner.

A filter is ``SELECT <t>.* FROM <t> [JOIN <u> ON ...]... [WHERE <condition>]``: it
admits the rows of ``t`` the query would return, for the reading client ``:sender``.
How they combine (docs/guide/row-level-security.md):

* A row of a table is visible to a non-owner if **any** of the table's filters admits
  it (the filters are OR-ed); a table without filters shows every row.
* Filters restrict rows; they never grant access: a private table stays owner-only.
* The restriction is part of the plan. ``build_select`` gives each table occurrence in
  FROM/JOIN its own copy (self-joins included): an inner-joined occurrence's
  restriction is AND-ed into WHERE, a LEFT JOIN's right side's into its ON condition,
  so a hidden row behaves exactly as if it were not in the table, through any join,
  aggregate or subscription delta.
* A filter that joins other tables becomes a **semi-join** (``plan.SemiJoin``): the
  conditions that read only ``t`` stay on ``t``'s row, each equality between ``t`` and
  the other tables becomes a key, and everything else is a subplan over the other
  tables returning the keys that admit a row. A semi-join never repeats a row (ten
  memberships of one room still show each message once).
* **The other tables are read through their own filters**, recursively, as SpacetimeDB
  applies RLS: a hidden row behaves as if absent for that reader everywhere, inside
  another table's filter too, so no filter can reveal what another hides. The one
  exception is the filtered table itself inside its own filter (a self-join: "members
  of rooms I am a member of"), read as stored, since applying a filter to itself has no
  end. Chains of filters may be any depth; a **cycle** through other tables (the filter
  of ``a`` reads ``b``, whose filter reads ``a``) is refused when the module loads, with
  the cycle named, because its meaning would have no end either.
* The owner, reducers and SQL writes (owner-only) are not restricted.

Rules are parsed once per schema and kept in a small cache keyed by the schema object.

This module is the face of row-level security to the rest of the engine (which rules a
schema has, whether a reader is restricted, the restriction itself). Reading and
checking the filters' text is ``visibility_parse.py``; turning them into a predicate,
semi-joins included, is ``restriction.py``.
"""

from __future__ import annotations

import threading

from cosmictron.datastore import ModuleSchema, TableSchema
from cosmictron.errors import SchemaError, SqlError
from cosmictron.query.resolve import TableRef
from cosmictron.query.restriction import restriction, semijoins
from cosmictron.query.visibility_parse import (
    Rules,
    VisibilityRule,
    parse_rule,
    refuse_cycles,
    refuse_expansion,
)
from cosmictron.values import Identity

__all__ = [
    "Rules",
    "VisibilityRule",
    "check_visibility_filters",
    "restriction",
    "restricts",
    "semijoins",
    "visibility_rules",
]

_RULES: dict[int, tuple[ModuleSchema, dict[str, tuple[VisibilityRule, ...]]]] = {}
_RULES_LOCK = threading.Lock()


def visibility_rules(schema: ModuleSchema) -> Rules:
    """The schema's filters by table name, parsed and checked once per schema.

    Raises:
        SchemaError: a filter is not of the filter shape over known tables and columns,
            uses a parameter other than ``:sender``, relates its table to the others by
            anything but top-level equalities, or the filters form a cycle.
    """
    if not schema.visibility_filters:
        return {}
    cached = _RULES.get(id(schema))
    if cached is not None and cached[0] is schema:
        return cached[1]
    rules: dict[str, list[VisibilityRule]] = {}
    for text in schema.visibility_filters:
        rule = parse_rule(text, schema)
        rules.setdefault(rule.table, []).append(rule)
    frozen = {table: tuple(found) for table, found in rules.items()}
    refuse_cycles(frozen)
    refuse_expansion(frozen)
    for found in frozen.values():
        for rule in found:
            try:
                restriction(
                    (rule,),
                    TableRef(rule.table, _table(schema, rule.table), 0),
                    Identity.zero(),
                    frozen,
                )
            except SqlError as exc:
                raise SchemaError(f"visibility filter {rule.text!r}: {exc}") from None
    with _RULES_LOCK:
        if len(_RULES) > 256:
            _RULES.clear()
        _RULES[id(schema)] = (schema, frozen)
    return frozen


def _table(schema: ModuleSchema, name: str) -> TableSchema:
    table = schema.table(name)
    assert table is not None
    return table


def check_visibility_filters(schema: ModuleSchema) -> None:
    """Parse every filter now, so a module with a bad one is refused when it loads."""
    visibility_rules(schema)


def restricts(schema: ModuleSchema, sender: Identity, owner: Identity) -> bool:
    """Whether ``sender``'s reads are planned with the filters: a non-owner of a module
    that declares any. SQL and subscriptions both ask this, so they cannot disagree."""
    return bool(schema.visibility_filters) and sender is not owner and sender != owner
