"""The HTTP routes end to end: a real server process, real HTTP requests."""

from __future__ import annotations

import pytest

from tests.server.conftest import EXAMPLE, Server, start_server, stop_server

PRIVATE_MODULE = """
from cosmictron import *

@table(public=True)
class Note:
    id: int = field(primary_key=True, auto_inc=True)
    owner: Identity = field(default=Identity.zero())
    text: str = ""

@table
class Secret:
    id: int = field(primary_key=True)

MINE = visibility_filter("SELECT * FROM note WHERE owner = :sender")

@reducer
def write(ctx: ReducerContext, text: str) -> int:
    return ctx.db.note.insert(Note(owner=ctx.sender, text=text)).id

@reducer
def whoami(ctx: ReducerContext) -> Identity:
    return ctx.sender

@reducer
def at(ctx: ReducerContext, when: Timestamp, who: Identity, data: bytes) -> str:
    return f"{when.isoformat()} {who.hex()[:4]} {data.hex()}"
"""


@pytest.fixture
def deployed(server: Server) -> tuple[Server, str]:
    _, token = server.deployer()
    reply = server.deploy("quick", EXAMPLE.read_bytes(), token)
    assert reply.status == 201, reply
    assert reply.body["created"] is True and reply.body["tx_offset"] >= 1
    return server, token


def test_health_and_identity(server: Server) -> None:
    health = server.request("GET", "/v1/health")
    assert health.status == 200 and health.body["status"] == "ok"
    identity, token = server.identity()
    assert len(identity) == 64 and token.count(".") == 2
    me = server.request("GET", "/v1/identity", token=token)
    assert me.body == {"identity": identity, "anonymous": False, "operator": False, "rights": []}
    assert server.request("GET", "/v1/identity").body["anonymous"] is True


def test_call_with_good_and_bad_arguments(deployed: tuple[Server, str]) -> None:
    server, _ = deployed
    good = server.request("POST", "/v1/database/quick/call/add_task", ["write docs", 2])
    assert good.status == 200
    assert good.body["return_value"] == {
        "id": 2,
        "title": "write docs",
        "done": False,
        "priority": 2,
    }
    by_name = server.request("POST", "/v1/database/quick/call/add_task", {"title": "t"})
    assert by_name.status == 200 and by_name.body["tx_offset"] == good.body["tx_offset"] + 1
    cases = [
        ("/v1/database/quick/call/add_task", ["a", 1, 2], 400, "takes 2 arguments"),
        ("/v1/database/quick/call/add_task", ["a", "b"], 400, "argument 'priority'"),
        ("/v1/database/quick/call/add_task", {"titel": "a"}, 400, "no argument 'titel'"),
        ("/v1/database/quick/call/add_task", '"text"', 400, "JSON array"),
        ("/v1/database/quick/call/add_task", [""], 400, "a task needs a title"),
        ("/v1/database/quick/call/nope", [], 404, "no reducer named 'nope'"),
        ("/v1/database/absent/call/add_task", [], 404, "database 'absent' does not exist"),
    ]
    for path, body, status, message in cases:
        reply = server.request("POST", path, body)
        assert reply.status == status, (path, body, reply)
        assert message in reply.body["error"]["message"], reply
    malformed = server.request("POST", "/v1/database/quick/call/add_task", b"[1,", None, None)
    assert malformed.status == 400 and "not valid JSON" in malformed.body["error"]["message"]
    # Failed calls left no trace: the next committed offset follows the last good one.
    after = server.request("POST", "/v1/database/quick/call/add_task", ["again"])
    assert after.body["tx_offset"] == by_name.body["tx_offset"] + 1


def test_sql_as_owner_and_as_anonymous(deployed: tuple[Server, str]) -> None:
    server, token = deployed
    rows = server.request("POST", "/v1/database/quick/sql", "SELECT id, title FROM task")
    assert rows.status == 200 and rows.body["columns"] == ["id", "title"]
    assert rows.body["rows"][0] == {"id": 1, "title": "Read the Cosmictron tutorial"}
    query = {"query": "SELECT title FROM task WHERE id = :id", "params": {"id": 1}}
    assert server.request("POST", "/v1/database/quick/sql", query).body["rows"] == [
        {"title": "Read the Cosmictron tutorial"}
    ]
    denied = server.request("POST", "/v1/database/quick/sql", "DELETE FROM task")
    assert denied.status == 403 and denied.body["error"]["code"] == "permission_denied"
    done = server.request("POST", "/v1/database/quick/sql", "DELETE FROM task", token)
    assert done.status == 200 and done.body["rows_affected"] == 1
    bad = server.request("POST", "/v1/database/quick/sql", "SELECT nope FROM task")
    assert bad.status == 400 and "unknown column 'nope'" in bad.body["error"]["message"]
    empty = server.request("POST", "/v1/database/quick/sql", "")
    assert empty.status == 400 and "empty" in empty.body["error"]["message"]


def test_a_sql_transaction_applies_all_its_statements_or_none(
    deployed: tuple[Server, str],
) -> None:
    server, token = deployed
    path = "/v1/database/quick/sql"
    titles = "SELECT title FROM task ORDER BY title"
    before = server.request("POST", path, titles, token).body["rows"]
    insert = {"query": "INSERT INTO task (title) VALUES (:t)", "params": {"t": "b"}}
    rename = {"query": "UPDATE task SET title = 'c' WHERE title = 'b'"}
    tx = {"statements": [insert, rename, {"query": titles}]}
    done = server.request("POST", path, tx, token)
    assert done.status == 200, done
    assert [r["rows_affected"] for r in done.body["results"]] == [1, 1, None]
    assert {"title": "c"} in done.body["results"][2]["rows"]  # the last reads the writes
    assert done.body["tx_offset"] > 0
    after = server.request("POST", path, titles, token).body["rows"]
    assert sorted(r["title"] for r in after) == sorted([r["title"] for r in before] + ["c"])
    duplicate = {"query": "INSERT INTO task (title) VALUES ('c')"}
    failed = server.request("POST", path, {"statements": [insert, duplicate]}, token)
    assert failed.status == 409, failed  # 'b' is not inserted either
    changed = server.request("POST", path, {"statements": [insert], "expect": [0]}, token)
    assert changed.status == 409 and "nothing was applied" in changed.body["error"]["message"]
    assert server.request("POST", path, titles, token).body["rows"] == after
    reads = server.request("POST", path, {"statements": [{"query": titles}]}, token)
    assert reads.status == 200 and reads.body["tx_offset"] is None  # no empty record
    assert reads.body["results"][0]["rows"] == after
    anonymous = server.request("POST", path, {"statements": [insert]})
    assert anonymous.status == 403, anonymous
    for bad, words in [
        ({"statements": []}, "non-empty array"),
        ({"statements": "INSERT"}, "non-empty array"),
        ({"statements": [insert], "expect": [1, 2]}, "one row count"),
        ({"statements": [insert], "expect": [-1]}, "one row count"),
        ({"statements": [insert], "atomic": True}, "unknown key"),
        ({"statements": [{"text": "x"}]}, '{"query"'),
    ]:
        refused = server.request("POST", path, bad, token)
        assert refused.status == 400 and words in refused.body["error"]["message"], refused
    assert server.request("POST", path, titles, token).body["rows"] == after


def test_permissions_identity_values_and_row_level_security(server: Server) -> None:
    owner, owner_token = server.deployer()
    alice, alice_token = server.deployer()
    assert server.deploy("notes", PRIVATE_MODULE, owner_token).status == 201
    over = server.deploy("notes", PRIVATE_MODULE, alice_token)  # she may deploy, not over this
    assert over.status == 403 and "belongs to another identity" in over.body["error"]["message"]
    anonymous_deploy = server.request("PUT", "/v1/database/other", PRIVATE_MODULE)
    assert anonymous_deploy.status == 401
    assert server.request("DELETE", "/v1/database/notes", token=alice_token).status == 403
    assert server.request("DELETE", "/v1/database/notes").status == 403
    call = server.request("POST", "/v1/database/notes/call/whoami", [], alice_token)
    assert call.body["return_value"] == alice
    server.request("POST", "/v1/database/notes/call/write", ["alice's"], alice_token)
    server.request("POST", "/v1/database/notes/call/write", ["the owner's"], owner_token)
    mine = server.request("POST", "/v1/database/notes/sql", "SELECT text FROM note", alice_token)
    assert mine.body["rows"] == [{"text": "alice's"}]
    everything = server.request(
        "POST", "/v1/database/notes/sql", "SELECT text FROM note", owner_token
    )
    assert len(everything.body["rows"]) == 2
    secret = server.request("POST", "/v1/database/notes/sql", "SELECT * FROM secret", alice_token)
    assert secret.status == 403 and "private" in secret.body["error"]["message"]
    # Nor does the schema name the private table to anyone but the owner.
    for token, sees_secret in ((alice_token, False), (None, False), (owner_token, True)):
        tables = server.request("GET", "/v1/database/notes/schema", token=token).body["tables"]
        assert "note" in {t["name"] for t in tables}
        assert ("secret" in {t["name"] for t in tables}) is sees_secret
    values = server.request(
        "POST",
        "/v1/database/notes/call/at",
        ["2026-01-02T03:04:05.000006Z", owner, "00ff"],
    )
    assert values.body["return_value"] == f"2026-01-02T03:04:05.000006Z {owner[:4]} 00ff"
    wrong = server.request("POST", "/v1/database/notes/call/at", ["yesterday", owner, "00"])
    assert wrong.status == 400 and "argument 'when'" in wrong.body["error"]["message"]
    bad_token = server.request("GET", "/v1/identity", token="a.b.c")
    assert bad_token.status == 401 and "not valid" in bad_token.body["error"]["message"]


def test_deploy_refusals_and_delete(server: Server) -> None:
    _, token = server.deployer()
    bad_name = server.deploy("Bad.Name", PRIVATE_MODULE, token)
    assert bad_name.status == 400 and "not valid" in bad_name.body["error"]["message"]
    broken = server.deploy("broken", "import nonexistent_package_xyz\n", token)
    assert broken.status == 400 and "nonexistent_package_xyz" in broken.body["error"]["message"]
    assert server.request("GET", "/v1/database/broken/schema").status == 404
    assert server.deploy("notes", PRIVATE_MODULE, token).status == 201
    schema = server.request("GET", "/v1/database/notes/schema", token=token).body
    assert [t["name"] for t in schema["tables"]] == ["note", "secret"]
    listed = server.request("GET", "/v1/database", token=token).body["databases"]
    assert listed == [{"name": "notes", "owner": schema["owner"], "mine": True}]
    assert server.request("DELETE", "/v1/database/notes", token=token).status == 200
    assert server.request("GET", "/v1/database/notes/schema").status == 404
    assert not (server.data_dir / "databases" / "notes").exists()
    assert server.request("GET", "/v1/nowhere").status == 404


def test_restart_brings_databases_back(tmp_path) -> None:
    first = start_server(tmp_path / "data", "--profile", "development")
    _, token = first.deployer()
    assert first.deploy("quick", EXAMPLE.read_bytes(), token).status == 201
    offset = first.request("POST", "/v1/database/quick/call/add_task", ["kept"]).body["tx_offset"]
    stop_server(first)
    second = start_server(tmp_path / "data", "--profile", "development")
    try:
        rows = second.request("POST", "/v1/database/quick/sql", "SELECT title FROM task")
        assert {"title": "kept"} in rows.body["rows"]
        assert second.request("GET", "/v1/database/quick/schema").body["tx_offset"] == offset
        # The server key persisted: the old token still proves the same identity.
        assert second.request("GET", "/v1/identity", token=token).body["anonymous"] is False
    finally:
        stop_server(second)
