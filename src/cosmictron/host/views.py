"""``CREATE VIEW`` / ``DROP VIEW`` through ``Database.sql``: checked, logged, replayed.

A view change is a transaction of its own with no row changes, recorded under the
reserved reducer name ``__view__`` with ``[text]`` (the statement as given), so the
log says who changed which view when, and replay applies it again (``recovery.py``);
snapshots carry the views as their texts (``DatabaseCore.request_snapshot``). The new
set of views is installed under the writer lock right after the record is appended, so
no statement sees a view whose record is not in the log. Only the owner may change
views. See docs/design/views.md.
"""

from __future__ import annotations

from cosmictron.datastore import Transaction
from cosmictron.errors import InvalidRequest, PermissionDenied
from cosmictron.host.core import DatabaseCore
from cosmictron.host.transactions import commit, next_timestamp_us, publish
from cosmictron.query.compound import check_view
from cosmictron.query.result import QueryResult
from cosmictron.query.views import view_change
from cosmictron.values import Identity

VIEW_REDUCER = "__view__"
"""The reducer name recorded for a view change; its arguments are ``[text]``."""


def change_view(core: DatabaseCore, text: str, sender: Identity) -> QueryResult:
    """Run one ``CREATE VIEW`` or ``DROP VIEW`` (``rows_affected`` 0).

    Raises:
        SqlError: the statement is invalid, or the name taken or unknown.
        PermissionDenied: the sender is not the owner.
    """
    if sender != core.owner:
        raise PermissionDenied("only the database owner may create or drop views")
    change = view_change(text)
    with core.lock:
        if core.closed:
            raise InvalidRequest(f"database {str(core.path)!r} is closed")
        book = core.sql_views
        views = book.checked(change, core.datastore.schema, check_view)
        if views is book.views:  # IF [NOT] EXISTS and nothing to do
            return QueryResult((), [], rows_affected=0)
        now_us = next_timestamp_us(core)
        tx = Transaction()
        offset, changes = commit(core, tx, VIEW_REDUCER, [text], sender, None, now_us)
        book.views = views
        publish(core, offset, now_us, changes)
    core.persistence.wait_durable(offset)
    return QueryResult((), [], rows_affected=0, tx_offset=offset)
