"""WASM modules on a real server: the sandbox, sandboxed deploys, hot-swap across languages.

Every misbehaving guest below (an infinite loop, a huge allocation, a trap, host calls
with bad pointers and lengths, calls to a clock or a file) must fail only its own call
with a clear ``reducer_failed`` error, leave nothing of what it wrote, and leave the
server serving: the next call on the same database succeeds. The guests come in two
kinds: hand-written WAT (tests/module/wat_guests.py), which can do what no SDK lets a
module do, and the Rust SDK's ``sandbox`` example, which shows what a Rust module's
author sees.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.module.guests import built_guest
from tests.module.wat_guests import SCRATCH_AT, guest
from tests.server.conftest import CLI, Server, start_server, stop_server
from tests.server.rawws import RawWebSocket

HERE = Path(__file__).resolve().parent
PYTHON_TWIN = HERE / "conformance" / "app.py"
FUEL = 20_000_000  # a spin fails in a fraction of a second
MEMORY = 16 * 1024 * 1024

NOTE = [
    {
        "name": "note",
        "columns": [
            {"name": "id", "type": "i64", "auto_inc": True},
            {"name": "text", "type": "str"},
        ],
        "primary_key": ["id"],
        "indexes": [],
        "public": True,
    }
]
WRITE = msgpack.packb([[0, "note", [0, "written"]]])
WRITE_CALL = (
    f"(drop (call $ops (i32.const {SCRATCH_AT}) (i32.const {len(WRITE)}) "
    f"(i32.const {SCRATCH_AT + 1024}) (i32.const 4096)))"
)


def wat_sandbox() -> bytes:
    """One reducer per misbehaviour; each writes a note first, so rollback shows."""
    segment = '(data (i32.const {at}) "{data}")'.format(
        at=SCRATCH_AT, data="".join(f"\\{b:02x}" for b in WRITE)
    )
    return guest(
        {
            "write": WRITE_CALL,
            "spin": WRITE_CALL + "(loop $forever (br $forever))",
            "trap": WRITE_CALL + "unreachable",
            "grow": WRITE_CALL
            + "(if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))",
            "bad_request": WRITE_CALL
            + "(drop (call $ops (i32.const 65000) (i32.const 100000) (i32.const 0) (i32.const 0)))",
            "bad_length": WRITE_CALL
            + "(drop (call $ops (i32.const 0) (i32.const -1) (i32.const 0) (i32.const 16)))",
            "bad_out": WRITE_CALL
            + f"(drop (call $ops (i32.const {SCRATCH_AT}) (i32.const {len(WRITE)}) "
            "(i32.const 65530) (i32.const 4096)))",
            "garbage": WRITE_CALL
            + "(drop (call $ops (i32.const 0) (i32.const 16) (i32.const 40000) (i32.const 64)))",
            "clock": WRITE_CALL + "(drop (call $clock (i32.const 0) (i64.const 0) (i32.const 0)))",
            "file": WRITE_CALL
            + "(drop (call $open (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 4) "
            "(i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 0)))",
        },
        imports=(
            '(import "wasi_snapshot_preview1" "clock_time_get" '
            "(func $clock (param i32 i64 i32) (result i32)))"
            '(import "wasi_snapshot_preview1" "path_open" (func $open (param i32 i32 i32 i32 '
            "i32 i64 i64 i32 i32) (result i32)))"
        ),
        tables=NOTE,
        extra=segment,
    )


@pytest.fixture
def sandbox_server(tmp_path: Path) -> Iterator[Server]:
    env = {
        "COSMICTRON_GUEST_CALL_FUEL_MAX": str(FUEL),
        "COSMICTRON_GUEST_MEMORY_BYTES_MAX": str(MEMORY),
    }
    running = start_server(tmp_path / "data", "--profile", "development", env=env)
    yield running
    out = stop_server(running)
    assert running.process.returncode == 0, out


def call(server: Server, database: str, reducer: str, *args: Any, token: str) -> Any:
    return server.request("POST", f"/v1/database/{database}/call/{reducer}", list(args), token)


def notes(server: Server, database: str, token: str) -> list[str]:
    reply = server.request("POST", f"/v1/database/{database}/sql", "SELECT * FROM note", token)
    assert reply.status == 200, reply
    return [row["text"] for row in reply.body["rows"]]


WAT_FAULTS = {
    "spin": "ran out of fuel (limits.guest_call_fuel_max)",
    "trap": "trapped: wasm trap: wasm `unreachable` instruction executed",
    "grow": "trapped",
    "bad_request": "called ops with a request [65000, +100000) outside its memory",
    "bad_length": "outside its memory",
    "bad_out": "gave a result buffer [65530, +4096) outside its memory",
    "garbage": "the guest broke the module ABI",
    "clock": "called wasi_snapshot_preview1.clock_time_get: WASM modules have no files, "
    "network, clock or randomness beyond the module ABI",
    "file": "called wasi_snapshot_preview1.path_open",
}


def test_each_misbehaving_wat_guest_fails_only_its_call(sandbox_server: Server) -> None:
    _, token = sandbox_server.operator()
    assert sandbox_server.deploy("wat", wat_sandbox(), token).status == 201
    assert call(sandbox_server, "wat", "write", token=token).status == 200
    for reducer, expected in WAT_FAULTS.items():
        reply = call(sandbox_server, "wat", reducer, token=token)
        assert reply.status == 400, (reducer, reply)
        assert reply.body["error"]["code"] == "reducer_failed", (reducer, reply)
        message = reply.body["error"]["message"]
        assert message.startswith(f"reducer {reducer!r} failed: "), message
        assert expected in message, (reducer, message)
        # Rolled back, and the next call (in a fresh instance) works.
        assert notes(sandbox_server, "wat", token) == ["written"], reducer
        assert call(sandbox_server, "wat", "write", token=token).status == 200
        assert notes(sandbox_server, "wat", token) == ["written", "written"], reducer
        sql = "DELETE FROM note WHERE id > 1"
        assert sandbox_server.request("POST", "/v1/database/wat/sql", sql, token).status == 200
    health = sandbox_server.request("GET", "/v1/health")
    assert health.status == 200


def test_rust_guest_faults_say_what_happened(sandbox_server: Server) -> None:
    _, token = sandbox_server.operator()
    assert sandbox_server.deploy("rusty", built_guest("sandbox"), token).status == 201
    assert call(sandbox_server, "rusty", "add", "kept", token=token).body["return_value"] == 1
    cases = {
        ("allocate", 1 << 30): ("GuestOutOfMemory", "out of memory: allocating 1073741824 bytes"),
        ("explode",): ("GuestTrap", "panicked at "),
        ("spin",): ("GuestOutOfFuel", "ran out of fuel"),
    }
    for (reducer, *args), (_, expected) in cases.items():
        reply = call(sandbox_server, "rusty", reducer, *args, token=token)
        assert reply.status == 400, (reducer, reply)
        assert expected in reply.body["error"]["message"], (reducer, reply.body)
        assert notes(sandbox_server, "rusty", token) == ["kept"], reducer
    assert (
        "the guest gave up"
        in call(sandbox_server, "rusty", "explode", token=token).body["error"]["message"]
    )
    # A modest allocation still works after the failures: the instance was replaced.
    reply = call(sandbox_server, "rusty", "allocate", 1 << 20, token=token)
    assert reply.status == 200 and reply.body["return_value"] >= (1 << 20) + 1


@pytest.mark.parametrize(
    ("imports", "expected"),
    [
        ('(import "env" "memory" (memory 1))', "which is not a function"),
        (
            '(import "cosmictron" "open_file" (func (param i32)))',
            "which the module ABI does not have",
        ),
        ('(import "cosmictron" "take" (func (param i32)))', "with the wrong signature"),
    ],
)
def test_a_guest_importing_more_than_the_abi_is_refused_at_deploy(
    server: Server, imports: str, expected: str
) -> None:
    _, token = server.operator()
    reply = server.deploy("refused", guest({"noop": ""}, imports=imports), token)
    assert reply.status == 400, reply
    assert (
        reply.body["error"]["code"] == "schema_error" and expected in reply.body["error"]["message"]
    ), reply.body
    assert server.request("GET", "/v1/database/refused/schema").status == 404


def test_not_webassembly_and_not_described_are_refused(server: Server) -> None:
    _, token = server.operator()
    reply = server.deploy("broken", b"\0asm\x01\0\0\0garbage", token)
    assert reply.status == 400 and "not valid WebAssembly" in reply.body["error"]["message"]
    undescribed = guest({"noop": ""}).replace(b"cosmictron_describe", b"cosmictron_nothing!")
    reply = server.deploy("broken", undescribed, token)
    assert reply.status == 400 and "does not export cosmictron_describe" in str(reply.body)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path / "data", "--profile", "development")
    yield running
    out = stop_server(running)
    assert running.process.returncode == 0, out


def test_sandboxed_deploys_are_closed_by_default(server: Server) -> None:
    _, token = server.identity()
    reply = server.deploy("mine", built_guest("quickstart"), token)
    assert reply.status == 403 and "right to deploy" in reply.body["error"]["message"]


def test_open_sandboxed_deploys_let_any_token_deploy_wasm_but_not_python(tmp_path: Path) -> None:
    running = start_server(
        tmp_path / "data", "--profile", "development", "--open-sandboxed-deploys"
    )
    try:
        identity, token = running.identity()
        created = running.deploy("mine", built_guest("quickstart"), token)
        assert created.status == 201 and created.body["owner"] == identity, created
        reply = call(running, "mine", "run_agent", "hello", token=token)
        assert reply.status == 200 and reply.body["return_value"] == 1
        python = running.deploy("mine", PYTHON_TWIN.read_bytes(), token)
        assert python.status == 403, python
        assert "Python modules run with the server's rights" in python.body["error"]["message"]
        other = running.deploy("theirs", PYTHON_TWIN.read_bytes(), token)
        assert other.status == 403
        anonymous = running.deploy("anon", built_guest("quickstart"), None)  # type: ignore[arg-type]
        assert anonymous.status == 401
        _, stranger = running.identity()
        over = running.deploy("mine", built_guest("quickstart"), stranger)
        assert over.status == 403 and "only its owner" in over.body["error"]["message"]
    finally:
        stop_server(running)


def test_cli_deploys_a_wasm_file_and_the_compiled_module_is_cached(
    server: Server, tmp_path: Path
) -> None:
    wasm = tmp_path / "agent.wasm"
    wasm.write_bytes(built_guest("quickstart"))
    env = {**os.environ, "COSMICTRON_CONFIG_DIR": str(server.data_dir.parent / "config")}
    done = subprocess.run(
        [CLI, "deploy", "--server", server.url, "agent", str(wasm)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Created database 'agent'" in done.stdout
    done = subprocess.run(
        [CLI, "call", "--server", server.url, "agent", "run_agent", "hi"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0 and "1" in done.stdout, done.stdout + done.stderr
    cached = list((server.data_dir / "cache" / "wasm").glob("*.cwasm"))
    assert len(cached) == 1 and cached[0].stat().st_size > 0


def test_hot_swap_between_python_and_wasm_keeps_data_and_subscriptions(server: Server) -> None:
    _, token = server.operator()
    wasm = built_guest("conformance")
    assert server.deploy("swap", PYTHON_TWIN.read_bytes(), token).status == 201
    ws = RawWebSocket(server.url, "swap", token)
    assert "IdentityToken" in ws.receive_json()
    query = {"request_id": 1, "query_id": 1, "query_strings": ["SELECT * FROM account"]}
    ws.send_json({"Subscribe": query})
    applied = ws.receive_json()["SubscribeApplied"]
    assert {r["name"] for r in applied["tables"][0]["rows"]} == {"alice", "bob"}

    def transfer_seen(amount: int, alice: int) -> None:
        reply = call(server, "swap", "transfer", "alice", "bob", amount, token=token)
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
    for module, alice in ((wasm, 80), (PYTHON_TWIN.read_bytes(), 70), (wasm, 60)):
        swapped = server.deploy("swap", module, token)
        assert swapped.status == 200, swapped
        assert swapped.body["migration"]["tables_added"] == []
        transfer_seen(10, alice)  # the same subscription sees the new module's writes
    schema = server.request("GET", "/v1/database/swap/schema", token=token).body
    assert [t["name"] for t in schema["tables"]] == ["sample", "account", "audit_event", "tick"]
    ws.close()


def test_a_wasm_database_replays_after_a_restart(tmp_path: Path) -> None:
    running = start_server(tmp_path / "data", "--profile", "development")
    _, token = running.operator()
    try:
        assert running.deploy("keep", PYTHON_TWIN.read_bytes(), token).status == 201
        assert running.deploy("keep", built_guest("conformance"), token).status == 200
        assert call(running, "keep", "transfer", "alice", "bob", 25, token=token).status == 200
    finally:
        stop_server(running)
    again = start_server(tmp_path / "data", "--profile", "development")
    try:
        reply = call(again, "keep", "transfer", "alice", "bob", 5, token=token)
        assert reply.status == 200 and reply.body["return_value"] == 70, reply
        args = ["x", 1, 1, 1, 0, 0, 0.0, 0.0, True, "", "00" * 32, 0, 0, None, []]
        args += ["RED", {"x": 0, "y": 0}, [0.0, 0.0, 0.0]]
        reply = call(again, "keep", "store", *args, token=token)
        assert reply.status == 200 and reply.body["return_value"] == 1
    finally:
        stop_server(again)
