"""What a plan's output looks like, read off the plan without running it.

The tables it reads (what a snapshot for it must hold), and the width and types of the
rows it returns, as its outermost ``Project`` says (hidden sort columns come after the
visible width). Pure functions over ``plan.py``'s nodes, shared by the executor, the
semi-join evaluation and the host's SQL path.
"""

from __future__ import annotations

from typing import Any

from cosmictron.query.plan import Derived, IndexScan, Node, Project, Scan, plan_fields, type_of


def plan_tables(plan: Node) -> set[str]:
    """The names of the tables ``plan`` reads (what a snapshot for it must hold).

    Walks every node of the plan, expressions included, so a table read from inside an
    expression (a subquery) is found too (not the schemas: ``plan_fields``).
    """
    names: set[str] = set()
    stack: list[Any] = [plan]
    while stack:
        item = stack.pop()
        if isinstance(item, Scan | IndexScan) and not isinstance(item, Derived):
            names.add(item.name)
        if isinstance(item, tuple | list | frozenset):
            stack.extend(item)
        elif fields := plan_fields(type(item)):
            stack.extend([getattr(item, name) for name in fields])
    return names


def plan_types(plan: Node, width: int | None) -> tuple[Any, ...] | None:
    """The types of the plan's visible output columns, if a Project says (else None)."""
    node: Node | None = plan
    while node is not None:
        if isinstance(node, Project):
            return tuple(type_of(expr) for expr in node.exprs[:width])
        node = getattr(node, "child", None)
    return None


def plan_width(plan: Node) -> int | None:
    """The visible width of the plan's rows, if a Project says so."""
    node: Node | None = plan
    while node is not None:
        if isinstance(node, Project):
            return node.width
        node = getattr(node, "child", None)
    return None
