"""The optimizer: a tuple of passes, each a pure function from plan to plan.

As in SQLGlot's ``optimizer.RULES``, the whole optimizer is this list; each rule lives in
its own module with its reasons and a doctest, and its tests are input/expected plans.
Order matters: filters are pushed to the tables first, so the join rule sees each
table's own filter and the index rule sees the conjuncts it can answer; the table scan
under a ``GROUP_CONCAT`` is put in key order last, so only a scan no index answers. The leading
inner joins are then gathered into a ``JoinGroup``, whose order is chosen by cost when
it runs (``join_order.py``); the join and index rules apply to it then.
"""

from __future__ import annotations

from collections.abc import Callable

from cosmictron.query.plan import Node
from cosmictron.query.rules.concat_order import order_concat_scans
from cosmictron.query.rules.indexes import choose_indexes
from cosmictron.query.rules.join_groups import group_joins
from cosmictron.query.rules.joins import choose_joins
from cosmictron.query.rules.pushdown import push_filters

RULES: tuple[Callable[[Node], Node], ...] = (
    push_filters,
    group_joins,
    choose_joins,
    choose_indexes,
    order_concat_scans,
)


def optimize(plan: Node, rules: tuple[Callable[[Node], Node], ...] = RULES) -> Node:
    """Apply every rule in order."""
    for rule in rules:
        plan = rule(plan)
    return plan


__all__ = [
    "RULES",
    "choose_indexes",
    "choose_joins",
    "group_joins",
    "optimize",
    "order_concat_scans",
    "push_filters",
]
