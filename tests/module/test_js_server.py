"""JavaScript modules on a real server, on both engines: the sandbox, choosing the engine,
sandboxed deploys, the CLI, hot-swap across languages and replay after a restart.

Every misbehaving reducer in tests/module/js/sandbox.js (a runaway loop, a huge
allocation, deep recursion, a thrown error, host calls with bad arguments, attempts at the
clock, randomness, files, network and timers) must fail only its own call with a clear
``reducer_failed`` error, leave nothing of what it wrote, and leave the server serving.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import CLI, STARTED, Server, start_server, stop_server
from tests.server.rawws import RawWebSocket

HERE = Path(__file__).resolve().parent
SANDBOX = HERE / "js" / "sandbox.js"
PYTHON_TWIN = HERE / "conformance" / "app.py"
JS_TWIN = HERE / "conformance" / "app.js"
ENGINES = ("quickjs", "v8")
SECONDS = 0.3  # a runaway loop fails in a fraction of a second
HEAP = 32 * 1024 * 1024


def deploy_js(server: Server, name: str, source: bytes, token: str | None, engine: str) -> Any:
    return server.request(
        "PUT", f"/v1/database/{name}?engine={engine}", source, token, "text/javascript"
    )


def call(server: Server, database: str, reducer: str, *args: Any, token: str) -> Any:
    return server.request("POST", f"/v1/database/{database}/call/{reducer}", list(args), token)


def notes(server: Server, database: str, token: str) -> list[str]:
    reply = server.request("POST", f"/v1/database/{database}/sql", "SELECT * FROM note", token)
    assert reply.status == 200, reply
    return [row["text"] for row in reply.body["rows"]]


@pytest.fixture(scope="module")
def sandbox_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "COSMICTRON_JS_CALL_SECONDS_MAX": str(SECONDS),
        "COSMICTRON_JS_HEAP_BYTES_MAX": str(HEAP),
    }
    data = tmp_path_factory.mktemp("js-sandbox") / "data"
    running = start_server(data, "--profile", "development", env=env)
    # Shared by this module's tests: stopped below, not by the per-test reaper.
    STARTED.remove(running.process)
    yield running
    out = stop_server(running)
    assert running.process.returncode == 0, out


COMMON_FAULTS = {
    "spin": f"guest ran longer than {SECONDS:g} s (limits.js_call_seconds_max)",
    "spin_after_read": "ran longer than",
    "allocate": f"guest ran out of memory: its heap reached {HEAP} bytes",
    "throw": "failed: TypeError: the module threw this",
    "throw_value": "failed: ReducerError: 42",
    "bad_batch": "the guest broke the module ABI: the guest sent a malformed operation batch",
    "bad_table": "the guest named table 'no_such_table', which it did not describe",
    "bad_value": "table 'note' column 'text': expected str, got 12345",
    "bad_return": "expected u8, got 300",
    "clock": "Date.now(): JavaScript modules have no clock, randomness, files or network",
    "new_date": "Date(): JavaScript modules have no clock",
    "random": "Math.random(): JavaScript modules have no clock, randomness",
    "file": 'require("fs"): a Cosmictron module can only require "cosmictron"',
    "network": "fetch",
    "timer": "setTimeout",
}
ENGINE_FAULTS = {
    "quickjs": {"recurse": "InternalError: stack overflow"},
    "v8": {"recurse": "RangeError: Maximum call stack size exceeded"},
}


@pytest.mark.parametrize("engine", ENGINES)
def test_each_misbehaving_js_reducer_fails_only_its_call(
    sandbox_server: Server, engine: str
) -> None:
    _, token = sandbox_server.operator()
    name = f"sandbox_{engine}"
    assert deploy_js(sandbox_server, name, SANDBOX.read_bytes(), token, engine).status == 201
    assert call(sandbox_server, name, "write", token=token).body["return_value"] == 1
    for reducer, expected in {**COMMON_FAULTS, **ENGINE_FAULTS[engine]}.items():
        reply = call(sandbox_server, name, reducer, token=token)
        assert reply.status == 400, (reducer, reply)
        assert reply.body["error"]["code"] == "reducer_failed", (reducer, reply)
        message = reply.body["error"]["message"]
        assert message.startswith(f"reducer {reducer!r} failed: "), message
        assert expected in message, (reducer, message)
        # Rolled back, and the next call works (in a fresh context after a fault).
        assert notes(sandbox_server, name, token) == ["written"], reducer
        assert call(sandbox_server, name, "write", token=token).status == 200
        assert notes(sandbox_server, name, token) == ["written", "written"], reducer
        sql = "DELETE FROM note WHERE id > 1"
        assert sandbox_server.request("POST", f"/v1/database/{name}/sql", sql, token).status == 200
    # A module that catches everything still gets its read answered.
    assert call(sandbox_server, name, "swallow", token=token).body["return_value"] == 1
    assert sandbox_server.request("GET", "/v1/health").status == 200


def test_a_bad_engine_or_module_is_refused_at_deploy(sandbox_server: Server) -> None:
    _, token = sandbox_server.operator()
    reply = deploy_js(sandbox_server, "bad", SANDBOX.read_bytes(), token, "spidermonkey")
    assert reply.status == 400 and reply.body["error"]["code"] == "invalid_request", reply
    assert "use one of quickjs, v8" in reply.body["error"]["message"]
    python = sandbox_server.request(
        "PUT", "/v1/database/bad?engine=v8", PYTHON_TWIN.read_bytes(), token, "text/x-python"
    )
    assert python.status == 400 and "chooses a JavaScript engine" in str(python.body), python
    for engine in ENGINES:
        broken = deploy_js(sandbox_server, "bad", b"const x = ;", token, engine)
        assert broken.status == 400 and broken.body["error"]["code"] == "schema_error", broken
        message = broken.body["error"]["message"]
        assert "bad.js failed to load: " in message and "SyntaxError" in message, broken
    assert sandbox_server.request("GET", "/v1/database/bad/schema").status == 404


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "data", "--profile", "development")
    yield running
    out = stop_server(running)
    assert running.process.returncode == 0, out


def test_open_sandboxed_deploys_cover_javascript(tmp_path: Path) -> None:
    running = start_server(
        tmp_path / "data", "--profile", "development", "--open-sandboxed-deploys"
    )
    try:
        identity, token = running.identity()
        for engine in ENGINES:
            created = deploy_js(running, f"mine_{engine}", JS_TWIN.read_bytes(), token, engine)
            assert created.status == 201 and created.body["owner"] == identity, created
            reply = call(running, f"mine_{engine}", "transfer", "alice", "bob", 5, token=token)
            assert reply.status == 200 and reply.body["return_value"] == 95, reply
        python = running.deploy("mine_v8", PYTHON_TWIN.read_bytes(), token)
        assert python.status == 403, python
    finally:
        stop_server(running)


def test_javascript_deploys_need_the_right_by_default(server: Server) -> None:
    _, token = server.identity()
    reply = deploy_js(server, "mine", JS_TWIN.read_bytes(), token, "quickjs")
    assert reply.status == 403 and "right to deploy" in reply.body["error"]["message"]


def test_cli_deploys_a_js_file_on_the_engine_asked_for(server: Server, tmp_path: Path) -> None:
    module = tmp_path / "bank.js"
    module.write_bytes(JS_TWIN.read_bytes())
    env = {**os.environ, "COSMICTRON_CONFIG_DIR": str(server.data_dir.parent / "config")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, *args], capture_output=True, text=True, env=env, timeout=120)

    done = cli("deploy", "--server", server.url, "bank", str(module), "--engine", "v8")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Created database 'bank'" in done.stdout
    done = cli("call", "--server", server.url, "bank", "transfer", "alice", "bob", "1")
    assert done.returncode == 0 and "99" in done.stdout, done.stdout + done.stderr
    recorded = (server.data_dir / "databases" / "bank" / "module" / "module.py").read_bytes()
    assert recorded.startswith(b"// cosmictron-js engine=v8\n"), recorded[:60]
    done = cli("deploy", "--server", server.url, "bank", str(module))  # the default engine
    assert done.returncode == 0, done.stdout + done.stderr
    recorded = (server.data_dir / "databases" / "bank" / "module" / "module.py").read_bytes()
    assert recorded.startswith(b"// cosmictron-js engine=quickjs\n"), recorded[:60]
    wrong = cli("deploy", "--server", server.url, "bank", str(PYTHON_TWIN), "--engine", "v8")
    assert wrong.returncode != 0 and "--engine is for JavaScript modules" in wrong.stderr


def test_hot_swap_between_python_and_javascript_keeps_data_and_subscriptions(
    tmp_path: Path,
) -> None:
    running = start_server(tmp_path / "data", "--profile", "development")
    _, token = running.operator()
    try:
        assert running.deploy("swap", PYTHON_TWIN.read_bytes(), token).status == 201
        ws = RawWebSocket(running.url, "swap", token)
        assert "IdentityToken" in ws.receive_json()
        query = {"request_id": 1, "query_id": 1, "query_strings": ["SELECT * FROM account"]}
        ws.send_json({"Subscribe": query})
        applied = ws.receive_json()["SubscribeApplied"]
        assert {r["name"] for r in applied["tables"][0]["rows"]} == {"alice", "bob"}

        def transfer_seen(amount: int, alice: int) -> None:
            reply = call(running, "swap", "transfer", "alice", "bob", amount, token=token)
            assert reply.status == 200 and reply.body["return_value"] == alice, reply
            while True:  # other transactions (client_connected) touch no account row
                update = ws.receive_json()
                if "TransactionUpdate" in update:
                    tables = update["TransactionUpdate"]["tables"]
                    if tables and tables[0]["table_name"] == "account":
                        inserted = {r["name"]: r["balance"] for r in tables[0]["inserts"]}
                        assert inserted["alice"] == alice
                        return

        transfer_seen(10, 90)
        steps: list[tuple[str | None, int]] = [("quickjs", 80), (None, 70), ("v8", 60)]
        for engine, alice in steps:
            if engine is None:
                swapped = running.deploy("swap", PYTHON_TWIN.read_bytes(), token)
            else:
                swapped = deploy_js(running, "swap", JS_TWIN.read_bytes(), token, engine)
            assert swapped.status == 200, swapped
            assert swapped.body["migration"]["tables_added"] == []
            transfer_seen(10, alice)  # the same subscription sees the new module's writes
        ws.close()
    finally:
        stop_server(running)
    # The log holds every module (and its engine): a restart replays them all.
    again = start_server(tmp_path / "data", "--profile", "development")
    try:
        reply = call(again, "swap", "transfer", "alice", "bob", 5, token=token)
        assert reply.status == 200 and reply.body["return_value"] == 55, reply
    finally:
        stop_server(again)
