"""A query's budget: how long it may run and how many rows it may examine and return.

A runaway query must stop on its own, while it runs, even when it returns one row (a
cartesian product under ``COUNT(*)``). So the executor charges every row it *examines*
(each row a scan or an index lookup yields, each row pair a join compares) to a
``Meter``, and the meter checks the row count and the clock. Checking costs one integer
comparison per charge; the clock is read only every ``CLOCK_EVERY_ROWS`` rows charged,
so the time budget is enforced to within a few milliseconds of work.

Bytes are budgeted the same way (issue 21): the estimated weight (``sizes.py``) of
each value a query builds is checked against ``value_bytes_max`` before it is built
(``expressions.py``), the rows it returns against ``result_bytes_max`` as they are
produced, and what its sorts, DISTINCT sets, groups and join tables hold against
``held_bytes_max`` as they fill (``execute.py``, ``join_operators.py``), each a
``QueryTooCostly`` naming the limit and how to raise it.

``QueryBudget`` is the caller's side (plain values, plus the words saying where each
limit comes from and how to raise it, which the error message quotes); ``Meter`` is one
run's account.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import NoReturn

from cosmictron import limits
from cosmictron.errors import QueryCancelled, QueryTooCostly

CLOCK_EVERY_ROWS = 4096
"""Rows charged between two reads of the clock."""


@dataclass(frozen=True)
class QueryBudget:
    """The limits one query runs under; ``None`` fields take the ``limits`` defaults.

    ``origin`` names where the values come from and how to raise them; it is quoted in
    the error a stopped query raises.
    """

    time_s: float | None = None
    rows_examined_max: int | None = None
    rows_max: int | None = None
    origin: str = (
        "limits.query_time_s_max, query_rows_examined_max, query_rows_max; raise them "
        "with the timeout_s=, rows_examined_max= and rows_max= arguments of Database.sql "
        "and Database.subscribe"
    )
    value_bytes_max: int | None = None
    result_bytes_max: int | None = None
    held_bytes_max: int | None = None
    params_count_max: int | None = None
    params_bytes_max: int | None = None
    scope: str = "embedded"
    """Who runs under it, for the hint in a byte-limit error: ``"embedded"`` (a
    ``Database.sql`` caller), ``"server"`` (a caller with a token) or ``"anonymous"``."""

    @property
    def effective_time_s(self) -> float:
        return limits.query_time_s_max if self.time_s is None else self.time_s

    @property
    def effective_rows_examined_max(self) -> int:
        if self.rows_examined_max is None:
            return limits.query_rows_examined_max
        return self.rows_examined_max

    @property
    def effective_rows_max(self) -> int:
        return limits.query_rows_max if self.rows_max is None else self.rows_max

    @property
    def effective_value_bytes_max(self) -> int:
        if self.value_bytes_max is None:
            return limits.sql_value_bytes_max
        return self.value_bytes_max

    @property
    def effective_result_bytes_max(self) -> int:
        if self.result_bytes_max is None:
            return limits.query_result_bytes_max
        return self.result_bytes_max

    @property
    def effective_held_bytes_max(self) -> int:
        if self.held_bytes_max is None:
            return limits.query_held_bytes_max
        return self.held_bytes_max

    @property
    def effective_params_count_max(self) -> int:
        if self.params_count_max is None:
            return limits.sql_params_count_max
        return self.params_count_max

    @property
    def effective_params_bytes_max(self) -> int:
        if self.params_bytes_max is None:
            return limits.sql_params_bytes_max
        return self.params_bytes_max

    def hint(self, name: str, field: str, per_caller: bool = True) -> str:
        """Where byte limit ``name`` (as in ``limits.py``) comes from and how to raise it.

        ``field`` is the ``QueryBudget`` field an embedded caller sets; ``per_caller``
        says whether callers without a token have a ``..._anonymous_...`` value of it.
        """
        if self.scope == "anonymous" and per_caller:
            anonymous = name.replace("sql_", "sql_anonymous_", 1).replace(
                "query_", "query_anonymous_", 1
            )
            return (
                f"limits.{anonymous}, the limit of callers without a token (the server "
                f"reads COSMICTRON_{anonymous.upper()}); send a token (POST /v1/identity) "
                f"for the larger limits.{name}"
            )
        if self.scope in ("server", "anonymous"):
            return f"limits.{name} (the server reads COSMICTRON_{name.upper()} to change it)"
        return (
            f"limits.{name}; raise it with Database.sql(..., budget=QueryBudget({field}=...)) "
            f"or by setting limits.{name}"
        )

    def start(self, started: float | None = None) -> Meter:
        """A meter whose clock starts now (or at ``started``, a ``time.monotonic()``)."""
        return Meter(self, started)


DEFAULT_BUDGET = QueryBudget()


class Meter:
    """One query run's account of rows examined and time spent; raises past its budget."""

    __slots__ = (
        "_next_check",
        "budget",
        "deadline",
        "examined",
        "held_bytes",
        "held_bytes_max",
        "result_bytes",
        "result_bytes_max",
        "rows_examined_max",
        "time_s",
        "value_bytes_max",
    )

    def __init__(self, budget: QueryBudget, started: float | None = None) -> None:
        self.budget = budget
        self.time_s = budget.effective_time_s
        self.rows_examined_max = budget.effective_rows_examined_max
        self.deadline = (time.monotonic() if started is None else started) + self.time_s
        self.examined = 0
        self._next_check = min(CLOCK_EVERY_ROWS, self.rows_examined_max)
        self.value_bytes_max = budget.effective_value_bytes_max
        self.result_bytes_max = budget.effective_result_bytes_max
        self.held_bytes_max = budget.effective_held_bytes_max
        self.result_bytes = 0
        self.held_bytes = 0

    def charge_result(self, weight: int) -> None:
        """Count ``weight`` bytes of result; past ``result_bytes_max``, stop the query.

        Raises:
            QueryTooCostly: the rows returned so far weigh more than the limit.
        """
        self.result_bytes += weight
        if self.result_bytes > self.result_bytes_max:
            raise QueryTooCostly(
                f"the query's result is larger than {self.result_bytes_max:,} bytes (its "
                f"result-size limit, estimated as docs/reference/sql.md says) and it was "
                f"stopped; add a LIMIT, a WHERE or select fewer columns. Limit: "
                f"{self.budget.hint('query_result_bytes_max', 'result_bytes_max')}"
            )

    def hold(self, weight: int) -> None:
        """Count ``weight`` bytes held by a sort, DISTINCT set, group or join table.

        Raises:
            QueryTooCostly: what the query holds weighs more than ``held_bytes_max``.
        """
        self.held_bytes += weight
        if self.held_bytes > self.held_bytes_max:
            raise QueryTooCostly(
                f"the query's sorts, groups, DISTINCT sets and join tables would hold more "
                f"than {self.held_bytes_max:,} bytes (its working-memory limit) and it was "
                f"stopped; narrow it with a WHERE, or sort and group fewer rows. Limit: "
                f"{self.budget.hint('query_held_bytes_max', 'held_bytes_max')}"
            )

    def charge(self, rows: int) -> None:
        """Count ``rows`` examined; raise if the row or time budget is spent.

        Raises:
            QueryTooCostly: more rows examined than ``rows_examined_max``.
            QueryCancelled: the query has run longer than ``time_s``.
        """
        self.examined += rows
        if self.examined > self._next_check:
            self._check()

    def check_time(self) -> None:
        """Raise ``QueryCancelled`` if the deadline has passed (for work not in rows)."""
        if time.monotonic() > self.deadline:
            self._cancel()

    def _check(self) -> None:
        if self.examined > self.rows_examined_max:
            raise QueryTooCostly(
                f"the query examined more than {self.rows_examined_max:,} rows (its "
                f"rows-examined budget) and was stopped; narrow it with a WHERE on an "
                f"indexed column or a join on equal columns. Limits: {self.budget.origin}"
            )
        self.check_time()
        self._next_check = min(self.examined + CLOCK_EVERY_ROWS, self.rows_examined_max)

    def _cancel(self) -> NoReturn:
        raise QueryCancelled(
            f"the query ran longer than {self.time_s:g} s (its time budget) and was "
            f"stopped after examining {self.examined:,} rows. Limits: {self.budget.origin}"
        )

    def too_many_rows(self, rows_max: int) -> NoReturn:
        raise QueryTooCostly(
            f"the query returns more than {rows_max} rows (the row limit); add a LIMIT "
            f"or a WHERE. Limits: {self.budget.origin}"
        )
