"""Expression semantics: SQLite's three-valued logic, arithmetic and LIKE, on closures.

Each case compiles a bound expression with ``compile_expr`` and evaluates it on a row;
the truth tables are SQL's (and SQLite's): NULL is ``None``.
"""

from __future__ import annotations

import itertools

import pytest

from cosmictron.query.expressions import compile_expr
from cosmictron.query.plan import Between, Binary, Col, Const, InList, IsNull, Like, Unary

VALUES = [True, False, None]


def _and(a, b):
    if a is False or b is False:
        return False
    if a is None or b is None:
        return None
    return True


def _or(a, b):
    if a is True or b is True:
        return True
    if a is None or b is None:
        return None
    return False


@pytest.mark.parametrize(("a", "b"), list(itertools.product(VALUES, VALUES)))
def test_and_or_truth_tables(a, b):
    row = (a, b)
    assert compile_expr(Binary("AND", Col(0, "a"), Col(1, "b")))(row) is _and(a, b)
    assert compile_expr(Binary("OR", Col(0, "a"), Col(1, "b")))(row) is _or(a, b)


def test_not_null_is_null():
    negate = compile_expr(Unary("NOT", Col(0, "a")))
    assert negate((None,)) is None
    assert negate((True,)) is False


@pytest.mark.parametrize("op", ["=", "<>", "<", "<=", ">", ">="])
def test_comparison_with_null_is_null(op):
    assert compile_expr(Binary(op, Col(0, "a"), Const(None)))((1,)) is None
    assert compile_expr(Binary(op, Col(0, "a"), Col(1, "b")))((None, 1)) is None


@pytest.mark.parametrize(
    ("op", "a", "b", "expected"),
    [
        ("/", 7, 2, 3),
        ("/", -7, 2, -3),
        ("/", 7, 0, None),
        ("/", 7.0, 2, 3.5),
        ("%", -7, 3, -1),
        ("%", 7, -3, 1),
        ("%", 5, 0, None),
        ("+", 1, None, None),
        ("*", 2, 2.5, 5.0),
        ("-", 3, 5, -2),
    ],
)
def test_arithmetic_like_sqlite(op, a, b, expected):
    assert compile_expr(Binary(op, Col(0, "a"), Col(1, "b")))((a, b)) == expected


def test_in_list_with_null():
    items = (Const(1), Const(None))
    assert compile_expr(InList(Col(0, "a"), items))((1,)) is True
    assert compile_expr(InList(Col(0, "a"), items))((2,)) is None
    assert compile_expr(InList(Col(0, "a"), items, negated=True))((2,)) is None
    assert compile_expr(InList(Col(0, "a"), (Const(1),), negated=True))((2,)) is True
    assert compile_expr(InList(Col(0, "a"), (Const(1),)))((None,)) is None


def test_between_and_is_null():
    between = compile_expr(Between(Col(0, "a"), Const(1), Const(3)))
    assert [between((v,)) for v in (0, 1, 3, 4, None)] == [False, True, True, False, None]
    assert compile_expr(IsNull(Col(0, "a")))((None,)) is True
    assert compile_expr(IsNull(Col(0, "a"), negated=True))((None,)) is False


def test_like_patterns():
    like = compile_expr(Like(Col(0, "a"), Const("a_c%")))
    assert [like((v,)) for v in ("abc", "abcdef", "ac", "ABC", None)] == [
        True,
        True,
        False,
        False,
        None,
    ]
    assert compile_expr(Like(Col(0, "a"), Const("50%"), negated=True))(("50% off",)) is False
    assert compile_expr(Like(Col(0, "a"), Const("a.c")))(("abc",)) is False
