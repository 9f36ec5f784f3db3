"""Semantic memory against a real server: remember and recall over HTTP, SQL's
VECTOR_DISTANCE with a parameter, the private table refused to strangers, and its
changes (a new memory, a superseded one) pushed to an SDK subscriber."""

from __future__ import annotations

import time
import urllib.request
from typing import Any

from cosmictron.agents import HashingEmbedder
from cosmictron.client import connect_sync
from tests.agents.memory_modules import MEMORY_APP
from tests.server.conftest import Server, server

__all__ = ["server"]  # the fixture, shared with tests/server

DB = "memories"
OWNER_TOKENS: dict[str, str] = {}
"""The owner's token per server data directory: memory outside a caller's own namespace
is the owner's and its workers' (agents/rights.py), so calls default to the owner."""


def deploy(server: Server) -> str:
    _, token = server.deployer()
    reply = server.deploy(DB, MEMORY_APP, token)
    assert reply.status == 201, reply
    OWNER_TOKENS[str(server.data_dir)] = token
    return token


def call(server: Server, reducer: str, *args: Any, token: str | None = None) -> Any:
    token = token or OWNER_TOKENS.get(str(server.data_dir))
    reply = server.request("POST", f"/v1/database/{DB}/call/{reducer}", list(args), token)
    assert reply.status == 200, reply
    return reply.body["return_value"]


def test_remember_and_recall_over_http(server):
    token = deploy(server)
    call(server, "remember_text", "users/ann", "ann likes green tea", '{"kind": "pref"}', "drink")
    call(server, "remember_text", "users/ann", "ann lives in Porto", '{"kind": "fact"}', "city")
    call(server, "remember_text", "users/ann", "ann now likes coffee", '{"kind": "pref"}', "drink")
    hits = call(server, "recall", "users/", "does ann like coffee", 5, '{"kind": "pref"}')
    assert [h["text"] for h in hits] == ["ann now likes coffee"]
    assert hits[0]["valid_to"] is None and 0 < hits[0]["score"] <= 1
    vector = HashingEmbedder().embed(["ann lives in Porto"])[0]
    by_vector = call(server, "recall", "users/ann", "", 1, "{}", None, vector)
    assert [h["text"] for h in by_vector] == ["ann lives in Porto"]
    reply = server.request(
        "POST",
        f"/v1/database/{DB}/sql",
        {
            "query": "SELECT text FROM memory WHERE valid_to IS NULL "
            "ORDER BY VECTOR_DISTANCE(embedding, :q) LIMIT 1",
            "params": {"q": vector},
        },
        token,
    )
    assert reply.status == 200, reply
    assert reply.body["rows"] == [{"text": "ann lives in Porto"}]
    stranger = server.request("POST", f"/v1/database/{DB}/sql", "SELECT text FROM memory")
    assert stranger.status in (403, 404), stranger
    bad = server.request("POST", f"/v1/database/{DB}/call/recall", ["users/", "x", 0], token)
    assert bad.status == 400 and "memory_recall_k_max" in bad.body["error"]["message"], bad


def test_memory_changes_reach_an_sdk_subscriber(server):
    token = deploy(server)
    seen: list[tuple[str, str, bool]] = []
    client = connect_sync(
        DB, "SELECT * FROM memory", server=server.url, token=token, use_saved_token=False
    )
    try:
        client.on_insert(lambda table, row: seen.append(("insert", row.text, row.valid_to is None)))
        client.on_update(
            lambda table, old, new: seen.append(("update", new.text, new.valid_to is None))
        )
        call(server, "remember_text", "u", "the user drinks tea", "{}", "drink")
        call(server, "remember_text", "u", "the user drinks coffee", "{}", "drink")
        deadline = time.monotonic() + 30
        while len(seen) < 3:
            assert time.monotonic() < deadline, seen
            time.sleep(0.05)
    finally:
        client.close()
    assert sorted(seen) == [
        ("insert", "the user drinks coffee", True),
        ("insert", "the user drinks tea", True),
        ("update", "the user drinks tea", False),
    ]


def test_memories_move_through_csv_export_and_bulk_insert_with_their_vectors(server):
    token = deploy(server)
    for text in ["red apples", "blue sky", "green grass"]:
        call(server, "remember_text", "n", text, '{"a": 1}')
    request = urllib.request.Request(server.url + f"/v1/database/{DB}/export/memory?format=csv")
    request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:
        csv_text = response.read().decode()
    assert csv_text.startswith("id,namespace,key,text,metadata,valid_from,valid_to,model_id,")
    reply = server.deploy("copy", MEMORY_APP, token)
    assert reply.status == 201, reply
    loaded = server.request(
        "POST", "/v1/database/copy/bulk_insert/memory", csv_text, token, content_type="text/csv"
    )
    assert loaded.status == 200, loaded

    def table(name: str) -> list[dict[str, Any]]:
        query = "SELECT id, text, metadata, embedding FROM memory ORDER BY id"
        reply = server.request("POST", f"/v1/database/{name}/sql", query, token)
        assert reply.status == 200, reply
        return list(reply.body["rows"])

    original, copied = table(DB), table("copy")
    assert len(original) == 3 and copied == original
    vector = HashingEmbedder().embed(["blue sky"])[0]
    reply = server.request(
        "POST", "/v1/database/copy/call/recall", ["n", "", 1, "{}", None, vector], token
    )
    assert reply.status == 200 and reply.body["return_value"][0]["text"] == "blue sky", reply


def test_a_stranger_keeps_memories_only_in_its_own_namespace(server):
    deploy(server)
    call(server, "remember_text", "users/ann", "ann likes green tea", "{}", "drink")
    stranger, stranger_token = server.identity()
    vector = HashingEmbedder().embed(["green tea"])[0]
    for reducer, args in [
        ("recall", ["users/", "tea", 5]),
        ("recall", ["", "tea", 5]),
        ("remember", ["users/ann", "ann hates tea", vector]),
        ("forget", ["users/ann", "drink"]),
    ]:
        reply = server.request(
            "POST", f"/v1/database/{DB}/call/{reducer}", args, token=stranger_token
        )
        assert reply.status == 400, reply
        assert "is not yours" in reply.body["error"]["message"], reply
    anonymous = server.request("POST", f"/v1/database/{DB}/call/recall", [stranger, "tea", 5])
    assert "anonymous caller" in anonymous.body["error"]["message"], anonymous
    mine = f"{stranger}/notes"
    call(server, "remember", mine, "my own note", vector, token=stranger_token)
    hits = call(server, "recall", stranger, "", 5, "{}", None, vector, token=stranger_token)
    assert [h["text"] for h in hits] == ["my own note"]
    owner_hits = call(server, "recall", "users/", "", 5, "{}", None, vector)
    assert [h["text"] for h in owner_hits] == ["ann likes green tea"]
