"""The cluster benchmarks' set-up: three ``nats-server`` on loopback, connections to them,
and the one-row module the log benchmarks call (issue 19).

``cluster.py``, ``cluster_log.py`` and ``cluster_catchup.py`` all need the same real
JetStream cluster (``cosmictron.testing.nats.NatsCluster``: file storage, ``sync_interval:
always``, every server ready for R3 streams) and client connections that are closed
whatever the run raises; each had its own copy. Needs the ``cluster`` extra.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

NATS_SERVERS = 3
"""R3: a record is acknowledged once two of the three servers stored it."""


@contextlib.contextmanager
def nats_servers(root: Path) -> Iterator[Any]:
    """Three JetStream servers storing under ``root/nats``, stopped on exit."""
    from cosmictron.testing.nats import NatsCluster

    with NatsCluster(root / "nats", NATS_SERVERS) as nats:
        yield nats


@contextlib.contextmanager
def nats_connection(urls: list[str], name: str) -> Iterator[Any]:
    """A connected ``NatsConnection`` (client name ``name``), closed on exit."""
    from cosmictron.cluster.connection import NatsConnection

    connection = NatsConnection(urls, name).connect()
    try:
        yield connection
    finally:
        connection.close()


def item_module(note_length: int = 0) -> str:
    """The module of the log benchmarks: ``add(n)`` inserts one ``item`` row; a note of
    ``note_length`` characters pads each record (a catch-up copies records, not calls)."""
    note_column = "\n    note: str" if note_length else ""
    note_value = f', note="x" * {note_length}' if note_length else ""
    return f"""
from cosmictron import ReducerContext, field, reducer, table


@table(name="item")
class Item:
    id: int = field(primary_key=True){note_column}


@reducer
def add(ctx: ReducerContext, n: int) -> None:
    ctx.db.item.insert(Item(id=n{note_value}))
"""
