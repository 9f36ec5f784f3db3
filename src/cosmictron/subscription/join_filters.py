"""Join filters: row-level security that reads other tables, kept exact by re-evaluation.

A visibility filter that joins other tables is planned as a ``SemiJoin`` (the row's keys
in the set a subplan over those tables returns; ``query/visibility.py``). The delta
terms cannot express a change to a filter's tables: one membership row can reveal or
hide any number of result rows (a whole room's messages). So a query with join filters
keeps its whole result, and

* a transaction that changes only FROM tables runs the delta terms with each semi-join
  resolved once, over the current state, into a constant key set
  (``resolved_terms``): the filters' tables did not change, so before and after agree,
  and the resolved terms are kept until the next re-evaluation;
* a transaction that changes a filter's table evaluates the query again and diffs it
  against the result kept (``LiveQuery.delta``, through ``difference``).

Two kinds of guard keep those re-evaluations rare: ``filter_guards`` indexes a filter's
table by the constant every read of it requires (``identity = :sender``), so a
membership change wakes only its member's queries; ``key_guard`` indexes a FROM table
by the key set its semi-join admits now (``key_values``), so a message in one room wakes
only the queries of that room's members.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from cosmictron.datastore import Datastore
from cosmictron.query.execute import resolve_semijoins
from cosmictron.query.plan import Col, Const, Expr, KeySet, SemiJoin
from cosmictron.query.visibility import semijoins
from cosmictron.subscription.delta import split
from cosmictron.subscription.guards import GUARD_TYPES, MISSING, Guard
from cosmictron.subscription.terms import Row, Source, Term, plan_term


def join_filters(predicates: list[Expr]) -> list[SemiJoin]:
    """The join visibility filters among a query's conjuncts, at any depth."""
    return [semijoin for p in predicates for semijoin in semijoins(p)]


def filter_tables(found: list[SemiJoin]) -> frozenset[str]:
    """The tables the semi-joins' subplans read, at any depth."""
    return frozenset(table for semijoin in found for table, _, _ in semijoin.occurrences)


def key_values(guard: tuple[str, int, SemiJoin], datastore: Datastore) -> frozenset[Any]:
    """The values of ``guard``'s column a changed row must have to matter: the set its
    semi-join admits now (see ``key_guard``)."""
    resolved = resolve_semijoins(guard[2], datastore)
    assert isinstance(resolved, KeySet)
    return frozenset(values[0] for values in resolved.values)


def resolved_terms(
    sources: list[Source], predicates: list[Expr], datastore: Datastore
) -> list[Term]:
    """The delta terms with every semi-join resolved into its current key set."""
    resolved = [resolve_semijoins(p, datastore) for p in predicates]
    return [plan_term(i, sources, resolved) for i in range(len(sources))]


def difference(
    after: Iterable[Row] | Counter[Row], before: Counter[Row]
) -> tuple[list[Row], list[Row]]:
    """(inserts, deletes) that turn the bag ``before`` into the bag ``after``."""
    signed: Counter[Any] = Counter(after)
    signed.subtract(before)
    return split(signed)


def filter_guards(found: list[SemiJoin], tables: frozenset[str]) -> dict[str, tuple[Guard, Any]]:
    """Guards for the tables only join filters read (not in FROM): a table whose every
    occurrence in every semi-join, at any depth, requires ``column = constant`` with the
    same column and constant (``mem.identity = :sender``). A changed row with another
    value is read by none of them, before or after, so it cannot change the result:
    a membership change wakes only its member's subscriptions."""
    occurrences: dict[str, set[tuple[int, Any]]] = {}
    for semijoin in found:
        for table, column, value in semijoin.occurrences:
            if table in tables:
                continue
            constant = value.value if isinstance(value, Const) else MISSING
            if column < 0 or type(constant) not in GUARD_TYPES:
                occurrences.setdefault(table, set()).add((-1, MISSING))
            else:
                occurrences.setdefault(table, set()).add((column, constant))
    guards: dict[str, tuple[Guard, Any]] = {}
    for table, found_guards in occurrences.items():
        if len(found_guards) == 1:
            column, constant = next(iter(found_guards))
            if column >= 0:
                guards[table] = (Guard(column), constant)
    return guards


def key_guard(sources: list[Source], predicates: list[Expr]) -> tuple[str, int, SemiJoin] | None:
    """A FROM table (appearing once) whose rows matter only through one semi-join key.

    When a conjunct of the query is a ``SemiJoin`` whose one key is a column of that
    table, a changed row whose column value is not in the semi-join's set fails that
    conjunct in every delta term. The set changes only with the filter's tables, and a
    change to those re-evaluates the query, after which the manager indexes it again:
    so a message in one room wakes the subscriptions of that room's members only.
    """
    counts = Counter(source.name for source in sources)
    for predicate in predicates:
        if not isinstance(predicate, SemiJoin) or len(predicate.keys) != 1:
            continue
        key = predicate.keys[0]
        if not isinstance(key, Col):
            continue
        for source in sources:
            if source.base <= key.slot < source.base + source.width and counts[source.name] == 1:
                return source.name, key.slot - source.base, predicate
    return None
