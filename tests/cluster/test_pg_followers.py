"""DML over a follower's PostgreSQL port (issue 19; DESIGN §9, §10): forwarded to the leader.

Three NATS servers and three nodes, each with a PostgreSQL port; ``a`` leads ``app``,
the clients connect to ``b``, a follower. Shown here: autocommit writes (simple and
extended protocol, with parameters) answer the leader's row counts and are read back at
once on ``b`` (read-your-writes) and then on every node; a ``BEGIN … COMMIT`` block reads
its own writes, shows nothing to others before ``COMMIT`` and applies whole at it; a
``ROLLBACK`` leaves nothing; the leader's errors arrive with their SQLSTATE (and
position); a non-owner's write is 42501 and changes nothing; with NATS's quorum lost a
write is 57P03 saying to retry while reads still serve.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmictron.testing.nats import NatsCluster
from tests.cluster.test_followers import http, stop_all, three_nodes, wait_for
from tests.pgwire.conftest import PG, pg_address
from tests.pgwire.test_forwarded_errors import PG_MODULE
from tests.pgwire.test_psql import psql
from tests.server.conftest import Server

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (dev extra)")


def rows(node: Server, query: str) -> list[dict[str, Any]]:
    """``query``'s rows as ``node`` serves them over HTTP (as its owner: the operator)."""
    _, token = node.operator()
    status, body, _ = http(
        node, "POST", "/v1/database/app/sql", query, {"Authorization": f"Bearer {token}"},
        "text/plain",
    )  # fmt: skip
    assert status == 200, body
    return list(body["rows"])


def on_every_node(nodes: list[Server], query: str, expected: list[dict[str, Any]]) -> None:
    """Wait until every node's replica answers ``query`` with ``expected``."""
    for node in nodes:
        wait_for(f"{node.url}: {query} -> {expected}", lambda n=node: rows(n, query) == expected)


def follower_pg(nodes: list[Server], token: str) -> PG:
    """The PostgreSQL port of ``b`` (a follower of ``app``), for ``token``'s sessions."""
    host, port = pg_address(nodes[1])
    return PG(nodes[1], host, port, token, token, "app")


@pytest.fixture
def nodes(tmp_path: Path, nats_cluster: NatsCluster) -> Iterator[list[Server]]:
    """Nodes ``a`` (leading ``app``), ``b`` and ``c``, each with a PostgreSQL port."""
    started = three_nodes(tmp_path, nats_cluster, "--pg-listen", "127.0.0.1:0", module=PG_MODULE)
    try:
        yield started
    finally:
        stop_all(started)


def test_dml_over_a_followers_postgresql_port_is_applied_by_the_leader(
    nodes: list[Server],
) -> None:
    a, b, _c = nodes
    _, owner = a.operator()
    pg = follower_pg(nodes, owner)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("INSERT INTO item (id) VALUES (1), (2)").rowcount == 2
        # Read-your-writes: the next read in the session, on the follower, sees it.
        assert conn.execute("SELECT id FROM item ORDER BY id").fetchall() == [(1,), (2,)]
        # The extended protocol, with parameters (psycopg binds them server-side).
        cur = conn.execute("INSERT INTO note (id, body) VALUES (%s, %s)", (7, "seven"))
        assert cur.rowcount == 1
        cur = conn.execute("UPDATE note SET body = %s WHERE id >= %s", ("SEVEN", 0))
        assert cur.rowcount == 1
        assert conn.execute("DELETE FROM item WHERE id = %s", (2,)).rowcount == 1
        cur = conn.execute("INSERT INTO item (id) VALUES (%s) RETURNING id", (3,))
        assert cur.fetchall() == [(3,)]
        assert conn.execute("SELECT id FROM item ORDER BY id").fetchall() == [(1,), (3,)]
    assert rows(a, "SELECT id FROM item") in ([{"id": 1}, {"id": 3}], [{"id": 3}, {"id": 1}])
    on_every_node(nodes, "SELECT id, body FROM note", [{"id": 7, "body": "SEVEN"}])

    # A block: its own reads see its writes; nobody else does before COMMIT.
    with psycopg.connect(pg.dsn()) as conn:
        assert conn.execute("INSERT INTO note (id, body) VALUES (%s, 'one')", (1,)).rowcount
        assert conn.execute("UPDATE note SET body = 'uno' WHERE id = 1").rowcount == 1
        got = conn.execute("SELECT body FROM note WHERE id = 1").fetchall()
        assert got == [("uno",)]
        assert rows(a, "SELECT id FROM note WHERE id = 1") == []  # not yet, on the leader
        assert rows(b, "SELECT id FROM note WHERE id = 1") == []
        conn.commit()
        assert conn.execute("SELECT body FROM note WHERE id = 1").fetchall() == [("uno",)]
        conn.commit()
        # ROLLBACK: nothing of the block is applied anywhere.
        conn.execute("INSERT INTO note (id, body) VALUES (2, 'two')")
        conn.execute("DELETE FROM note WHERE id = 7")
        assert conn.execute("SELECT id FROM note ORDER BY id").fetchall() == [(1,), (2,)]
        conn.rollback()
        assert conn.execute("SELECT id FROM note ORDER BY id").fetchall() == [(1,), (7,)]
        conn.commit()
    expected = [{"id": 1, "body": "uno"}, {"id": 7, "body": "SEVEN"}]
    on_every_node(nodes, "SELECT id, body FROM note ORDER BY id", expected)

    # The simple protocol, a whole block in one message (psql -c).
    if shutil.which("psql") is None:
        print("psql is not installed: its simple-protocol block is not run")
    else:
        done = psql(pg, "BEGIN; INSERT INTO item (id) VALUES (10); "
                        "INSERT INTO item (id) VALUES (11); COMMIT")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["BEGIN", "INSERT", "0", "1", "INSERT", "0", "1",
                                       "COMMIT"], done.stdout  # fmt: skip
        on_every_node(nodes, "SELECT id FROM item WHERE id >= 10 ORDER BY id",
                      [{"id": 10}, {"id": 11}])  # fmt: skip


def test_a_followers_postgresql_port_answers_the_leaders_errors_and_rights(
    nodes: list[Server], nats_cluster: NatsCluster
) -> None:
    a, b, _c = nodes
    _, owner = a.operator()
    _, stranger = b.identity()  # a token of another identity (tokens are cluster-wide)
    pg = follower_pg(nodes, owner)
    with psycopg.connect(pg.dsn(stranger), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("INSERT INTO secret (id) VALUES (1)")
        assert "only the owner" in str(refused.value)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM note WHERE id = %s", (1,))
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        assert conn.execute("INSERT INTO secret (id) VALUES (1)").rowcount == 1
        with pytest.raises(psycopg.errors.UniqueViolation) as duplicate:
            conn.execute("INSERT INTO secret (id) VALUES (%s)", (1,))
        leader_says = http(
            a, "POST", "/v1/database/app/sql", "INSERT INTO secret (id) VALUES (1)",
            {"Authorization": f"Bearer {owner}"}, "text/plain",
        )  # fmt: skip
        assert leader_says[0] == 409
        assert str(duplicate.value) == leader_says[1]["error"]["message"]
        text = "INSERT INTO note (id, bdy) VALUES (5, 'x')"
        with pytest.raises(psycopg.errors.UndefinedColumn) as unknown:
            conn.execute(text)
        assert unknown.value.diag.statement_position == str(text.index("bdy") + 1)
    assert rows(a, "SELECT id FROM secret") == [{"id": 1}]
    assert rows(a, "SELECT id FROM note") == []

    # A block whose statement fails is failed (25P02) and applies nothing.
    with psycopg.connect(pg.dsn()) as conn:
        conn.execute("INSERT INTO note (id) VALUES (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO secret (id) VALUES (1)")
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("SELECT id FROM note")
        conn.rollback()
    on_every_node(nodes, "SELECT id FROM note", [])

    # A block whose write no longer changes the rows it reported: 40001 at COMMIT.
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("INSERT INTO note (id, body) VALUES (3, 'three')")
    with psycopg.connect(pg.dsn()) as conn:
        assert conn.execute("UPDATE note SET body = 'x' WHERE id = 3").rowcount == 1
        status, body, _ = http(
            a, "POST", "/v1/database/app/sql", "DELETE FROM note WHERE id = 3",
            {"Authorization": f"Bearer {owner}"}, "text/plain",
        )  # fmt: skip
        assert status == 200, body
        with pytest.raises(psycopg.errors.SerializationFailure) as changed:
            conn.commit()
        assert "nothing was applied" in str(changed.value)
    on_every_node(nodes, "SELECT id FROM note", [])

    # NATS loses its quorum: a write is 57P03 saying to retry; reads still serve.
    nats_cluster.kill(1)
    nats_cluster.kill(2)
    started = time.monotonic()
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.CannotConnectNow) as unavailable:
            conn.execute("INSERT INTO note (id) VALUES (2)")
        assert "retry" in str(unavailable.value), unavailable.value
        print(f"quorum lost: the write was refused after {time.monotonic() - started:.1f}s")
        assert conn.execute("SELECT id FROM secret").fetchall() == [(1,)]
