"""``QueryResult``: what ``Database.sql`` returns, a list of rows with its column names.

It behaves like its rows (``len``, iteration, indexing), so simple callers can treat it
as a list, while ``columns`` names each value and, for INSERT/UPDATE/DELETE,
``rows_affected`` and ``tx_offset`` say what was changed and in which transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, overload


@dataclass(frozen=True)
class QueryResult:
    """Rows (tuples of Python values) and column names; DML also has a count and offset."""

    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    rows_affected: int | None = None
    tx_offset: int | None = None

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    @overload
    def __getitem__(self, index: int) -> tuple[Any, ...]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[Any, ...]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self.rows[index]

    def as_dicts(self) -> list[dict[str, Any]]:
        """Each row as a dict by column name (a repeated name keeps its last value)."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


_NO_CHANGE = {"rows_affected": None, "tx_offset": None}


def rows_result(columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> QueryResult:
    """``QueryResult(columns, rows)``, built at half the cost (the point-SELECT path).

    >>> rows_result(("id",), [(1,)]) == QueryResult(("id",), [(1,)])
    True
    """
    result = object.__new__(QueryResult)
    fields = result.__dict__
    fields.update(_NO_CHANGE)
    fields["columns"] = columns
    fields["rows"] = rows
    return result
