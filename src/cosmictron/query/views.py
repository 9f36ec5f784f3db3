"""Views: named queries the owner declares with ``CREATE VIEW`` through ``db.sql``.

A view is stored as the text of its ``CREATE VIEW`` statement and expanded wherever a
query names it, exactly as a CTE of the same body would be (``select.py``): it is bound
again for each query, so it reads the tables as the module declares them now, and a
non-owner's visibility filters apply to the tables inside it as to any other scan. A
view sees no CTE of the query that names it and no columns of an enclosing query; it
may name other views (a view is never expanded inside itself, so a cycle made by
dropping and recreating views is an "unknown table" error, not a loop).

This module parses ``CREATE VIEW`` / ``DROP VIEW`` (``view_change``) and holds the views
of one database (``ViewBook``, an immutable mapping replaced on each change). The host
logs each change and replays it (``host/views.py``); see docs/design/views.md.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from cosmictron.datastore import ModuleSchema
from cosmictron.errors import SqlError
from cosmictron.query.position import Source
from cosmictron.query.syntax import syntax_tree

_VIEW_DDL = re.compile(
    r"\s*(?:CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?VIEW|DROP\s+VIEW)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class View:
    """One view: its name, its ``CREATE VIEW`` text, the body's syntax tree (positions
    in ``source``, for errors) and the column names it declares (empty: the body's)."""

    name: str
    text: str
    query: exp.Expression
    columns: tuple[str, ...]
    source: Source


@dataclass(frozen=True)
class CreateView:
    """``CREATE [OR REPLACE] VIEW``: ``replace`` takes the place of a view of that name
    (keeping its place among the views), or makes it if there is none."""

    view: View
    if_not_exists: bool
    replace: bool = False


@dataclass(frozen=True)
class DropView:
    name: str
    if_exists: bool


ViewChange = CreateView | DropView


def is_view_change(text: str) -> bool:
    """Whether ``text`` is a ``CREATE VIEW`` or ``DROP VIEW`` statement (a cheap test)."""
    return _VIEW_DDL.match(text) is not None


def view_change(text: str) -> ViewChange:
    """``CREATE VIEW`` / ``DROP VIEW`` parsed (not yet checked against any schema).

    Raises:
        SqlError: not one of them, or a form this project does not take.
    """
    source = Source(text)
    tree = syntax_tree(source, ddl=True)
    if isinstance(tree, exp.Drop) and str(tree.args.get("kind")).upper() == "VIEW":
        tables = tree.args.get("tables") or [tree.this]
        if len(tables) != 1 or not isinstance(tables[0], exp.Table):
            source.fail("DROP VIEW takes one view name", tree)
        return DropView(tables[0].name, bool(tree.args.get("exists")))
    if not isinstance(tree, exp.Create) or str(tree.args.get("kind")).upper() != "VIEW":
        source.fail("expected CREATE VIEW or DROP VIEW", tree)
    replace = bool(tree.args.get("replace"))
    if replace and tree.args.get("exists"):
        source.fail("CREATE OR REPLACE VIEW takes no IF NOT EXISTS", tree)
    target = tree.this
    columns: tuple[str, ...] = ()
    if isinstance(target, exp.Schema):
        columns = tuple(identifier.name for identifier in target.expressions)
        target = target.this
    if not isinstance(target, exp.Table) or not target.name or target.args.get("db"):
        source.fail("expected a view name", tree)
    query = tree.expression
    if not isinstance(query, exp.Select | exp.SetOperation | exp.Subquery):
        source.fail("CREATE VIEW needs AS followed by a query", tree)
    if len(set(columns)) != len(columns):
        source.fail("CREATE VIEW names a column twice", tree)
    view = View(target.name, text, query, columns, source)
    return CreateView(view, bool(tree.args.get("exists")), replace)


class ViewBook:
    """The views of one database: a mapping replaced (never changed) on each change, so
    a reader holds one consistent set without a lock. Changed under the writer lock."""

    __slots__ = ("views",)

    def __init__(self) -> None:
        self.views: Mapping[str, View] = {}

    def names_any(self, text: str) -> bool:
        """Whether ``text`` may name a view (a word equal to a view's name).

        Statements that do are not kept in the statement cache, since a view may be
        dropped or replaced; the test costs nothing while there are no views.
        """
        views = self.views
        if not views:
            return False
        return any(word in views for word in re.findall(r"\w+", text))

    def checked(
        self,
        change: ViewChange,
        schema: ModuleSchema,
        check: Callable[[View, ModuleSchema, Mapping[str, View]], None],
    ) -> Mapping[str, View]:
        """The views after ``change``, checked against ``schema`` and the views (the
        body of a new view by ``check``: ``compound.check_view``).

        Raises:
            SqlError: the name is taken (a table or a view) or unknown (DROP), or the
                body is not a query ``db.sql`` accepts over the tables now.
        """
        if isinstance(change, DropView):
            if change.name not in self.views:
                if change.if_exists:
                    return self.views
                raise SqlError(f"no such view: {change.name!r}")
            return {n: v for n, v in self.views.items() if n != change.name}
        view = change.view
        if view.name in self.views and not change.replace:
            if change.if_not_exists:
                return self.views
            raise SqlError(f"view {view.name!r} already exists")
        if schema.table(view.name) is not None:
            raise SqlError(f"there is already a table named {view.name!r}")
        # The new body sees every other view, never the one it replaces (no cycle).
        others = {n: v for n, v in self.views.items() if n != view.name}
        check(view, schema, others)
        return {**self.views, view.name: view}

    def replayed(self, text: str) -> None:
        """Apply a change read from the log: it was checked when it was made."""
        change = view_change(text)
        if isinstance(change, DropView):
            self.views = {n: v for n, v in self.views.items() if n != change.name}
        else:
            self.views = {**self.views, change.view.name: change.view}

    def state(self) -> list[str]:
        """The views as their ``CREATE VIEW`` texts, in creation order (for snapshots)."""
        return [view.text for view in self.views.values()]

    def load(self, state: Any) -> None:
        """Take the views a snapshot holds (None: a snapshot from before views)."""
        self.views = {}
        for text in state or []:
            self.replayed(text)
