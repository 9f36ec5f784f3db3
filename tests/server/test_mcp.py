"""The Model Context Protocol against a real server, with the official SDK's client.

Over streamable HTTP (``POST /v1/database/{name}/mcp``, both protocol eras: the
initialize handshake and 2026-07-28's per-request envelope) and over stdio
(``cosmictron-cli mcp``, started by the SDK's ``stdio_client``): list the tools, run
SQL, call a reducer, search memory, and be refused a private table without the owner's
token. Every refusal is compared with what the HTTP route answers the same caller for
the same request: the MCP tools must allow and refuse exactly what the HTTP API does.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed (pip install '.[mcp]')")

import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from cosmictron.client.settings import FILE_NAME, SavedIdentity, Settings
from tests.server.conftest import CLI, STARTED, Server, start_server, stop_server, strict_loads

MODULE = """
from cosmictron import *
from cosmictron.agents import *

memory_embedder = HashingEmbedder()

@table(name="diary", public=False)
class Diary:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@table(name="letter", public=True)
class Letter:
    id: int = field(primary_key=True, auto_inc=True)
    author: Identity = field(default=Identity.zero(), index="btree")
    text: str = ""

MINE = visibility_filter("SELECT * FROM letter WHERE author = :sender")

@table(name="admin", public=False)
class Admin:
    who: Identity = field(primary_key=True)

@init
def seed(ctx: ReducerContext) -> None:
    ctx.db.admin.insert(Admin(who=ctx.sender))
    ctx.db.diary.insert(Diary(text="the owner's secret"))

@reducer
def send(ctx: ReducerContext, text: str) -> int:
    return ctx.db.letter.insert(Letter(author=ctx.sender, text=text)).id

@reducer
def purge(ctx: ReducerContext) -> int:
    if ctx.db.admin.who.find(ctx.sender) is None:
        raise PermissionError("only an admin may purge")
    count = 0
    for row in list(ctx.db.letter.iter()):
        ctx.db.letter.id.delete(row.id)
        count += 1
    return count
"""

MEMORIES = [
    ("users/ann", "ann likes green tea"),
    ("users/ann", "ann lives in Porto"),
    ("users/bob", "bob plays the cello"),
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    """One server for the module, with database ``app`` deployed by a granted deployer."""
    data = tmp_path_factory.mktemp("mcp") / "server-data"
    server = start_server(data, "--profile", "development")
    STARTED.remove(server.process)  # outlives each test; stopped below, not by tests/conftest.py
    try:
        _, owner = server.deployer()
        assert server.deploy("app", MODULE, owner).status == 201
        for namespace, text in MEMORIES:
            reply = server.request(
                "POST", "/v1/database/app/call/remember_text", [namespace, text], owner
            )
            assert reply.status == 200, reply
        yield server, owner
    finally:
        out = stop_server(server)
        assert server.process.returncode == 0, out


def route(name: str = "app") -> str:
    return f"/v1/database/{name}/mcp"


@asynccontextmanager
async def over_http(server: Server, token: str | None, mode: str = "auto") -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=60) as http:
        transport = streamable_http_client(server.url + route(), http_client=http)
        async with Client(transport, mode=mode) as client:  # type: ignore[arg-type]
            yield client


@asynccontextmanager
async def over_stdio(server: Server, config: Path, mode: str = "auto") -> AsyncIterator[Client]:
    env = {
        **os.environ,
        "COSMICTRON_SERVER": server.url,
        "COSMICTRON_CONFIG_DIR": str(config),
    }
    parameters = StdioServerParameters(command=CLI, args=["mcp", "app"], env=env)
    async with Client(parameters, mode=mode) as client:  # type: ignore[arg-type]
        yield client


def save_token(config: Path, server: Server, identity: str, token: str) -> Path:
    """A CLI settings directory holding ``token`` for ``server`` (as ``identity new`` saves)."""
    Settings(config / FILE_NAME, None, {server.url: SavedIdentity(identity, token)}).save()
    return config


def text_of(result: Any) -> str:
    assert len(result.content) == 1, result
    text: str = result.content[0].text
    return text


def document(result: Any) -> Any:
    assert result.is_error is False, text_of(result)
    return strict_loads(text_of(result))


def error_of(result: Any) -> dict[str, str]:
    assert result.is_error is True, result
    error: dict[str, str] = result.structured_content["error"]
    assert text_of(result) == f"{error['code']}: {error['message']}"
    return error


def http_error(server: Server, path: str, body: Any, token: str | None) -> dict[str, str]:
    reply = server.request("POST", path, body, token)
    assert reply.status >= 400, reply
    found: dict[str, str] = reply.body["error"]
    return {"code": found["code"], "message": found["message"]}


async def exercise(client: Client, server: Server, owner: str, stranger: str) -> None:
    """What every transport must do, as ``stranger`` (a token that owns nothing)."""
    tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == {"describe_schema", "run_sql", "call_reducer", "search_memory"}
    assert tools["run_sql"].input_schema["required"] == ["query"]

    schema = document(await client.call_tool("describe_schema", {}))
    assert schema == server.request("GET", "/v1/database/app/schema", token=stranger).body | {
        "tx_offset": schema["tx_offset"]
    }
    # The private table's name and columns are the owner's business, as its rows are.
    assert "letter" in {table["name"] for table in schema["tables"]}
    assert not {"diary", "memory"} & {table["name"] for table in schema["tables"]}
    owners = server.request("GET", "/v1/database/app/schema", token=owner).body
    assert {"diary", "memory"} <= {table["name"] for table in owners["tables"]}

    sent = document(await client.call_tool("call_reducer", {"reducer": "send", "args": ["hi"]}))
    assert sent["tx_offset"] >= 1
    letter_id = sent["return_value"]
    rows = document(
        await client.call_tool(
            "run_sql",
            {"query": "SELECT id, text FROM letter WHERE id = :id", "params": {"id": letter_id}},
        )
    )
    assert rows["columns"] == ["id", "text"] and rows["rows"] == [{"id": letter_id, "text": "hi"}]

    # Row-level security: the owner's letter exists, and the stranger does not see it.
    reply = server.request("POST", "/v1/database/app/call/send", ["owner's letter"], owner)
    assert reply.status == 200, reply
    seen = document(await client.call_tool("run_sql", {"query": "SELECT text FROM letter"}))
    assert "owner's letter" not in [row["text"] for row in seen["rows"]]
    http_seen = server.request("POST", "/v1/database/app/sql", "SELECT text FROM letter", stranger)
    assert seen["rows"] == http_seen.body["rows"]

    # A private table, and a reducer the module keeps for its admin: refused as over HTTP.
    private = error_of(await client.call_tool("run_sql", {"query": "SELECT * FROM diary"}))
    assert private["code"] == "permission_denied", private
    assert private == http_error(server, "/v1/database/app/sql", "SELECT * FROM diary", stranger)
    refused = error_of(await client.call_tool("call_reducer", {"reducer": "purge"}))
    assert refused == http_error(server, "/v1/database/app/call/purge", None, stranger)
    unknown = error_of(await client.call_tool("call_reducer", {"reducer": "nope", "args": []}))
    assert unknown == http_error(server, "/v1/database/app/call/nope", [], stranger)
    assert unknown["code"] == "not_found"

    # Memory: another identity's namespace is refused exactly as over HTTP (agent rights,
    # docs/guide/agents.md); the stranger searches its own.
    shared = {"query": "who lives in Porto", "namespace_prefix": "users/", "k": 2}
    refused = error_of(await client.call_tool("search_memory", shared))
    assert refused == http_error(server, "/v1/database/app/call/recall", shared, stranger)
    assert refused["code"] == "reducer_failed" and "not yours" in refused["message"], refused
    me = server.request("GET", "/v1/identity", token=stranger).body["identity"]
    for namespace, text in MEMORIES:
        mine = [f"{me}/{namespace}", text]
        reply = server.request("POST", "/v1/database/app/call/remember_text", mine, owner)
        assert reply.status == 200, reply
    search = {"query": "who lives in Porto", "namespace_prefix": f"{me}/users/", "k": 2}
    hits = document(await client.call_tool("search_memory", search))["hits"]
    assert hits[0]["text"] == "ann lives in Porto" and len(hits) == 2, hits
    assert 0 <= hits[1]["score"] < hits[0]["score"] <= 1
    recalled = server.request("POST", "/v1/database/app/call/recall", search, stranger)
    assert hits == recalled.body["return_value"]


@pytest.mark.parametrize("mode", ["legacy", "auto"])
def test_an_sdk_client_over_http_uses_every_tool_as_its_token_allows(
    served: tuple[Server, str], mode: str
) -> None:
    server, owner = served
    _, stranger = server.identity()

    async def run() -> None:
        async with over_http(server, stranger, mode) as client:
            await exercise(client, server, owner, stranger)

    asyncio.run(run())


def test_the_owner_reads_the_private_table_over_http(served: tuple[Server, str]) -> None:
    server, owner = served

    async def run() -> dict[str, Any]:
        async with over_http(server, owner) as client:
            return document(await client.call_tool("run_sql", {"query": "SELECT text FROM diary"}))

    assert asyncio.run(run())["rows"] == [{"text": "the owner's secret"}]


def test_an_sdk_client_over_stdio_uses_every_tool_as_its_token_allows(
    served: tuple[Server, str], tmp_path: Path
) -> None:
    server, owner = served
    identity, stranger = server.identity()
    config = save_token(tmp_path / "stranger", server, identity, stranger)
    owner_config = save_token(tmp_path / "owner", server, "owner", owner)

    async def run() -> dict[str, Any]:
        async with over_stdio(server, config, "legacy") as client:
            await exercise(client, server, owner, stranger)
        async with over_stdio(server, owner_config) as client:  # the 2026 envelope on stdio
            return document(await client.call_tool("run_sql", {"query": "SELECT text FROM diary"}))

    assert asyncio.run(run())["rows"] == [{"text": "the owner's secret"}]


OVERFLOW = "SELECT 1e308 * 10 AS x"


def test_tool_arguments_are_checked_with_our_error_codes(served: tuple[Server, str]) -> None:
    server, _ = served
    _, token = server.identity()

    async def run() -> list[dict[str, str]]:
        async with over_http(server, token) as client:
            overflow = error_of(await client.call_tool("run_sql", {"query": OVERFLOW}))
            assert overflow == http_error(server, "/v1/database/app/sql", OVERFLOW, token)
            assert overflow["code"] == "not_finite", overflow
            return [
                error_of(await client.call_tool("run_sql", {"query": 7})),
                error_of(await client.call_tool("run_sql", {"query": " "})),
                error_of(await client.call_tool("run_sql", {"query": "SELECT 1", "x": 1})),
                error_of(await client.call_tool("describe_schema", {"x": 1})),
                error_of(await client.call_tool("search_memory", {"query": "a", "k": 0})),
                error_of(await client.call_tool("nope", {})),
            ]

    codes = [error["code"] for error in asyncio.run(run())]
    assert codes == ["invalid_request"] * 4 + ["reducer_failed", "invalid_request"], codes


def test_a_module_without_agents_has_no_search_memory(served: tuple[Server, str]) -> None:
    server, owner = served
    plain = (
        "from cosmictron import *\n\n@reducer\ndef noop(ctx: ReducerContext) -> None:\n    pass\n"
    )
    assert server.deploy("plain", plain, owner).status == 201

    async def run() -> tuple[set[str], dict[str, str]]:
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {owner}"}) as http:
            transport = streamable_http_client(server.url + route("plain"), http_client=http)
            async with Client(transport) as client:  # type: ignore[arg-type]
                names = {tool.name for tool in (await client.list_tools()).tools}
                refused = error_of(await client.call_tool("search_memory", {"query": "x"}))
                return names, refused

    names, refused = asyncio.run(run())
    assert names == {"describe_schema", "run_sql", "call_reducer"}
    assert refused["code"] == "invalid_request" and "search_memory" in refused["message"]


# -- what the route refuses before the SDK sees the request ------------------------------


PING = {"jsonrpc": "2.0", "id": 1, "method": "ping"}


def test_the_route_refuses_as_every_route_does(served: tuple[Server, str]) -> None:
    server, _ = served
    bad_token = server.request("POST", route(), PING, "not-a-token")
    assert bad_token.status == 401 and bad_token.body["error"]["code"] == "unauthenticated"
    missing = server.request("POST", route("nosuch"), PING)
    assert missing.status == 404 and missing.body["error"]["code"] == "not_found"
    not_json = server.request("POST", route(), b"{", content_type="application/json")
    assert not_json.status == 400 and not_json.body["error"]["code"] == "invalid_request"
    deep = server.request("POST", route(), b"[" * 100 + b"]" * 100, content_type="application/json")
    assert deep.status == 400 and deep.body["error"]["code"] == "too_deep"
    get = server.request("GET", route())
    assert get.status == 405 and get.body["error"]["code"] == "method_not_allowed"


@pytest.fixture
def bounded(tmp_path: Path) -> Iterator[tuple[Server, str]]:
    """A server with small MCP, call and body-time limits, and a slow-to-query table."""
    env = {
        "COSMICTRON_MCP_BODY_BYTES_MAX": "4096",
        "COSMICTRON_CALL_BODY_BYTES_MAX": "512",
        "COSMICTRON_HTTP_BODY_S_MAX": "1",
        "COSMICTRON_HTTP_BODY_RATE_BYTES_PER_S_MIN": "1000000",
        "COSMICTRON_QUERY_TIME_S_MAX": "0.5",
        "COSMICTRON_QUERY_ROWS_EXAMINED_MAX": str(10**12),
        "COSMICTRON_RATE_QUERIES_PER_S": "0.01",
        "COSMICTRON_RATE_QUERIES_BURST": "1",
    }
    server = start_server(tmp_path / "data", "--profile", "development", env=env)
    try:
        _, owner = server.deployer()
        assert server.deploy("app", SLOW_MODULE, owner).status == 201
        assert server.request("POST", "/v1/database/app/call/seed", [2000], owner).status == 200
        yield server, owner
    finally:
        out = stop_server(server)
        assert server.process.returncode == 0, out


SLOW_MODULE = """
from cosmictron import *

@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True)
    v: int = 0

@reducer
def seed(ctx: ReducerContext, n: int) -> None:
    for i in range(n):
        Item.insert(Item(id=i, v=i))

@reducer
def echo(ctx: ReducerContext, text: str) -> int:
    return len(text)
"""

CARTESIAN = "SELECT COUNT(*) FROM item a, item b, item c WHERE a.v + b.v + c.v = -1"


def test_the_http_api_s_bounds_hold_on_the_mcp_route(bounded: tuple[Server, str]) -> None:
    server, owner = bounded
    # The body limit (413 before the SDK), then the call's own argument limit (a tool error).
    big = dict(PING, params={"pad": "x" * 5000})
    too_large = server.request("POST", route(), big, owner)
    assert too_large.status == 413 and too_large.body["error"]["code"] == "too_large"

    async def run() -> list[dict[str, str]]:
        async with over_http(server, owner) as client:
            fits = document(
                await client.call_tool("call_reducer", {"reducer": "echo", "args": ["y" * 100]})
            )
            assert fits["return_value"] == 100
            over = error_of(
                await client.call_tool("call_reducer", {"reducer": "echo", "args": ["y" * 1000]})
            )
            slow = error_of(await client.call_tool("run_sql", {"query": CARTESIAN}))
            limited = error_of(await client.call_tool("run_sql", {"query": "SELECT 1"}))
            return [over, slow, limited]

    over, slow, limited = asyncio.run(run())
    assert over["code"] == "too_large" and "call_body_bytes_max" in over["message"], over
    assert slow["code"] == "query_cancelled", slow  # the query time limit, as over HTTP
    assert limited["code"] == "rate_limited", limited  # the caller's query rate, shared


def test_a_body_slower_than_the_body_time_limit_gets_408(bounded: tuple[Server, str]) -> None:
    server, owner = bounded
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            f"POST {route()} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {owner}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        sock.sendall(head.encode())
        time.sleep(2.0)  # past COSMICTRON_HTTP_BODY_S_MAX=1
        reply = sock.recv(65536).decode()
    assert reply.startswith("HTTP/1.1 408"), reply
    assert json.loads(reply.split("\r\n\r\n", 1)[1])["error"]["code"] == "request_timeout"


# -- cosmictron-cli mcp: bad input is one line and a non-zero exit -----------------------


def run_cli(server_url: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COSMICTRON_SERVER": server_url, "COSMICTRON_CONFIG_DIR": str(config)}
    return subprocess.run(
        [CLI, "mcp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_the_cli_refuses_bad_input_in_one_line(served: tuple[Server, str], tmp_path: Path) -> None:
    server, _ = served
    config = tmp_path / "config"
    unknown = run_cli(server.url, config, "nosuch")
    assert unknown.returncode == 1 and unknown.stdout == "", unknown
    assert len(unknown.stderr.strip().splitlines()) == 1, unknown.stderr
    assert unknown.stderr.startswith("error: ") and "'nosuch'" in unknown.stderr, unknown.stderr
    forged = run_cli(server.url, save_token(tmp_path / "forged", server, "x", "forged"), "app")
    assert forged.returncode == 1 and len(forged.stderr.strip().splitlines()) == 1, forged
    assert "token" in forged.stderr, forged.stderr
    bad_name = run_cli(server.url, config, "no/such")
    assert bad_name.returncode == 2 and len(bad_name.stderr.strip().splitlines()) == 1, bad_name
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    nobody = run_cli(f"http://127.0.0.1:{free}", config, "app")
    assert nobody.returncode == 3 and len(nobody.stderr.strip().splitlines()) == 1, nobody


def test_without_the_mcp_extra_the_route_and_the_command_say_so(tmp_path: Path) -> None:
    """A server and a CLI that cannot import ``mcp`` (a package on the path that refuses
    to import, as a missing one does): 501 ``mcp_unavailable``, and one line, exit 1."""
    blocked = tmp_path / "blocked" / "mcp"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('mcp is blocked for this test')\n")
    path = os.pathsep.join(p for p in (str(blocked.parent), os.environ.get("PYTHONPATH")) if p)
    server = start_server(tmp_path / "data", "--profile", "development", env={"PYTHONPATH": path})
    try:
        _, owner = server.deployer()
        assert server.deploy("app", SLOW_MODULE, owner).status == 201
        reply = server.request("POST", route(), PING, owner)
        assert reply.status == 501 and reply.body["error"]["code"] == "mcp_unavailable", reply
        assert "cosmictron[mcp]" in reply.body["error"]["message"]
        assert server.request("POST", "/v1/database/app/sql", "SELECT 1", owner).status == 200
        env = {**os.environ, "PYTHONPATH": path, "COSMICTRON_SERVER": server.url}
        env["COSMICTRON_CONFIG_DIR"] = str(tmp_path / "config")
        done = subprocess.run(
            [CLI, "mcp", "app"], capture_output=True, text=True, timeout=60, env=env,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        assert done.returncode == 1 and done.stdout == "", done
        assert done.stderr.strip().splitlines() == [
            "error: the mcp command needs the mcp extra: pip install 'cosmictron[mcp]'"
        ]
    finally:
        out = stop_server(server)
        assert server.process.returncode == 0, out


def test_the_stdio_relay_reports_a_lost_server_as_a_tool_error(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--profile", "development")
    identity, owner = server.deployer()
    assert server.deploy("app", SLOW_MODULE, owner).status == 201
    config = save_token(tmp_path / "config", server, identity, owner)

    async def run() -> tuple[dict[str, Any], dict[str, str]]:
        async with over_stdio(server, config) as client:
            before = document(
                await client.call_tool("call_reducer", {"reducer": "echo", "args": ["ab"]})
            )
            out = stop_server(server)
            assert server.process.returncode == 0, out
            after = error_of(await client.call_tool("run_sql", {"query": "SELECT 1"}))
            return before, after

    before, after = asyncio.run(run())
    assert before["return_value"] == 2
    assert after["code"] == "connection_lost", after
