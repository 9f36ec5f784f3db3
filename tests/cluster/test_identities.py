"""Cluster-wide identities (issue 19, part 4): a token minted on one node works on every node.

Three NATS servers and two ``cosmictron-cli start --cluster`` nodes with their own data
directories. The nodes share one token-signing key and one operator through JetStream KV
(``cluster/keys.py``): a token minted on the standby is accepted by the leader and after
a failover the other way round; the database's owner (the operator who deployed it) may
update its module on the new leader while a stranger may not; row-level security shows
each identity its own rows on either node.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_nodes import start_node
from tests.server.conftest import Server, stop_server

MODULE = """
from cosmictron import *

@table(public=True)
class Note:
    id: int = field(primary_key=True, auto_inc=True)
    author: Identity = field(default=Identity.zero(), index="hash")
    text: str = ""

MINE = visibility_filter("SELECT * FROM note WHERE author = :sender")

@reducer
def write(ctx: ReducerContext, text: str) -> None:
    ctx.db.note.insert(Note(author=ctx.sender, text=text))
"""

UPDATED = MODULE + "\n\n@reducer\ndef ping(ctx: ReducerContext) -> int:\n    return 1\n"


def mine(node: Server, token: str) -> list[str]:
    reply = node.request("POST", "/v1/database/notes/sql", "SELECT text FROM note", token)
    assert reply.status == 200, reply
    return sorted(row["text"] for row in reply.body["rows"])


def write(node: Server, text: str, token: str) -> int:
    return node.request("POST", "/v1/database/notes/call/write", [text], token).status


def test_tokens_owners_and_row_security_hold_on_every_node(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    a = start_node(tmp_path, nats_cluster, "a")
    b = start_node(tmp_path, nats_cluster, "b")
    try:
        operator_a, token_op = a.operator()
        operator_b, token_op_b = b.operator()
        assert operator_a == operator_b and token_op == token_op_b  # one operator
        assert a.deploy("notes", MODULE, token_op).status in (200, 201)
        alice, token_alice = b.identity()  # minted by the standby ...
        _, token_bob = a.identity()
        assert write(a, "alice's", token_alice) == 200  # ... accepted by the leader
        assert write(a, "bob's", token_bob) == 200
        who = a.request("GET", "/v1/identity", token=token_alice)
        assert who.status == 200 and who.body["identity"] == alice, who
        assert mine(a, token_alice) == ["alice's"] and mine(a, token_bob) == ["bob's"]
        # A token no node signed is refused on every node, as on one server.
        forged = token_alice[:-4] + ("AAAA" if not token_alice.endswith("AAAA") else "BBBB")
        assert a.request("GET", "/v1/identity", token=forged).status == 401
        # The right to deploy, granted on a, holds on b; revoked on b, it is gone on a.
        assert a.grant_deploy(alice).status == 200
        created = b.deploy("other", MODULE, token_alice)
        assert created.status == 201, created
        revoked = b.request("DELETE", f"/v1/grants/deploy/{alice}", token=token_op)
        assert revoked.status == 200 and revoked.body["changed"] is True, revoked
        revoked_at = time.monotonic()
        while a.request("GET", "/v1/identity", token=token_alice).body["rights"]:
            assert time.monotonic() - revoked_at < 10, "a's watch never applied the revoke"
            time.sleep(0.1)
        assert a.deploy("third", MODULE, token_alice).status == 403

        a.process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        while write(b, "bob's second", token_bob) != 200:  # minted by the dead node
            assert time.monotonic() - killed_at < 30, "b never took over"
            time.sleep(0.2)
        assert mine(b, token_bob) == ["bob's", "bob's second"]
        assert mine(b, token_alice) == ["alice's"]
        # The owner recorded in the catalogue is the same identity here: the operator
        # (whose token b read from KV) may update the module, a stranger may not.
        refused = b.deploy("notes", UPDATED, token_alice)
        assert refused.status == 403, refused
        assert b.deploy("notes", UPDATED, token_op).status == 200
        reply = b.request("POST", "/v1/database/notes/call/ping", [], token_bob)
        assert reply.status == 200 and reply.body["return_value"] == 1, reply
    finally:
        if a.process.poll() is None:
            stop_server(a)
        else:
            a.process.communicate(timeout=30)
        stop_server(b)


def test_nodes_racing_to_offer_their_keys_all_end_with_one(nats_cluster: NatsCluster) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from cosmictron.cluster.connection import NatsConnection
    from cosmictron.cluster.keys import ClusterAuthority, share_authority

    connections = [NatsConnection(nats_cluster.urls, f"n{i}").connect() for i in range(4)]
    try:
        offers = [ClusterAuthority(f"key {i}".encode(), f"token {i}") for i in range(4)]
        with ThreadPoolExecutor(4) as pool:
            shared = list(pool.map(share_authority, connections, offers))
        assert len(set(shared)) == 1 and shared[0] in offers
        # A node starting later gets the same, whatever it offers.
        late = share_authority(connections[0], ClusterAuthority(b"late", "late"))
        assert late == shared[0]
    finally:
        for connection in connections:
            connection.close()
