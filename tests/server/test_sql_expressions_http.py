"""Functions, CASE, CAST and RETURNING through a real server's SQL route.

The quickstart module is deployed over HTTP; the owner's DML replies carry the
RETURNING rows and an honest ``rows_affected``, a SELECT with functions answers anyone,
and a bad function call is a 400 naming it.
"""

from __future__ import annotations

from tests.server.conftest import EXAMPLE, Server


def test_functions_and_returning_over_http(server: Server) -> None:
    _, token = server.deployer()
    assert server.deploy("quick", EXAMPLE.read_bytes(), token).status == 201
    inserted = server.request(
        "POST",
        "/v1/database/quick/sql",
        "INSERT INTO task (title, priority) VALUES ('ship it', 3) RETURNING id, UPPER(title) AS t",
        token,
    )
    assert inserted.status == 200, inserted
    assert inserted.body["rows_affected"] == 1 and inserted.body["columns"] == ["id", "t"]
    (row,) = inserted.body["rows"]
    assert row["t"] == "SHIP IT" and isinstance(row["id"], int)
    query = {
        "query": "SELECT CASE WHEN priority > :p THEN 'high' ELSE 'low' END AS level, "
        "CAST(priority AS TEXT) AS p, COALESCE(NULLIF(title, ''), '?') AS title "
        "FROM task WHERE id = :id",
        "params": {"p": 2, "id": row["id"]},
    }
    answered = server.request("POST", "/v1/database/quick/sql", query)  # anyone may read
    assert answered.status == 200, answered
    assert answered.body["rows"] == [{"level": "high", "p": "3", "title": "ship it"}]
    deleted = server.request(
        "POST",
        "/v1/database/quick/sql",
        "DELETE FROM task WHERE priority = 3 RETURNING title",
        token,
    )
    assert deleted.body["rows_affected"] == 1 and deleted.body["rows"] == [{"title": "ship it"}]
    bad = server.request("POST", "/v1/database/quick/sql", "SELECT LOWER(priority) FROM task")
    assert bad.status == 400 and bad.body["error"]["code"] == "sql_error"
    assert "argument 1 of LOWER() must be text" in bad.body["error"]["message"]
