"""SQL-like text of a bound expression, for EXPLAIN and a statement's description.

The text is for people: it names columns as written and quotes literals as SQL would,
so ``EXPLAIN`` shows the conditions that will run. It is not parsed back.
"""

from __future__ import annotations

from typing import Any

from cosmictron.query.plan import (
    Agg,
    Between,
    Binary,
    Case,
    Cast,
    Col,
    Const,
    Evaluated,
    Expr,
    Func,
    InList,
    IsNull,
    KeySet,
    Like,
    Param,
    SemiJoin,
    Subquery,
    Unary,
)


def render(expr: Expr) -> str:
    """SQL-like text of an expression, for EXPLAIN.

    >>> render(Binary("AND", Binary(">", Col(0, "price"), Const(10)), IsNull(Col(1, "x"))))
    '((price > 10) AND x IS NULL)'
    """
    if isinstance(expr, Col):
        return expr.name
    if isinstance(expr, Const):
        return "NULL" if expr.value is None else literal(expr.value)
    if isinstance(expr, Param):
        return f":{expr.name}"
    if isinstance(expr, Binary):
        return f"({render(expr.left)} {expr.op} {render(expr.right)})"
    if isinstance(expr, Unary):
        return f"NOT {render(expr.operand)}" if expr.op == "NOT" else f"-{render(expr.operand)}"
    if isinstance(expr, IsNull):
        return f"{render(expr.operand)} IS {'NOT ' if expr.negated else ''}NULL"
    if isinstance(expr, InList):
        items = ", ".join(render(item) for item in expr.items)
        return f"{render(expr.operand)} {'NOT ' if expr.negated else ''}IN ({items})"
    if isinstance(expr, Between):
        return (
            f"{render(expr.operand)} {'NOT ' if expr.negated else ''}BETWEEN "
            f"{render(expr.low)} AND {render(expr.high)}"
        )
    if isinstance(expr, Like):
        return f"{render(expr.operand)} {'NOT ' if expr.negated else ''}LIKE {render(expr.pattern)}"
    if isinstance(expr, Agg):
        inner = "*" if expr.arg is None else render(expr.arg)
        return f"{expr.func}({'DISTINCT ' if expr.distinct else ''}{inner})"
    if isinstance(expr, SemiJoin | KeySet):
        keys = ", ".join(render(key) for key in expr.keys)
        return f"({keys}) IN VISIBLE [{expr.label}]" if keys else f"EXISTS [{expr.label}]"
    if isinstance(expr, Func):
        args = [render(arg) for arg in expr.args]
        if expr.name == "ROW":
            return f"({', '.join(args)})"
        if expr.name == "->":
            return f"{args[0]} -> {args[1]}"
        if expr.name in ("LIKE", "GLOB"):
            escape = f" ESCAPE {args[2]}" if len(args) > 2 else ""
            return f"{args[1]} {expr.name} {args[0]}{escape}"
        return f"{expr.name}({', '.join(args)})"
    if isinstance(expr, Case):
        parts = ["CASE"] + ([] if expr.operand is None else [render(expr.operand)])
        for when, then in expr.whens:
            parts.append(f"WHEN {render(when)} THEN {render(then)}")
        if expr.default is not None:
            parts.append(f"ELSE {render(expr.default)}")
        return " ".join([*parts, "END"])
    if isinstance(expr, Cast):
        return f"CAST({render(expr.operand)} AS {expr.target})"
    if isinstance(expr, Subquery):
        text = f"({expr.label})"
        if expr.kind == "exists":
            return f"EXISTS {text}"
        if expr.kind == "in":
            assert expr.operand is not None
            return f"{render(expr.operand)} {'NOT ' if expr.negated else ''}IN {text}"
        return f"{text}[{expr.column + 1}]" if expr.column else text
    if isinstance(expr, Evaluated):
        return expr.label
    raise AssertionError(f"unknown expression {expr!r}")


def literal(value: Any) -> str:
    """A value as a SQL literal (strings quoted, booleans as TRUE and FALSE)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value) + "'"
