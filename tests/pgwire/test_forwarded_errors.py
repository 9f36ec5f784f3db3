"""An error the leader answers to a follower's forwarded write has the SQLSTATE (and the
position) the leader's own port would give (``sqlstate.sqlstate_of_document``).

A follower gets the leader's error as its JSON document, ``{"code", "message"}`` and the
HTTP status; each error here is raised by a real database, and its SQLSTATE from the
exception itself must equal the one rebuilt from its document.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import cosmictron
from cosmictron.errors import ClusterUnavailable, CosmictronError, NotLeader
from cosmictron.server.pgwire.sqlstate import (
    CANNOT_CONNECT_NOW,
    SERIALIZATION_FAILURE,
    sqlstate_of,
    sqlstate_of_document,
)
from cosmictron.values import Identity
from tests.cluster.test_nodes import MODULE as ITEM_MODULE

PG_MODULE = (
    ITEM_MODULE
    + """

@table(name="note", public=True)
class Note:
    id: int = field(primary_key=True)
    body: str = ""


@table(name="secret")
class Secret:
    id: int = field(primary_key=True)
"""
)
"""The cluster tests' module (``item``) with a public ``note`` and a private ``secret``;
``tests/cluster/test_pg_followers.py`` uses it too."""


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cosmictron.Database]:
    path = tmp_path_factory.mktemp("forwarded")
    (path / "app.py").write_text(PG_MODULE)
    database = cosmictron.Database.open(path / "data", module=str(path / "app.py"))
    database.sql("INSERT INTO note (id, body) VALUES (1, 'one')")
    try:
        yield database
    finally:
        database.close()


STRANGER = Identity(b"\x07" * 32)


@pytest.mark.parametrize(
    ("text", "sender", "expected"),
    [
        ("INSERT INTO note (id, bdy) VALUES (2, 'x')", None, "42703"),
        ("INSERT INTO nte (id) VALUES (2)", None, "42P01"),
        ("INSERT INTO note (id) VALUES (1)", None, "23505"),
        ("INSERT INTO note (id, body) VALUES (2, 3)", None, "42804"),
        ("INSERT INTO note (id) VALUS (2)", None, "42601"),
        ("UPDATE note SET body = 'x' WHERE\n  nope = 1", None, "42703"),
        ("INSERT INTO secret (id) VALUES (1)", STRANGER, "42501"),
        ("DELETE FROM secret", STRANGER, "42501"),
    ],
)
def test_a_forwarded_error_maps_as_the_leaders_own(
    db: cosmictron.Database, text: str, sender: Identity | None, expected: str
) -> None:
    with pytest.raises(CosmictronError) as raised:
        db.sql(text, sender=sender)
    error = raised.value
    local = sqlstate_of(error, text)
    forwarded = sqlstate_of_document(error.code, str(error), error.http_status, text)
    assert local.code == expected, local
    assert (forwarded.code, forwarded.message, forwarded.position) == (
        local.code,
        local.message,
        local.position,
    )


def test_a_changed_block_is_40001_from_its_document_too(db: cosmictron.Database) -> None:
    """``BlockChanged`` shares ``conflict`` with a duplicate key; its words tell it apart."""
    with pytest.raises(CosmictronError) as raised:
        db.sql_block([("UPDATE note SET body = 'x' WHERE id = 1", None)], expect=[0])
    error = raised.value
    assert error.code == "conflict"
    assert sqlstate_of(error).code == SERIALIZATION_FAILURE
    forwarded = sqlstate_of_document(error.code, str(error), error.http_status)
    assert forwarded.code == SERIALIZATION_FAILURE
    assert db.sql("SELECT body FROM note WHERE id = 1").rows == [("one",)]  # not applied


@pytest.mark.parametrize("error", [ClusterUnavailable("no quorum"), NotLeader("b leads now")])
def test_no_leader_or_no_quorum_is_57p03_saying_to_retry(error: ClusterUnavailable) -> None:
    for mapped in (
        sqlstate_of(error),
        sqlstate_of_document(error.code, str(error), error.http_status),
    ):
        assert mapped.code == CANNOT_CONNECT_NOW
        assert mapped.message.startswith(str(error)) and "retry" in mapped.message
