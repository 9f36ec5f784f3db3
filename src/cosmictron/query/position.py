"""Where in the SQL text a SQLGlot node came from, so every ``SqlError`` can say so.

SQLGlot records ``line``, ``col``, ``start`` and ``end`` on the identifiers and literals it
parses (``node.meta``). A compound node has no position of its own: its span runs from
its first positioned descendant to its last, which is what we underline.
"""

from __future__ import annotations

from typing import Any, NoReturn

from sqlglot import exp

from cosmictron.errors import SqlError


class Source:
    """The statement's text, to turn a node into (line, column, offending text)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def span(self, node: exp.Expression | None) -> tuple[int, int] | None:
        """The (start, end) character offsets, end inclusive, of ``node``'s text."""
        if node is None:
            return None
        starts, ends = [], []
        for sub in node.walk():
            meta: dict[str, Any] = sub.meta if sub._meta else {}
            if "start" in meta:
                starts.append(meta["start"])
                ends.append(meta["end"])
        if not starts:
            return None
        return min(starts), max(ends)

    def locate(self, node: exp.Expression | None) -> tuple[int, int, str] | None:
        """(line, column, text) of ``node``, else of its nearest positioned parent."""
        span = self.span(node)
        parent: Any = node
        while span is None and parent is not None and parent.parent is not None:
            parent = parent.parent
            span = self.span(parent)
        if span is None:
            return None
        start, end = span
        line = self.text.count("\n", 0, start) + 1
        column = start - (self.text.rfind("\n", 0, start) + 1) + 1
        return line, column, self.text[start : end + 1]

    def error(self, message: str, node: exp.Expression | None = None) -> SqlError:
        """A ``SqlError`` pointing at ``node``, else at its nearest positioned parent."""
        return located_error(message, self.locate(node))

    def fail(self, message: str, node: exp.Expression | None = None) -> NoReturn:
        raise self.error(message, node)


def located_error(message: str, where: tuple[Any, ...] | None) -> SqlError:
    """A ``SqlError`` at a position ``Source.locate`` found (None or (): no position)."""
    if not where:
        return SqlError(message)
    line, column, text = where
    return SqlError(message, line=line, column=column, text=text)
