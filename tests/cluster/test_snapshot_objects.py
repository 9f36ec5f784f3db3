"""Reading a shipped snapshot back without a consumer (``snapshots._read_object``), on a
real three-server JetStream cluster: what nats-py's ``ObjectStore.put`` wrote comes back
byte for byte, chunk by chunk; an object whose chunks went missing is refused."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("nats", reason="nats-py is not installed: the cluster extra")

from cosmictron.cluster.connection import NatsConnection
from cosmictron.cluster.snapshots import SNAPSHOT_BUCKET, _read_object, _store
from cosmictron.testing.nats import NatsCluster

STREAM = f"OBJ_{SNAPSHOT_BUCKET}"


def test_an_object_of_many_chunks_reads_back_whole_between_others(
    nats_cluster: NatsCluster,
) -> None:
    """Three objects put one after another (their chunks interleave in the stream with
    the others' metas); each reads back exactly, the middle one of several chunks, and
    an empty one as empty bytes."""
    big = os.urandom(300_000)  # nats-py's chunks are 128 KiB: three of them
    connection = NatsConnection(nats_cluster.urls, "reader").connect()
    try:

        async def scenario() -> list[bytes]:
            store = await _store(connection, 3)
            await store.put("db/1", b"first")
            await store.put("db/2", big)
            await store.put("db/3", b"")
            return [await _read_object(connection.js, store, f"db/{n}") for n in (1, 2, 3)]

        read = connection.run(scenario(), 60.0)
    finally:
        connection.close()
    assert read == [b"first", big, b""]


def test_an_object_missing_a_chunk_is_refused(nats_cluster: NatsCluster) -> None:
    """A chunk deleted from the stream: the read fails instead of returning a short
    snapshot (the seed's caller then reports the store unavailable and tries later)."""
    from nats.js.errors import NotFoundError

    connection = NatsConnection(nats_cluster.urls, "reader").connect()
    try:

        async def scenario() -> None:
            store = await _store(connection, 3)
            await store.put("db/9", os.urandom(200_000))
            info = await store.get_info("db/9")
            chunk = await connection.js.get_msg(
                STREAM, seq=1, subject=f"$O.{SNAPSHOT_BUCKET}.C.{info.nuid}", next=True
            )
            await connection.js.delete_msg(STREAM, chunk.seq)
            with pytest.raises(NotFoundError):
                await _read_object(connection.js, store, "db/9")

        connection.run(scenario(), 60.0)
    finally:
        connection.close()
