"""``take_lead``: how a node becomes a database's leader (issue 19, part 2).

1. It holds the database's lease (``lease.py``), at some epoch.
2. It catches up: its local log copies the stream up to the stream's last record
   (``catchup.py``). A local log that diverged (this node led before and kept records the
   stream never acknowledged, so never reported committed) is set aside first.
3. It opens the database on that log with a ``JetStreamLog`` as the durable point and
   appends an **epoch-start record** (an empty transaction logged as ``__cluster_epoch__``
   with the node id and epoch): a publish that expects the stream's last sequence. Once it
   is stored, any append of the previous leader (which expects an older last sequence, or
   a predecessor on its own term's subject) is refused: the old leader is fenced, whatever
   its clock or lease says, however many records it had in flight.
4. Only then does it serve.

If the old leader slipped a record in between steps 2 and 3, the epoch-start append itself
is refused; the node closes the database and starts over from step 2.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from cosmictron.cluster.catchup import catch_up, diverged, set_aside
from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import JetStreamLog
from cosmictron.cluster.lease import Lease
from cosmictron.durability import DurabilityConfig
from cosmictron.errors import DurabilityError, NotLeader
from cosmictron.host import Database
from cosmictron.values import Identity

logger = logging.getLogger(__name__)

EPOCH_REDUCER = "__cluster_epoch__"
"""The name an epoch-start record is logged under (its arguments: node id, epoch)."""

TAKEOVER_ATTEMPTS = 5
"""Catch-up-and-fence rounds before giving up (each lost only to a racing old leader)."""


def take_lead(
    connection: NatsConnection,
    lease: Lease,
    data_dir: str | os.PathLike[str],
    module: Any,
    durability: DurabilityConfig,
    *,
    replicas: int = 3,
    owner: Identity | None = None,
) -> Database:
    """Catch up, open, fence with an epoch-start record; the database, ready to serve.

    Raises:
        NotLeader: the lease is not held, or every attempt was fenced in turn.
        ClusterUnavailable: JetStream did not answer.
    """
    if lease.epoch == 0:
        raise NotLeader(f"{lease.node_id} does not hold the lease of {lease.database!r}")
    last_error: Exception | None = None
    for _ in range(TAKEOVER_ATTEMPTS):
        try:
            catch_up(connection, data_dir, lease.database, durability)
        except DurabilityError as exc:
            if not diverged(exc):
                raise
            # This node led before and kept records the stream never acknowledged: they
            # were never reported committed. Keep them aside, rebuild from the stream.
            aside = set_aside(data_dir)
            logger.warning("cluster: %s diverged from the stream; set aside in %s", data_dir, aside)
            catch_up(connection, data_dir, lease.database, durability)
        log = JetStreamLog(connection, lease.database, epoch=lease.epoch, replicas=replicas)
        try:
            db = Database.open(data_dir, module, durability=durability, owner=owner, replicator=log)
        except DurabilityError as exc:  # the stream moved on since the catch-up
            last_error = exc
            continue
        try:
            db.run_transaction(
                EPOCH_REDUCER, lambda _tx, _datastore: None, lambda _: [lease.node_id, lease.epoch]
            )
        except NotLeader as exc:
            db.close()
            last_error = exc
            continue
        except BaseException:
            db.close()
            raise
        return db
    raise NotLeader(
        f"could not fence the log of {lease.database!r} after {TAKEOVER_ATTEMPTS} attempts: "
        f"{last_error}"
    )
