"""Cluster mode on NATS JetStream (issue 19; DESIGN.md §9): the replicated commit log.

Owns the connection to NATS (``connection.py``: nats-py's asyncio client on a thread of its
own, bridged to the host's threads by concurrent futures), each database's log as a
JetStream stream (``jetstream_log.py``: a ``durability.Replicator``, so a transaction is
acknowledged only once JetStream stored its record on a quorum) and leadership
(``lease.py``: a lease per database in JetStream KV, renewed by compare-and-set;
``catchup.py``: a node's local log copies the stream's records; ``leadership.py``: catch up,
fence the old leader with an epoch-start record, serve).
Cosmictron builds no consensus of its own: JetStream's Raft groups order and keep the
records, ``Nats-Expected-Last-Sequence`` fences a deposed leader, ``Nats-Msg-Id`` makes a
retried append exactly-once. ``node.py`` ties it together for a server (``start --cluster``);
``keys.py`` shares one token key and operator between the nodes, ``snapshots.py`` ships
snapshots to the object store and trims streams, ``removal.py`` deletes a database.
Imports ``cosmictron.host`` (a leader opens its Database) and the layers below it; needs
the ``cluster`` extra (``nats-py``). Design note: docs/design/cluster-log.md.
"""
