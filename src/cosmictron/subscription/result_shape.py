"""The name and columns under which a query's rows travel when they are not one table's.

A subscribed query that returns whole rows of one table is delivered under that table's
name, and a client decodes its rows with the table's schema. Any other result (a column
list, an aggregate, a compound) has no table: its rows travel under the query's text,
with the columns the query returns. ``QueryResultName`` is that name, a ``str`` equal to
the text (so messages, merges and JSON treat it as any table name) that also carries the
columns: the server's feed encodes such rows with them and tells a subscriber them in
``SubscribeApplied`` (docs/reference/websocket.md); nothing else needs to know.

Column names are the query's (``db.sql``'s ``columns``), made unique so a row can be an
object keyed by them: a name repeated in the select list gets ``:2``, ``:3``… (a column
name never contains ``:``). Each column is described as the schema route describes one
(``{"name", "type", …}``); a column whose type the planner does not know (``NULL``, an
expression over values of several types) is ``{"type": "any"}``: its JSON value as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cosmictron.datastore import ColumnType


def unique_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` with each repeat suffixed ``:2``, ``:3``… (``a, a, b`` -> ``a, a:2, b``)."""
    taken: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, count = name, 1
        while candidate in taken:
            count += 1
            candidate = f"{name}:{count}"
        taken.add(candidate)
        out.append(candidate)
    return tuple(out)


def describe_columns(
    names: Sequence[str], types: Sequence[ColumnType | None]
) -> tuple[dict[str, Any], ...]:
    """Each column as the schema route describes one: ``{"name", "type", …}``."""
    return tuple(
        {"name": name, **(column_type.describe() if column_type is not None else {"type": "any"})}
        for name, column_type in zip(unique_names(names), types, strict=True)
    )


class QueryResultName(str):
    """A query's text as the name its rows travel under, carrying their columns."""

    columns: tuple[dict[str, Any], ...]

    def __new__(
        cls, text: str, names: Sequence[str], types: Sequence[ColumnType | None]
    ) -> QueryResultName:
        made = super().__new__(cls, text)
        made.columns = describe_columns(names, types)
        return made

    @property
    def column_names(self) -> list[str]:
        return [column["name"] for column in self.columns]
