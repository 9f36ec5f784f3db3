"""Cluster mode: DML over a follower's PostgreSQL port runs on the database's leader.

Issue 19 (DESIGN §9: any node accepts every route). A node that does not lead a database
serves reads on its PostgreSQL port from its replica; a write there is sent to the leader
over HTTP as every other forwarded write is (``server/forwarding.py``): ``POST
<leader>/v1/database/<name>/sql`` with the session's own token (the password it logged in
with) as ``Authorization``, so the leader checks the caller's rights, never this node's.

- An autocommit statement is sent as ``{"query", "params"}`` when it runs.
- A transaction block runs here as on a leader, each write in a transaction that is
  rolled back (on the replica: its row count, its errors and the block's own reads are
  answered at once), and is sent whole at ``COMMIT`` as ``{"statements", "expect"}``: the
  leader applies it as one transaction, or nothing if a statement's row count is no longer
  the one reported (40001; docs/design/pgwire.md, "Transaction blocks").

Parameters travel in their JSON form (``values.json_form``, exact integers): the form the
log already records SQL parameters in, which the engine binds back to the column types.
The leader's error becomes the SQLSTATE its own port gives (``sqlstate_of_document``);
no leader, or none reachable, is ``57P03`` saying to retry (and whether the write may have
run). A write that succeeded answers once this node's replica has applied its
``tx_offset`` (the read-your-writes rule of HTTP forwarding, ``forwarding.applied_here``),
so the session's next read here sees it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from cosmictron.errors import CosmictronError
from cosmictron.server import forwarding
from cosmictron.server.pgwire import pgtypes
from cosmictron.server.pgwire.sqlstate import (
    FEATURE_NOT_SUPPORTED,
    INVALID_PARAMETER_VALUE,
    PgError,
    sqlstate_of,
    sqlstate_of_document,
)
from cosmictron.values import json_form

Written = tuple[str, Mapping[str, Any] | None]
"""A write as a session holds it: the engine's text and its parameters."""


@dataclass(frozen=True)
class LeaderResult:
    """One statement's answer from the leader: what it changed and returned."""

    rows_affected: int
    rows: list[tuple[Any, ...]]


@dataclass(frozen=True)
class LeaderAnswer:
    """The leader's answer to a session's writes, and whether this node has applied them."""

    results: list[LeaderResult]
    tx_offset: int
    behind: str | None
    """None when this node's replica applied ``tx_offset`` in time (the session's next
    read here sees the writes); else a warning saying it did not (``Cosmictron-Stale``
    over HTTP)."""


@dataclass(frozen=True)
class LeaderWrites:
    """Sends one session's writes to the leader of ``name`` (module doc).

    Args:
        app: the server's HTTP application (leader cache, client session, registry);
            None when the port runs without one (then no write can be forwarded).
        name: the database the session is connected to.
        token: the session's password, an identity's token.
    """

    app: web.Application | None
    name: str
    token: str

    async def run(
        self,
        writes: Sequence[Written],
        expect: list[int | None] | None,
        oids: tuple[int, ...] = (),
        text: str = "",
    ) -> LeaderAnswer:
        """Apply ``writes`` on the leader as one transaction (one write: as sent,
        ``expect`` None); each one's result, once this node has applied them.

        Args:
            oids: the columns a single write returns (``RETURNING``), to decode its rows.
            text: the statement as the client sent it (for an error's position).

        Raises:
            PgError: the leader's error as its SQLSTATE, or 57P03 (no leader; retry).
        """
        if self.app is None:
            raise PgError(
                FEATURE_NOT_SUPPORTED,
                f"this node follows database {self.name!r} and its PostgreSQL port runs "
                "without the HTTP server that forwards writes to the leader; connect to "
                "the leader to write",
            )
        body = json.dumps(self._body(writes, expect)).encode()
        path = f"/v1/database/{self.name}/sql"
        try:
            status, reply, _ = await forwarding.post_to_leader(
                self.app, self.name, path, self.token, body
            )
        except CosmictronError as exc:
            raise sqlstate_of(exc) from None
        if status != 200:
            error = forwarding.leader_error(reply, status)
            raise sqlstate_of_document(error.code, str(error), status, text)
        offset = reply.get("tx_offset")
        offset = offset if isinstance(offset, int) else 0
        behind = None
        if not await forwarding.applied_here(self.app, self.name, offset):
            behind = (
                f"the write committed on the leader at tx_offset {offset}, but this node had "
                f"not applied it within {forwarding.APPLY_WAIT_S:g} s: a read here may not "
                "see it yet"
            )
        answers = reply["results"] if expect is not None else [reply]
        results = [
            LeaderResult(
                int(answer.get("rows_affected") or 0),
                _rows(answer.get("columns") or [], answer.get("rows") or [], oids),
            )
            for answer in answers
        ]
        return LeaderAnswer(results, offset, behind)

    @staticmethod
    def _body(writes: Sequence[Written], expect: list[int | None] | None) -> dict[str, Any]:
        try:
            statements = [
                {"query": text, "params": json_form(dict(params or {}), exact_ints=True)}
                for text, params in writes
            ]
        except CosmictronError as exc:
            raise PgError(
                INVALID_PARAMETER_VALUE,
                f"this node forwards writes to the leader with their parameters in JSON, "
                f"and one has no JSON form: {exc}",
            ) from None
        if expect is None:
            return statements[0]
        return {"statements": statements, "expect": expect}


def _rows(columns: list[str], rows: list[Any], oids: tuple[int, ...]) -> list[tuple[Any, ...]]:
    """A reply's rows (objects keyed by column) as tuples of this port's values."""
    if not oids:
        return []
    return [
        tuple(
            pgtypes.from_json_form(row.get(c), oid) for c, oid in zip(columns, oids, strict=False)
        )
        for row in rows
    ]
