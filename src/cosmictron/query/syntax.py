"""SQL text to SQLGlot's syntax tree, with our errors: one statement, positions kept.

SQLGlot (SQLite dialect) parses; this module turns its errors into ``SqlError`` with
line, column and text, and refuses what it forgives but SQL does not (a dangling comma).
Used for statements (``parse.py``) and for visibility filters (``visibility.py``).
"""

from __future__ import annotations

from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ParseError, TokenError
from sqlglot.tokens import TokenType

from cosmictron.errors import SqlError
from cosmictron.query.position import Source

_SQLITE = Dialect.get_or_raise("sqlite")


def syntax_tree(source: Source) -> exp.Expression:
    try:
        _refuse_dangling_commas(source)
        trees = [t for t in sqlglot.parse(source.text, read="sqlite") if t is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        near = f"{first.get('start_context', '')}{first.get('highlight', '')}".strip()
        raise SqlError(
            f"syntax error near {near!r}: {first.get('description', str(exc))}",
            line=first.get("line"),
            column=first.get("col"),
            text=first.get("highlight", ""),
        ) from None
    except TokenError as exc:
        raise SqlError(f"syntax error: {exc}") from None
    except RecursionError:  # the parser recurses once per level: "((((((...", "[[[[..."
        raise SqlError("the statement nests too deeply to parse") from None
    if len(trees) != 1:
        raise SqlError(f"expected one SQL statement, got {len(trees)}")
    tree: Any = trees[0]
    if isinstance(tree, exp.Command):
        source.fail(f"unsupported statement: {tree.name.upper()}", tree)
    if not isinstance(tree, exp.Select | exp.Insert | exp.Update | exp.Delete):
        source.fail(
            f"unsupported statement: {tree.key.upper()} (expected a SELECT, INSERT, UPDATE "
            f"or DELETE statement)",
            tree,
        )
    return tree


_AFTER_LIST = {TokenType.FROM, TokenType.WHERE, TokenType.R_PAREN, TokenType.SEMICOLON}


def _refuse_dangling_commas(source: Source) -> None:
    """SQLGlot forgives ``SELECT a, FROM t``; SQL (and SQLite) do not."""
    if "," not in source.text:
        return
    tokens = _SQLITE.tokenize(source.text)
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
