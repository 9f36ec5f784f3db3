"""Bind function calls, CASE, CAST, ``IS``, ``GLOB`` and ``LIKE … ESCAPE`` to ``Expr``.

``Binder.bind`` (``resolve.py``) hands every syntax node it has no method for to
``bind_extended``. A function call is looked up in the registry (``functions.py``),
which says its arity and what each argument must be: the checks here read it, so
adding a function is adding a registry entry. SQLGlot gives many SQLite functions their
own node types (``Substring``, ``StrPosition``, ``Least`` for ``MIN(a, b)``, ...);
``_CALLS`` maps each to the registry's name and its arguments in SQLite's order.

Types are checked as everywhere in the engine: arguments of a function whose arguments
must compare (``COALESCE``, ``MIN``, ``NULLIF``) and the branches of a ``CASE`` must be
of one family (numbers, text, ...), a literal among them taking the first typed
argument's type (so ``COALESCE(owner, '0xab…')`` reads the text as an Identity).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from sqlglot import exp

from cosmictron.datastore import ColumnType
from cosmictron.datastore.types import BOOL, BYTES, F64, I64, STR, IntType
from cosmictron.query.coerce import base, cast_type, family, is_numeric
from cosmictron.query.conversions import affinity
from cosmictron.query.expressions import compile_expr
from cosmictron.query.functions import FUNCTIONS, Function, lookup
from cosmictron.query.plan import (
    Between,
    Binary,
    Case,
    Cast,
    Const,
    Expr,
    Func,
    IsNull,
    Param,
    Unary,
    children,
    type_of,
)
from cosmictron.query.position import Source


class Binder(Protocol):
    """What this module needs of ``resolve.Binder`` (named here, not imported: the
    binder imports this module)."""

    source: Source

    def bind(self, node: exp.Expression) -> Expr: ...

    def compare(
        self, op: str, left_node: exp.Expression, right_node: exp.Expression, node: Any
    ) -> Expr: ...

    def _fit(
        self, value: Expr, other: Expr, value_node: exp.Expression, other_node: exp.Expression
    ) -> Expr: ...


def _args(*names: str) -> Callable[[exp.Expression], list[exp.Expression]]:
    def pick(node: exp.Expression) -> list[exp.Expression]:
        found = []
        for name in names:
            value = node.args.get(name)
            if isinstance(value, list):
                found.extend(value)
            elif value is not None:
                found.append(value)
        return found

    return pick


def _trim_name(node: exp.Expression) -> str:
    position = str(node.args.get("position") or "").upper()
    return {"LEADING": "LTRIM", "TRAILING": "RTRIM"}.get(position, "TRIM")


_CALLS: dict[type[exp.Expression], tuple[Callable[[Any], str], Callable[[Any], list[Any]]]] = {
    exp.Abs: (lambda n: "ABS", _args("this")),
    exp.Coalesce: (lambda n: "COALESCE", _args("this", "expressions")),
    exp.Nullif: (lambda n: "NULLIF", _args("this", "expression")),
    exp.Length: (lambda n: "LENGTH", _args("this")),
    exp.Lower: (lambda n: "LOWER", _args("this")),
    exp.Upper: (lambda n: "UPPER", _args("this")),
    exp.Substring: (lambda n: "SUBSTR", _args("this", "start", "length")),
    exp.Trim: (_trim_name, _args("this", "expression")),
    exp.Replace: (lambda n: "REPLACE", _args("this", "expression", "replacement")),
    exp.StrPosition: (lambda n: "INSTR", _args("this", "substr")),
    exp.Round: (lambda n: "ROUND", _args("this", "decimals")),
    exp.Least: (lambda n: "MIN", _args("this", "expressions")),
    exp.Greatest: (lambda n: "MAX", _args("this", "expressions")),
    exp.Typeof: (lambda n: "TYPEOF", _args("this")),
    exp.JSONExtractScalar: (lambda n: "JSON_EXTRACT", _args("this", "expression")),
    exp.JSONExtract: (
        lambda n: "JSON_EXTRACT" if n.expressions else "->",
        _args("this", "expression", "expressions"),
    ),
    exp.JSONType: (lambda n: "JSON_TYPE", _args("this", "expression")),
    exp.BitwiseAnd: (lambda n: "&", _args("this", "expression")),
    exp.BitwiseOr: (lambda n: "|", _args("this", "expression")),
    exp.BitwiseNot: (lambda n: "~", _args("this")),
    exp.BitwiseLeftShift: (lambda n: "<<", _args("this", "expression")),
    exp.BitwiseRightShift: (lambda n: ">>", _args("this", "expression")),
    exp.Anonymous: (lambda n: str(n.name).upper(), _args("expressions")),
}
"""SQLGlot's node for a call: the registry name, and the arguments in SQLite's order."""


def bind_extended(binder: Binder, node: exp.Expression) -> Expr | None:
    """The bound form of ``node`` if it is one of the constructs this module binds."""
    if isinstance(node, exp.Case):
        return _case(binder, node)
    if isinstance(node, exp.Cast | exp.TryCast):
        return _cast(binder, node)
    if isinstance(node, exp.NullSafeEQ | exp.NullSafeNEQ):
        op = "IS" if isinstance(node, exp.NullSafeEQ) else "IS NOT"
        return _is(binder, op, node)
    if isinstance(node, exp.Glob):
        return _call(binder, "GLOB", [node.expression, node.this], node)
    if isinstance(node, exp.Escape) and isinstance(node.this, exp.Like):
        like = node.this
        bound = _call(binder, "LIKE", [like.expression, like.this, node.expression], node)
        return Unary("NOT", bound, BOOL) if like.args.get("negate") else bound
    call = _CALLS.get(type(node))
    if call is not None:
        name_of, arguments_of = call
        arguments = [_path_text(item) for item in arguments_of(node)]
        return _call(binder, name_of(node), arguments, node)
    if isinstance(node, exp.Func) and not isinstance(node, exp.AggFunc):
        _unknown(binder, node.sql_name() if hasattr(node, "sql_name") else node.key, node)
    return None


def _path_text(node: exp.Expression) -> exp.Expression:
    """SQLGlot parses a literal JSON path into its own tree: back to the text literal
    (``a ->> 'x'`` is the path ``$.x``, ``a -> 0`` is ``$[0]``, as in SQLite)."""
    if not isinstance(node, exp.JSONPath):
        return node
    written = node.sql(dialect="sqlite")
    if written.startswith("'") and written.endswith("'"):
        written = written[1:-1].replace("''", "'")
    return exp.Literal.string(written)


def _unknown(binder: Binder, name: str, node: exp.Expression) -> None:
    known = ", ".join(sorted(name for name in FUNCTIONS if name.isidentifier()))
    binder.source.fail(
        f"unsupported construct: function {name.upper()}() (functions: {known}; "
        f"aggregates: COUNT, SUM, AVG, MIN, MAX, TOTAL, GROUP_CONCAT)",
        node,
    )


def _call(binder: Binder, name: str, nodes: list[exp.Expression], node: exp.Expression) -> Expr:
    function = lookup(name)
    if function is None:
        _unknown(binder, name, node)
        raise AssertionError  # unreachable: fail raises
    count = len(nodes)
    if count < function.min_args or (function.max_args is not None and count > function.max_args):
        binder.source.fail(
            f"{function.name}() takes {function.arity_text()} arguments, got {count}", node
        )
    args = [binder.bind(item) for item in nodes]
    for position, (arg, item) in enumerate(zip(args, nodes, strict=True)):
        _check_kind(binder, function, position, arg, item)
    if function.same_family:
        args = _unify(binder, args, nodes, f"the arguments of {function.name}()")
    if function.name == "NULLIF" and _constant_value(args[0]) is None:
        # NULLIF(NULL, y) is NULL whatever y is: y is never read (as in SQLite).
        return Const(None, type_of(args[0]))
    if function.name in ("COALESCE", "IFNULL"):
        # The arguments after a constant that is not NULL are never read (SQLite's
        # COALESCE stops at the first non-NULL): ``COALESCE(-4, col)`` is -4, even in
        # an aggregate query where ``col`` alone would need GROUP BY.
        for position, arg in enumerate(args):
            known = _constant_value(arg)
            if known is _UNKNOWN or known is None:
                continue
            if position == 0:
                return arg
            args = args[: position + 1]
            break
    return Func(function.name, tuple(args), _result_type(function, args))


_UNKNOWN = object()


def is_null_constant(expr: Expr) -> bool:
    """Whether ``expr`` is NULL whatever the row (a constant whose value is NULL)."""
    return _constant_value(expr) is None


def _constant_value(expr: Expr) -> Any:
    """The value of ``expr`` if it reads no row, parameter or subquery, else ``_UNKNOWN``."""

    def constant(part: Expr) -> bool:
        if isinstance(part, Const):
            return True
        kids = children(part)
        return (
            isinstance(part, Unary | Binary | Func | Cast | Case | Between | IsNull)
            and bool(kids)
            and all(constant(kid) for kid in kids)
        )

    if not constant(expr):
        return _UNKNOWN
    try:
        return compile_expr(expr)(())
    except Exception:  # an error it raises when run stays where it is
        return _UNKNOWN
    try:
        return compile_expr(expr)(()) is not None
    except Exception:  # an error it raises when run stays where it is
        return False


def _check_kind(
    binder: Binder, function: Function, position: int, arg: Expr, node: exp.Expression
) -> None:
    kind = function.param(position)
    arg_type = type_of(arg)
    if arg_type is None or kind == "any":
        return
    arg_family = family(arg_type)
    if kind in ("number", "integer"):
        ok = is_numeric(arg_type)
    elif kind == "text":
        ok = arg_family == "text"
    else:  # text|blob
        ok = arg_family in ("text", BYTES.name)
    if not ok:
        wanted = {"number": "a number", "integer": "a number", "text": "text"}.get(
            kind, "text or a blob"
        )
        binder.source.fail(
            f"type mismatch: argument {position + 1} of {function.name}() must be {wanted}, "
            f"got {base(arg_type)}",
            node,
        )


def _unify(binder: Binder, args: list[Expr], nodes: list[exp.Expression], what: str) -> list[Expr]:
    """Every argument fitted to the first typed one (one family; literals converted)."""
    anchor = next(
        (i for i, a in enumerate(args) if type_of(a) is not None and not isinstance(a, Const)),
        None,
    )
    if anchor is None:
        anchor = next((i for i, a in enumerate(args) if type_of(a) is not None), None)
    if anchor is None:
        return args
    fitted = []
    for position, (arg, item) in enumerate(zip(args, nodes, strict=True)):
        if position == anchor:
            fitted.append(arg)
            continue
        if family(type_of(arg)) not in (None, family(type_of(args[anchor]))) and not isinstance(
            arg, Const | Param
        ):  # a literal or parameter is converted (or refused) by _fit
            binder.source.fail(
                f"type mismatch: {what} mix {base(type_of(args[anchor]))} and {base(type_of(arg))}",
                item,
            )
        fitted.append(binder._fit(arg, args[anchor], item, nodes[anchor]))
    return fitted


def common_type(types: list[ColumnType | None]) -> ColumnType | None:
    """The static type of a value that is one of ``types`` (already of one family)."""
    known = [t for t in types if t is not None]
    if not known:
        return None
    if all(is_numeric(t) for t in known):
        if all(isinstance(base(t), IntType) for t in known):
            return known[0]
        if all(isinstance(base(t), IntType) or base(t) is BOOL for t in known):
            return I64 if len({base(t) for t in known}) > 1 else known[0]
        return F64 if len({base(t) for t in known}) > 1 else known[0]
    return known[0]


def _result_type(function: Function, args: list[Expr]) -> ColumnType | None:
    result = function.result
    if result == "integer":
        return I64
    if result == "real":
        return F64
    if result == "text":
        return STR
    if result == "bool":
        return BOOL
    if result == "first":
        return type_of(args[0])
    if result == "any":
        return None  # known only per value (JSON): compares with anything
    return common_type([type_of(a) for a in args])


def _case(binder: Binder, node: exp.Case) -> Expr:
    operand_node = node.this
    operand = None if operand_node is None else binder.bind(operand_node)
    whens: list[tuple[Expr, Expr]] = []
    results: list[Expr] = []
    result_nodes: list[exp.Expression] = []
    for branch in node.args.get("ifs") or []:
        when_node, then_node = branch.this, branch.args["true"]
        when = binder.bind(when_node)
        if operand is not None:
            when = binder._fit(when, operand, when_node, operand_node)
            binder._fit(operand, when, operand_node, when_node)
        whens.append((when, binder.bind(then_node)))
        results.append(whens[-1][1])
        result_nodes.append(then_node)
    default_node = node.args.get("default")
    default = None if default_node is None else binder.bind(default_node)
    if default is not None and default_node is not None:
        results.append(default)
        result_nodes.append(default_node)
    fitted = _unify(binder, results, result_nodes, "the results of CASE")
    whens = [(when, then) for (when, _), then in zip(whens, fitted, strict=False)]
    if default is not None:
        default = fitted[-1]
    result_type = common_type([type_of(r) for r in fitted])
    return _pruned(Case(operand, tuple(whens), default, result_type))


def _pruned(case: Case) -> Expr:
    """``case`` without the branches that can never be taken (a constant WHEN that does
    not match, or a NULL one), and ending at a branch that is always taken, so what
    those branches hold is never read: ``CASE 8 WHEN 76 THEN col END`` is NULL, as
    SQLite evaluates it, even in an aggregate query where ``col`` is not grouped."""
    operand = case.operand
    if operand is not None and _constant_value(operand) is None:
        # ``CASE NULL WHEN …``: NULL equals nothing, so only the ELSE is ever read.
        return case.default if case.default is not None else Const(None, case.type)
    constant_operand = operand is None or _constant_value(operand) is not _UNKNOWN
    kept: list[tuple[Expr, Expr]] = []
    default = case.default
    for when, then in case.whens:
        value = _constant_value(when)
        if value is _UNKNOWN:
            kept.append((when, then))
            continue
        if operand is not None and value is None:
            continue  # ``x = NULL`` is never TRUE
        if not constant_operand:
            kept.append((when, then))
            continue
        probe = Case(operand, ((when, Const(True, BOOL)),), None, BOOL)
        try:
            taken = compile_expr(probe)(()) is True
        except Exception:  # an error it raises when run stays where it is
            kept.append((when, then))
            continue
        if taken:
            default = then
            break
    else:
        if len(kept) == len(case.whens):
            return case
    if not kept:
        return default if default is not None else Const(None, case.type)
    return Case(operand, tuple(kept), default, case.type)


def cast_target(to: exp.DataType) -> tuple[str, ColumnType | None]:
    """The conversion a CAST's type names and its result's static type.

    A column type's name (``u8``, ``Identity``, ``bool``, ``Timestamp``) is that type;
    anything else is an SQLite type name, converted by its affinity (``VARCHAR(10)`` is
    TEXT, ``BIGINT`` INTEGER, ``SIGNED`` and ``DECIMAL`` NUMERIC).
    """
    kind = to.this
    if kind == exp.DataType.Type.USERDEFINED:
        written = str(to.args.get("kind") or "")
    elif kind == exp.DataType.Type.BOOLEAN:
        written = "bool"
    elif kind == exp.DataType.Type.TIMESTAMP:
        written = "Timestamp"
    else:
        written = str(kind.value)
    column_type = cast_type(written)
    if column_type is not None:
        return column_type.name, column_type
    target = affinity(written)
    static: dict[str, ColumnType] = {
        "INTEGER": I64,
        "REAL": F64,
        "NUMERIC": F64,
        "TEXT": STR,
        "BLOB": BYTES,
    }
    return target, static[target]


def _cast(binder: Binder, node: exp.Cast) -> Expr:
    operand = binder.bind(node.this)
    target, result = cast_target(node.args["to"])
    return Cast(operand, target, result)


def unparen(node: exp.Expression) -> exp.Expression:
    while isinstance(node, exp.Paren):
        node = node.this
    return node


def row_items(node: exp.Expression) -> list[exp.Expression] | None:
    """The values of a row value ``(a, b, ...)`` (in any parentheses), else None."""
    node = unparen(node)
    return list(node.expressions) if isinstance(node, exp.Tuple) else None


def _is(binder: Binder, op: str, node: exp.Expression) -> Expr:
    # Row values pair by pair; a number against text that is no number by affinity
    # (``affinity.py``); else ``Binary(op, …)``.
    return binder.compare(op, node.this, node.expression, node)


def bind_is_boolean(binder: Binder, node: exp.Is) -> Expr:
    """``x IS TRUE`` / ``x IS FALSE`` as SQLite has them: by ``x``'s truth (a number is
    true when non-zero), FALSE for NULL, never NULL (``NOT`` around it gives IS NOT)."""
    operand = binder.bind(node.this)
    wanted = bool(node.expression.this)
    true, false = Const(True, BOOL), Const(False, BOOL)
    whens = ((operand, true if wanted else false), (IsNull(operand), false))
    return Case(None, whens, false if wanted else true, BOOL)
