"""A live top-N window (``ORDER BY … LIMIT n``), kept up to date from signed deltas.

A live top-N keeps its window in a ``SortedList`` under a total order: the ORDER BY keys
(NULLs first ascending, last descending, as ``db.sql``) then the output row's values, so
ties are broken deterministically (rows equal under that order are identical rows).
Delta rows at or before the window's last row enter it; deleted rows leave it; a window
left short while rows remain outside it is refilled by evaluating the whole query, the
one re-evaluation the design allows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from sortedcontainers import SortedList

from cosmictron.subscription.terms import Row


class Window:
    """The first ``limit`` sort entries ``(order_key, row)`` of a query's result."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.entries: SortedList = SortedList()
        self.complete = True  # no row of the result lies outside the window

    def fill(self, entries: Iterable[Any]) -> None:
        """(Re)set the window from every sort entry of the result."""
        ordered = sorted(entries)
        self.entries = SortedList(ordered[: self.limit])
        self.complete = len(ordered) <= self.limit

    def rows(self) -> list[Row]:
        """The window's rows, in order."""
        return [entry[1] for entry in self.entries]

    def apply(
        self, signed: Counter[Any], evaluate: Callable[[], Iterable[Any]]
    ) -> tuple[list[Row], list[Row]]:
        """The (inserts, deletes) a signed bag of sort entries makes to the window.

        ``evaluate`` returns every sort entry of the result now: it is called only when
        the window is left short while rows remain outside it.
        """
        window = self.entries
        limit = self.limit
        changed: Counter[Row] = Counter()
        boundary = None if self.complete or not window else window[-1]
        refill = False
        for entry, count in sorted(signed.items(), key=lambda item: item[1]):  # deletes first
            inside = boundary is None or entry <= boundary
            if not inside:
                continue
            if count < 0:
                for _ in range(-count):
                    if entry in window:
                        window.remove(entry)
                        changed[entry[1]] -= 1
                    elif entry != boundary:
                        refill = True  # cannot happen: every row before the boundary is in
            elif count > 0:
                for _ in range(count):
                    window.add(entry)
                    changed[entry[1]] += 1
        while len(window) > limit:
            changed[window.pop()[1]] -= 1
            self.complete = False
        if refill or (not self.complete and len(window) < limit):
            # The window is short while rows remain outside it: evaluate the query again.
            before = Counter(entry[1] for entry in window)
            before.subtract(changed)  # the window as it was before this transaction
            self.fill(evaluate())
            changed = Counter(self.rows())
            changed.subtract(before)
        inserts: list[Row] = []
        deletes: list[Row] = []
        for row, count in changed.items():
            if count > 0:
                inserts.extend([row] * count)
            elif count < 0:
                deletes.extend([row] * -count)
        return inserts, deletes


class _Desc:
    """Reverses the order of the value it wraps (a descending ORDER BY key)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: _Desc) -> bool:
        return bool(other.value < self.value)

    def __gt__(self, other: _Desc) -> bool:
        return bool(other.value > self.value)

    def __le__(self, other: _Desc) -> bool:
        return bool(other.value <= self.value)

    def __ge__(self, other: _Desc) -> bool:
        return bool(other.value >= self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Desc) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def order_key(values: Row, keys: tuple[tuple[int, bool], ...], row: Row) -> Row:
    parts: list[Any] = []
    for value, (_, descending) in zip(values, keys, strict=True):
        part = (value is not None, value)
        parts.append(_Desc(part) if descending else part)
    parts.append(tuple((value is not None, value) for value in row))
    return tuple(parts)
