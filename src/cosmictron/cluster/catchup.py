"""``catch_up``: copy the replicated log's records past the local log's end into it.

A node about to lead a database (or to follow it after a restart) first makes its local
log, the node's cache of the stream, end where the stream ends: it reads the stream's
records after its own last offset (streamed by one ordered consumer, not one request
each) and appends each one byte for byte
(``PersistenceLayer.append_replicated``, which checks that each continues the chain). The
database then opens from its local log as on one node. A local log that has records the
stream lacks (a deposed leader's unacknowledged tail) has diverged: :func:`set_aside`
moves its log and snapshots away so the node rebuilds from the stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.jetstream_log import log_subject, stream_name
from cosmictron.cluster.snapshots import seed_from_snapshot, stream_bounds
from cosmictron.durability import DurabilityConfig, PersistenceConfig, PersistenceLayer
from cosmictron.durability.ledger_writer import KEY_FILE, LEDGER_DIR
from cosmictron.errors import ClusterUnavailable, DurabilityError

FETCH_TIMEOUT_S = 30.0
"""How long reading the stream may take before the catch-up reports it unavailable."""

FETCH_HEARTBEAT_S = 1.0
"""The catch-up consumer's idle heartbeat (an ordered consumer resets itself when they stop)."""


async def _stream_last(connection: NatsConnection, database: str) -> int:
    from nats.js.errors import NotFoundError

    try:
        info = await connection.js.stream_info(stream_name(database))
    except NotFoundError:
        return 0
    return int(info.state.last_seq)


async def _fetch(connection: NatsConnection, database: str, first: int, last: int) -> list[bytes]:
    """The stream's records ``first..last``: one record by a direct get, a range by
    :func:`_fetch_range` (one request per record cost about 1 ms each, 33.8 s for 37k)."""
    if last < first:
        return []
    if last == first:
        msg = await connection.js.get_msg(stream_name(database), first, direct=True)
        return [bytes(msg.data or b"")]
    return await _fetch_range(connection, database, first, last)


async def _fetch_range(
    connection: NatsConnection, database: str, first: int, last: int
) -> list[bytes]:
    """Read ``first..last`` through an ordered push consumer started at ``first``.

    The server streams the records with flow control instead of answering one request per
    record. Every record must carry the next stream sequence: one delivered again after
    the consumer resets itself is skipped, and a hole (records trimmed or deleted while
    reading) is an error, so the list is exactly the stream's records in order.
    """
    from nats.js.api import ConsumerConfig, DeliverPolicy

    out: list[bytes] = []
    done = asyncio.get_running_loop().create_future()

    async def on_record(msg: Any) -> None:
        sequence = int(msg.metadata.sequence.stream)
        expected = first + len(out)
        if done.done() or sequence < expected or sequence > last:
            return  # delivered again after a reset, or appended after the read began
        if sequence != expected:
            done.set_exception(LookupError(f"the stream skipped from {expected - 1} to {sequence}"))
            return
        out.append(bytes(msg.data or b""))
        if sequence == last:
            done.set_result(None)

    subscription = await connection.js.subscribe(
        log_subject(database),
        stream=stream_name(database),
        cb=on_record,
        ordered_consumer=True,
        idle_heartbeat=FETCH_HEARTBEAT_S,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=first),
    )
    try:
        await done
    finally:
        try:
            await subscription.unsubscribe()
        except Exception:  # a connection that is down drops the consumer anyway
            pass
    return out


def stream_last_offset(connection: NatsConnection, database: str) -> int:
    """The last sequence (offset) of the database's stream; 0 when it has none."""
    return connection.run(_stream_last(connection, database), FETCH_TIMEOUT_S)


def catch_up(
    connection: NatsConnection,
    data_dir: str | os.PathLike[str],
    database: str,
    durability: DurabilityConfig,
) -> tuple[int, int]:
    """Append the stream's records after the local log's end; ``(copied, last offset)``.

    Raises:
        DurabilityError: the local log has records past the stream's end, or a copied
            record does not continue it (the log diverged: :func:`set_aside` it).
        ClusterUnavailable: the stream could not be read.
    """
    seed_from_snapshot(connection, data_dir, database, ledger_on=durability.signing != "off")
    persistence = PersistenceLayer(
        PersistenceConfig(data_dir=str(data_dir)), durability, replica=True
    )
    try:
        recovery = persistence.recover()
        for _ in recovery.records:
            pass
        local_last = persistence.next_offset - 1
        try:
            stream_first, stream_last = stream_bounds(connection, database)
            if stream_last < local_last:
                raise DurabilityError(
                    f"the local log of {database!r} ends at {local_last}, past the replicated "
                    f"log's end ({stream_last}): it {DIVERGED} (records never acknowledged)"
                )
            if stream_first > local_last + 1:
                raise DurabilityError(
                    f"the replicated log of {database!r} was trimmed to start at "
                    f"{stream_first}, past the local log's end ({local_last}): the local log "
                    f"{DIVERGED} from what the stream holds; start from a snapshot"
                )
            if local_last >= max(stream_first, 1):
                # The same length is not the same history: the last local record must be
                # the stream's record at that offset, else the chains part there or earlier.
                (ours,) = connection.run(
                    _fetch(connection, database, local_last, local_last), FETCH_TIMEOUT_S
                )
                if hashlib.sha256(ours).digest() != persistence.last_hash:
                    raise DurabilityError(
                        f"the local log of {database!r} holds another record at offset "
                        f"{local_last} than the replicated log: it {DIVERGED}"
                    )
            payloads: list[Any] = []
            if stream_last > local_last:
                payloads = connection.run(
                    _fetch(connection, database, local_last + 1, stream_last), FETCH_TIMEOUT_S
                )
        except DurabilityError:
            raise
        except Exception as exc:
            raise ClusterUnavailable(
                f"could not read the replicated log of {database!r}: {exc!r}"
            ) from exc
        for payload in payloads:
            try:
                persistence.append_replicated(payload)
            except DurabilityError as exc:
                raise DurabilityError(f"{exc} (the local log {DIVERGED})") from exc
        persistence.sync_now()
        return len(payloads), persistence.next_offset - 1
    finally:
        persistence.close()


DIVERGED = "has diverged"
"""In the message of the ``DurabilityError`` of a local log the stream does not continue."""


def diverged(error: Exception) -> bool:
    """Whether ``error`` is :func:`catch_up`'s "the local log diverged from the stream"."""
    return DIVERGED in str(error)


def set_aside(data_dir: str | os.PathLike[str]) -> Path:
    """Move a diverged node's ``log/``, ``snapshots/`` and ``ledger/`` to
    ``stale-<time>/``; its path.

    Nothing is deleted: the unacknowledged tail stays there for inspection. The ledger's
    files describe that tail (a checkpoint over it would read as a rollback of the rebuilt
    log), so they go too, except the node's signing key, which is copied back: the node
    signs with the same key when it leads again (docs/design/cluster.md, "The ledger").
    """
    root = Path(data_dir)
    aside = root / f"stale-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    aside.mkdir()
    for name in ("log", "snapshots", LEDGER_DIR):
        if (root / name).exists():
            (root / name).rename(aside / name)
    key = aside / LEDGER_DIR / KEY_FILE
    if key.exists():
        (root / LEDGER_DIR).mkdir(mode=0o700)
        shutil.copy2(key, root / LEDGER_DIR / KEY_FILE)
    return aside
