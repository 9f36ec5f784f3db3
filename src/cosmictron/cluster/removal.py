"""Deleting a database in cluster mode: what JetStream keeps of it goes, in a safe order.

``ClusterNode.delete_database`` runs on the database's leader (only a node that hosts it
can check that the caller owns it), after the registry closed it there:

1. its catalogue entry is deleted first, so no node's lease round starts taking it over;
2. then (:func:`remove_replicated_state`) its log stream ``COSMICTRON_LOG_<name>``, its
   inbox stream (remote calls addressed to it), its shipped snapshots and, last, its lease
   key.

Every other node notices the entry gone at its next lease round (about a second): it
drops the database if it hosted it and removes its local directory
(``ClusterNode._forget_deleted``). A node that was down meanwhile keeps its stale
directory; if a database of the same name is created later, that node's catch-up finds
the old log does not continue the new stream and sets it aside (``catchup.set_aside``).
"""

from __future__ import annotations

from typing import Any

from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import stream_name
from cosmictron.cluster.lease import LEASE_BUCKET
from cosmictron.cluster.snapshots import delete_snapshots
from cosmictron.errors import ClusterUnavailable

TIMEOUT_S = 30.0


async def _delete_stream(js: Any, name: str) -> bool:
    from nats.js.errors import NotFoundError

    try:
        return bool(await js.delete_stream(name))
    except NotFoundError:
        return False


async def _delete_lease(connection: NatsConnection, key: str) -> None:
    from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError

    try:
        kv = await connection.js.key_value(LEASE_BUCKET)
        await kv.purge(key)
    except (BucketNotFoundError, KeyNotFoundError, KeyDeletedError):
        pass


def purge_lease(connection: NatsConnection, database: str) -> None:
    """Delete ``database``'s lease key (a lease taken in a race with its deletion)."""
    key = stream_name(database).removeprefix("COSMICTRON_LOG_")
    connection.run(_delete_lease(connection, key), TIMEOUT_S)


def remove_replicated_state(connection: NatsConnection, database: str, replicas: int = 3) -> None:
    """Delete ``database``'s streams, snapshots and lease (step 2 of the module doc).

    Raises:
        ClusterUnavailable: JetStream did not answer; what was deleted stays deleted and a
            retry of the delete finishes the rest.
    """
    from cosmictron.host.remote_nats import inbox_stream

    async def remove() -> None:
        js = connection.js
        await _delete_stream(js, stream_name(database))
        await _delete_stream(js, inbox_stream(database))

    try:
        connection.run(remove(), TIMEOUT_S)
        delete_snapshots(connection, database, replicas=replicas)
        purge_lease(connection, database)
    except Exception as exc:
        raise ClusterUnavailable(
            f"deleting the replicated state of {database!r} did not finish ({exc!r}); the "
            f"database is gone from the catalogue; remove what is left with the nats CLI "
            f"(streams {stream_name(database)} and {inbox_stream(database)}, bucket "
            f"COSMICTRON_SNAPSHOTS)"
        ) from exc
