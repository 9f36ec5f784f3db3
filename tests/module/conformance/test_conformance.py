"""One scenario, every module language: identical schemas, results, logs and updates.

The conformance module (tests/module/conformance/app.py in Python, its Rust twin in
guest/rust/examples/conformance, its JavaScript twin app.js on QuickJS and on V8) is
deployed to a real server once per language; the same calls go over HTTP while a
WebSocket client subscribes, and everything a client can observe is recorded in a
transcript: the schema, every call's reply, the subscription messages, the final table
contents and the module log (times and per-database identities removed, transaction
offsets kept). Each language's transcript must equal Python's, and Python's must hold
the expected values, so two languages that agree on a wrong answer still fail.

``LANGUAGES`` is the parameter list: each language (or engine) is one entry.
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmictron.module.js import stamp
from tests.module.guests import built_guest
from tests.server.conftest import STARTED, Server, start_server, stop_server, strict_loads
from tests.server.rawws import RawWebSocket

HERE = Path(__file__).resolve().parent

LANGUAGES: dict[str, Callable[[], bytes]] = {
    "python": lambda: (HERE / "app.py").read_bytes(),
    "wasm": lambda: built_guest("conformance"),
    # The JavaScript twin on each engine: stamped with the engine, as a deploy records it.
    "js_quickjs": lambda: stamp((HERE / "app.js").read_bytes(), "quickjs"),
    "js_v8": lambda: stamp((HERE / "app.js").read_bytes(), "v8"),
}

IDENTITY = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
SAMPLE_A = [
    "a", 200, -5, 7, -(2**100), 2**120, 1.5, 2.25, True, "0aff", IDENTITY,
    "2026-01-02T03:04:05.000006Z", 1_500_000, "a note", [1, 2, 3], "GREEN",
    {"x": 3, "y": -4}, [0.5, 1.0, -2.0],
]  # fmt: skip
SAMPLE_B = [
    "b", 0, 9, 7, 0, 0, 0.0, -1.0, False, "", IDENTITY, 0, 0, None, [], "BLUE",
    {"x": 0, "y": 0}, [0.0, 0.0, 0.0],
]  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("conformance") / "server-data"
    running = start_server(data, "--profile", "development")
    # Shared by this module's tests: stopped below, not by the per-test reaper.
    STARTED.remove(running.process)
    yield running
    out = stop_server(running)
    assert running.process.returncode == 0, out


@pytest.fixture(scope="module")
def transcripts(server: Server) -> dict[str, dict[str, Any]]:
    return {}


def transcript_of(server: Server, language: str, cache: dict[str, dict[str, Any]]) -> Any:
    if language not in cache:
        cache[language] = run_scenario(server, f"conf_{language}", LANGUAGES[language]())
    return cache[language]


def run_scenario(server: Server, database: str, module: bytes) -> dict[str, Any]:
    operator, token = server.operator()
    deployed = server.deploy(database, module, token)
    assert deployed.status == 201, deployed
    ws = RawWebSocket(server.url, database, token)
    assert ws.status == 101
    assert "IdentityToken" in ws.receive_json()
    ws.send_json(
        {
            "Subscribe": {
                "request_id": 1,
                "query_id": 1,
                "query_strings": [
                    "SELECT * FROM sample",
                    "SELECT * FROM account",
                    "SELECT * FROM audit_event",
                ],
            }
        }
    )
    messages = [ws.receive_json()]

    tracebacks: dict[str, str] = {}

    def call(reducer: str, *args: Any) -> Any:
        reply = server.request("POST", f"/v1/database/{database}/call/{reducer}", list(args), token)
        reply.body.pop("timestamp", None)
        error = reply.body.get("error")
        if isinstance(error, dict) and "traceback" in error:
            # Frames are the module's own source lines, so they differ by language.
            tracebacks[reducer] = error.pop("traceback")
        return [reply.status, reply.body]

    calls = {
        "store_a": call("store", *SAMPLE_A),
        "store_b": call("store", *SAMPLE_B),
        "store_duplicate": call("store", *SAMPLE_A),
        "store_out_of_range": call("store", "c", 300, *SAMPLE_A[2:]),
        "rename": call("rename", "a", "c"),
        "rename_missing": call("rename", "zz", "y"),
        "levels": call("levels", -10, 10),
        "count_of": call("count_of", 7),
        "total": call("total"),
        "transfer": call("transfer", "alice", "bob", 30),
        "transfer_overdraft": call("transfer", "alice", "bob", 500),
        "transfer_unknown": call("transfer", "alice", "nobody", 1),
        "duplicate_account": call("duplicate", "alice"),
        "remove": call("remove", "b"),
        "schedule": call("schedule", "one"),
    }
    # Every update up to the scheduled run's (its audit_event row), in order.
    while True:
        message = ws.receive_json()
        messages.append(message)
        update = message.get("TransactionUpdate", {})
        inserted = [
            row["message"]
            for table in update.get("tables", [])
            if table["table_name"] == "audit_event"
            for row in table["inserts"]
        ]
        if "tick one" in inserted:
            break
    whoami = call("whoami")
    rolls = [call("roll"), call("roll")]
    now = call("now")
    ws.close()
    for _ in range(100):  # client_disconnected runs after the socket closes
        events = server.request(
            "POST", f"/v1/database/{database}/sql", "SELECT * FROM audit_event", token
        )
        if any(row["message"] == "disconnected" for row in events.body["rows"]):
            break
        time.sleep(0.05)
    tables = {
        name: server.request(
            "POST", f"/v1/database/{database}/sql", f"SELECT * FROM {name}", token
        ).body
        for name in ("sample", "account", "audit_event", "tick")
    }
    logs = ndjson(server, f"/v1/database/{database}/logs?num_lines=1000", token)
    schema = server.request("GET", f"/v1/database/{database}/schema", token=token).body
    # What names this database and this module's own bytes differ by language; the module
    # summary must still say which language's file runs.
    for key in ("database", "identity", "owner"):
        schema.pop(key)
    module = schema.pop("module")
    assert module["filename"].startswith("conf_") and len(module["sha256"]) == 64, module
    return {
        "operator": operator,
        "schema": schema,
        "calls": calls,
        "tracebacks": tracebacks,
        "messages": [strip_times(m) for m in messages],
        "tables": tables,
        # A failure's log line ends with the module's frames, which differ by language.
        "logs": [
            (line["level"], line["message"].split('\n  File "')[0], line["reducer"])
            for line in logs
        ],
        "whoami": whoami,
        "rolls": rolls,
        "now": now,
    }


def strip_times(message: dict[str, Any]) -> dict[str, Any]:
    for body in message.values():
        if isinstance(body, dict):
            body.pop("timestamp", None)
    return message


def ndjson(server: Server, path: str, token: str) -> list[Any]:
    request = urllib.request.Request(
        server.url + path, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return [strict_loads(line) for line in response.read().splitlines() if line.strip()]


@pytest.mark.parametrize("language", list(LANGUAGES))
def test_language_behaves_as_python(
    server: Server, transcripts: dict[str, dict[str, Any]], language: str
) -> None:
    reference = transcript_of(server, "python", transcripts)
    check_expected(reference)
    # The owner sees a Python module's own frames (issue 16); a guest's are its engine's.
    assert 'File "conf_python.py"' in reference["tracebacks"]["transfer"]
    observed = transcript_of(server, language, transcripts)
    for key in ("schema", "calls", "messages", "tables", "logs"):
        assert observed[key] == reference[key], f"{language} differs from Python in {key}"
    assert observed["whoami"] == [
        200,
        {**reference["whoami"][1], "tx_offset": observed["whoami"][1]["tx_offset"]},
    ]
    for status, body in observed["rolls"]:
        value = body["return_value"]  # a u64: past 2**53 JSON carries it as a string
        assert status == 200 and 0 <= int(value) < 2**64
        assert isinstance(value, str) == (int(value) > 2**53 - 1)
    assert observed["rolls"][0] != observed["rolls"][1]
    assert observed["now"][0] == 200 and observed["now"][1]["return_value"].startswith("20")


def check_expected(t: dict[str, Any]) -> None:
    """What the scenario must produce, stated once, so agreeing on a wrong answer fails."""
    calls = t["calls"]
    assert calls["store_a"][0] == 200 and calls["store_a"][1]["return_value"] == 1
    assert calls["store_b"][1]["return_value"] == 2
    assert calls["store_duplicate"][0] == 409 or "already has a row" in str(
        calls["store_duplicate"]
    )
    assert calls["store_out_of_range"][0] == 400
    assert "small" in calls["store_out_of_range"][1]["error"]["message"]
    assert calls["rename"][1]["return_value"] is True
    assert calls["rename_missing"][1]["return_value"] is False
    assert calls["levels"][1]["return_value"] == ["c", "b"]
    assert calls["count_of"][1]["return_value"] == 2
    assert calls["total"][1]["return_value"] == 4
    assert calls["transfer"][1]["return_value"] == 70
    overdraft = calls["transfer_overdraft"][1]["error"]["message"]
    assert overdraft == "reducer 'transfer' failed: ReducerError: insufficient funds: alice has 70"
    assert "no such account: nobody" in calls["transfer_unknown"][1]["error"]["message"]
    assert "duplicate" in calls["duplicate_account"][1]["error"]["message"]
    assert calls["remove"][1]["return_value"] is True
    accounts = {row["name"]: row["balance"] for row in t["tables"]["account"]["rows"]}
    assert accounts == {"alice": 70, "bob": 30}  # the overdraft rolled back
    samples = t["tables"]["sample"]["rows"]
    assert [row["name"] for row in samples] == ["c"]
    row = samples[0]
    # Past 2**53 JSON carries an integer as a decimal string (docs/design/big-integers.md).
    assert row["big"] == str(-(2**100)) and row["huge"] == str(2**120) and row["data"] == "0aff"
    assert row["point"] == {"x": 3, "y": -4} and row["color"] == "GREEN"
    assert row["embedding"] == [0.5, 1.0, -2.0] and row["note"] == "a note"
    events = [row["message"] for row in t["tables"]["audit_event"]["rows"]]
    assert events == ["connected", "moved 30 from alice to bob", "tick one", "disconnected"]
    assert t["tables"]["tick"]["rows"] == []  # a one-shot schedule is consumed
    messages = [line[1] for line in t["logs"]]
    assert "initialised" in messages and "stored a as 1" in messages
    assert "refused: alice would owe 430" in messages
    assert t["whoami"][1]["return_value"] == t["operator"]
