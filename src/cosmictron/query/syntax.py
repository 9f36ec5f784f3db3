"""SQL text to SQLGlot's syntax tree, with our errors: one statement, positions kept.

SQLGlot (SQLite dialect) parses; this module turns its errors into ``SqlError`` with
line, column and text, and refuses what it forgives but SQL does not (a dangling comma).
Used for statements (``parse.py``) and for visibility filters (``visibility_parse.py``).

Depth is bounded twice, never by catching a ``RecursionError`` (which costs a thousand
frames on the thread that hit it, and may surface anywhere): before SQLGlot runs, a
linear scan of the text counts the levels its parser recurses on (parentheses and
subqueries, CASE, runs of prefix NOT and -) against ``limits.sql_depth_max``; after it
runs, the syntax tree's depth (a chain of 500 ANDs is 500 deep) is measured with an
explicit stack against ``limits.sql_expression_depth_max``, since binding, compiling and
evaluating recurse once per level. Both are a ``SqlTooDeep`` (400, ``too_deep``).
"""

from __future__ import annotations

import contextvars
import logging
import re
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from cosmictron import limits
from cosmictron.errors import SqlError, SqlTooDeep
from cosmictron.query.position import Source

_SQLITE = Dialect.get_or_raise("sqlite")


def syntax_tree(source: Source, ddl: bool = False) -> exp.Expression:
    """One statement's tree; ``ddl`` also admits CREATE and DROP (views, ``views.py``)."""
    check_nesting(source.text)
    _refuse_dangling_commas(source)
    trees = _parse(source.text)
    if len(trees) == 1 and isinstance(trees[0], exp.Command):
        trees = _replace_into(source.text) or trees
    if len(trees) != 1:
        raise SqlError(f"expected one SQL statement, got {len(trees)}")
    tree: Any = trees[0]
    check_tree_depth(tree)
    if isinstance(tree, exp.Command):
        source.fail(f"unsupported statement: {tree.name.upper()}", tree)
    if ddl and isinstance(tree, exp.Create | exp.Drop):
        return tree
    if not isinstance(tree, exp.Select | exp.SetOperation | exp.Insert | exp.Update | exp.Delete):
        source.fail(
            f"unsupported statement: {tree.key.upper()} (expected a SELECT, INSERT, UPDATE "
            f"or DELETE statement)",
            tree,
        )
    return tree


def _parse(text: str) -> list[exp.Expression]:
    """SQLGlot's trees for ``text``, its errors turned into ours."""
    parsing = _PARSING.set(True)
    try:
        trees: list[Any] = [t for t in sqlglot.parse(text, read="sqlite") if t is not None]
        return trees
    except ParseError as exc:
        raise user_syntax_error(exc.errors[0] if exc.errors else {}) from None
    except TokenError:
        raise SqlError(
            "syntax error: the statement cannot be read to its end "
            "(an unterminated string or quoted name?)"
        ) from None
    except RecursionError:  # cannot happen within the default limits; kept as a guard
        raise SqlTooDeep("the SQL statement nests too deeply to parse") from None
    finally:
        _PARSING.reset(parsing)


_LEADING_SPACE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.DOTALL)
_REPLACE_INTO = re.compile(r"REPLACE\s+INTO\b", re.IGNORECASE)
_INSERT_OR = "INSERT OR "


def _replace_into(text: str) -> list[exp.Expression] | None:
    """SQLite's ``REPLACE INTO t ...``, its alias of ``INSERT OR REPLACE INTO t ...``,
    which SQLGlot reads as an opaque command: parsed as that INSERT, with every node's
    position moved back onto the user's text (so errors point where they typed). None
    when ``text`` does not start with ``REPLACE INTO``."""
    start = _LEADING_SPACE.match(text)
    at = start.end() if start else 0
    if not _REPLACE_INTO.match(text, at):
        return None
    trees = _parse(text[:at] + _INSERT_OR + text[at:])
    shift = len(_INSERT_OR)
    for tree in trees:
        for node in tree.walk():
            meta = node.meta if node._meta else None
            if meta and "start" in meta:
                meta["start"] = max(meta["start"] - shift, 0)
                meta["end"] = max(meta["end"] - shift, 0)
    return trees


# -- SQLGlot's words turned into the user's (issue 16) --------------------------------------

_PARSING: contextvars.ContextVar[bool] = contextvars.ContextVar("parsing_sql", default=False)
"""True while ``syntax_tree`` runs SQLGlot in this thread or task."""


class _QuietWhileParsing(logging.Filter):
    """Drops the records SQLGlot logs while *we* parse ("Falling back to parsing as a
    'Command'"): the statement is refused with a ``SqlError`` anyway, and an embedded
    application must not find our parser's remarks on its stderr (through logging's
    last-resort handler). SQLGlot used by the application itself logs as before."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not _PARSING.get()


logging.getLogger("sqlglot").addFilter(_QuietWhileParsing())

_OPERATORS = {
    "Mul": "*", "Div": "/", "IntDiv": "/", "Add": "+", "Sub": "-", "Mod": "%",
    "EQ": "=", "NEQ": "<>", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<=",
    "And": "AND", "Or": "OR", "Not": "NOT", "Like": "LIKE", "ILike": "ILIKE",
    "DPipe": "||", "Is": "IS", "In": "IN", "Between": "BETWEEN", "Neg": "-",
    "Where": "WHERE", "Having": "HAVING", "Limit": "LIMIT", "Offset": "OFFSET",
    "Order": "ORDER BY", "Group": "GROUP BY", "Ordered": "ORDER BY", "Join": "JOIN",
    "Alias": "AS", "Cast": "CAST", "Case": "CASE", "If": "WHEN",
}  # fmt: skip
"""SQLGlot's expression class names as the SQL the user typed."""

CONTEXT_CHARS = 24
"""How much of the statement before the offending text the message quotes."""

_MISSING = re.compile(r"Required keyword: '(\w+)' missing for <class '[\w.]*?(\w+)'>")
_EXPECTING = re.compile(r"Expecting (.+)")


def user_syntax_error(error: dict[str, Any]) -> SqlError:
    """A SQLGlot parse error as a ``SqlError`` in the words of SQL, never the parser's:
    ``syntax error near 'SELECT 2 * FROM': '*' needs an expression after it (line 1,
    column 12)``: the text leading to the error, what is wrong in SQL's terms, where.

    The column is where the offending text starts (SQLGlot reports where it ends).
    """
    near = str(error.get("highlight") or "")
    description = str(error.get("description") or "")
    missing = _MISSING.match(description)
    expecting = _EXPECTING.fullmatch(description)
    if missing:
        word = _OPERATORS.get(missing[2])
        reason = f"{word!r} needs an expression after it" if word else "something is missing"
    elif expecting:
        reason = f"expected {expecting[1]!r}"
    elif description.startswith("Invalid expression"):
        reason = "unexpected text"
    elif "<class" in description or "sqlglot" in description:
        reason = "the statement is incomplete or malformed"
    else:
        reason = description[:1].lower() + description[1:]
    line, end = error.get("line"), error.get("col")
    column = end - len(near) + 1 if isinstance(end, int) and near else end
    before = str(error.get("start_context") or "")
    if len(before) > CONTEXT_CHARS:  # whole words only, marked as cut
        before = "…" + before[-CONTEXT_CHARS:].split(" ", 1)[-1]
    context = f"{before}{near}".strip()
    shown = f"syntax error near {context!r}: {reason}" if context else f"syntax error: {reason}"
    failure = SqlError(shown, line=line, column=column)
    failure.text = near
    return failure


_AFTER_LIST = {TokenType.FROM, TokenType.WHERE, TokenType.R_PAREN, TokenType.SEMICOLON}


def _refuse_dangling_commas(source: Source) -> None:
    """SQLGlot forgives ``SELECT a, FROM t``; SQL (and SQLite) do not."""
    if "," not in source.text:
        return
    try:
        tokens = _SQLITE.tokenize(source.text)
    except TokenError:
        return  # not SQL at all: ``_parse`` refuses it with its position
    for token, following in zip(tokens, [*tokens[1:], None], strict=True):
        if token.token_type is TokenType.COMMA and (
            following is None or following.token_type in _AFTER_LIST
        ):
            shown = following.text if following is not None else "the end"
            raise SqlError(
                f"syntax error: a list ends with a comma before {shown!r}",
                line=token.line,
                column=token.col,
                text=",",
            )


_SKIPPED = re.compile(
    r"'[^']*+'?|\"[^\"]*+\"?|`[^`]*+`?|\[[^\]]*+\]?|--[^\n]*+|/\*(?:[^*]|\*(?!/))*+(?:\*/)?"
)
"""String literals, quoted names and comments (unterminated ones run to the end)."""

_LEVELS = re.compile(r"\(|\)|\bCASE\b|\bEND\b|(?:(?:\bNOT\b|[-+~])\s*+)++", re.IGNORECASE)
"""What opens or closes a level of the parser's recursion: a parenthesis, CASE ... END,
and a run of prefix operators (each one a level: ``NOT NOT - x``)."""

_OPENERS = re.compile(r"[(\-+~]|\bNOT\b|\bCASE\b", re.IGNORECASE)


def check_nesting(text: str, depth_max: int | None = None) -> None:
    """Refuse ``text`` if it nests deeper than ``depth_max`` (``limits.sql_depth_max``).

    Linear, without recursion or backtracking; string literals, quoted names and
    comments are skipped. A text with fewer openers than the limit is not scanned.

    Raises:
        SqlTooDeep: the statement nests deeper than the limit (400, ``too_deep``).
    """
    limit = limits.sql_depth_max if depth_max is None else depth_max
    if len(_OPENERS.findall(text)) <= limit:
        return
    code = _SKIPPED.sub(" ", text)
    depth = 0
    for match in _LEVELS.finditer(code):
        token = match.group()
        if token == "(" or token.upper() == "CASE":
            depth += 1
            level = depth
        elif token == ")" or token.upper() == "END":
            depth = max(depth - 1, 0)
            continue
        else:
            level = depth + len(re.findall(r"NOT|[-+~]", token, re.IGNORECASE))
        if level > limit:
            raise SqlTooDeep(
                f"the SQL statement nests parentheses, subqueries, CASE or prefix "
                f"operators more than {limit} deep (the limit, limits.sql_depth_max)"
            )


def check_tree_depth(tree: exp.Expression, depth_max: int | None = None) -> None:
    """Refuse a syntax tree deeper than ``depth_max`` (``limits.sql_expression_depth_max``).

    Measured with an explicit stack: binding, compiling and evaluating an expression
    recurse once per level, so this runs before them.

    Raises:
        SqlTooDeep: the tree is deeper than the limit (400, ``too_deep``).
    """
    limit = limits.sql_expression_depth_max if depth_max is None else depth_max
    stack: list[tuple[exp.Expression, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise SqlTooDeep(
                f"the SQL statement's expressions nest more than {limit} deep (a chain of "
                f"operators such as AND, OR or || counts one level per operator; the "
                f"limit, limits.sql_expression_depth_max); split it or use IN (...)"
            )
        stack.extend((child, depth + 1) for child in node.iter_expressions())
