"""Cluster mode: a write over a follower's PostgreSQL port is refused, naming the leader.

Issue 19. A node that does not lead a database serves SQL reads on its PostgreSQL port
from its replica, but a write there is not forwarded (HTTP writes are,
``server/forwarding.py``; a PostgreSQL session would need its own connection to the
leader, kept for the session's transaction). It fails as PostgreSQL fails a write on a
hot standby, ``25006`` (read_only_sql_transaction), and the message names the leader
node and its HTTP URL so that a client can reconnect there.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cosmictron.server.pgwire.sqlstate import PgError

READ_ONLY_SQL_TRANSACTION = "25006"


async def replica_write_refusal(registry: Any, name: str, kind: str) -> PgError:
    """The error for a ``kind`` statement (``INSERT``, ...) on this node's replica of
    ``name``: SQLSTATE 25006, naming the leader when the cluster's KV says who it is."""
    cluster = registry.cluster
    where = "no node leads it right now (a failover is under way; retry)"
    try:
        leader = await asyncio.to_thread(cluster.leader_url, name)
    except Exception:  # the KV did not answer: say so rather than guess
        leader = None
        where = "its leader could not be read from the cluster's KV (retry)"
    if leader is not None:
        node, url = leader
        where = f"its leader is node {node} ({url}): connect to that node to write"
    return PgError(
        READ_ONLY_SQL_TRANSACTION,
        f"cannot execute {kind} on a read-only replica: node {cluster.node_id} follows "
        f"database {name!r}; {where}, or send the write over HTTP to any node, which "
        "forwards it",
    )
