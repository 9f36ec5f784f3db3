"""The module ABI's host side, embedded (no server): descriptions, operations, limits.

Guests here are hand-written WAT (tests/module/wat_guests.py), so each test controls the
exact bytes a guest sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import pytest

import cosmictron
from cosmictron import limits
from cosmictron.errors import ReducerFailed, SchemaError
from cosmictron.module import abi
from tests.module.wat_guests import SCRATCH_AT, guest

NOTE = [
    {
        "name": "note",
        "columns": [
            {"name": "id", "type": "i64", "auto_inc": True},
            {"name": "text", "type": "str"},
        ],
        "primary_key": ["id"],
        "public": True,
    }
]


def batch_guest(batch: list[Any], pages: int = 1) -> bytes:
    """A guest whose one reducer, ``run``, sends ``batch`` to the host and returns."""
    request = msgpack.packb(batch)
    at = SCRATCH_AT if pages == 1 else 65536  # clear of the frame buffer (wat_guests)
    segment = '(data (i32.const {at}) "{data}")'.format(
        at=at, data="".join(f"\\{b:02x}" for b in request)
    )
    body = (
        f"(drop (call $ops (i32.const {at}) (i32.const {len(request)}) "
        f"(i32.const {SCRATCH_AT + 2048}) (i32.const 8192)))"
    )
    return guest({"run": body}, tables=NOTE, extra=segment, pages=pages)


def open_db(tmp_path: Path, wasm: bytes) -> cosmictron.Database:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "m.wasm"
    path.write_bytes(wasm)
    durability = cosmictron.DurabilityConfig.from_profile("development")
    return cosmictron.Database.open(tmp_path / "db", module=str(path), durability=durability)


def test_random_past_its_limit_fails_the_call(tmp_path: Path) -> None:
    limit = limits.guest_random_values_max
    with open_db(tmp_path, batch_guest([[0, "note", [0, "kept?"]], [10, limit + 1]])) as db:
        with pytest.raises(ReducerFailed, match="random: count 4097") as failed:
            db.call("run")
        assert failed.value.cause_type == "GuestAbiError"
        assert db.sql("SELECT * FROM note").rows == []
    with open_db(tmp_path / "ok", batch_guest([[10, limit]])) as db:
        db.call("run")


def test_a_log_line_past_its_limit_is_cut(tmp_path: Path) -> None:
    text = "x" * (limits.guest_message_bytes_max + 10)
    with open_db(tmp_path, batch_guest([[9, 1, text]], pages=3)) as db:
        db.call("run")
        line = db.logs()[-1]
        assert line["reducer"] == "run" and line["level"] == "INFO"
        assert len(line["message"]) == limits.guest_message_bytes_max


def test_operations_reach_the_tables_and_their_errors_reach_the_guest(tmp_path: Path) -> None:
    batch = [[0, "note", [0, "one"]], [0, 0, [5, "five"]], [0, "note", [5, "again"]]]
    with open_db(tmp_path, batch_guest(batch)) as db:
        db.call("run")  # the third insert fails; the guest ignores the error and returns
        assert db.sql("SELECT id, text FROM note ORDER BY id").rows == [(1, "one"), (5, "five")]


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ([0, "nope", [0, "x"]], "table 'nope', which it did not describe"),
        ([0, "note", [0]], "has 2 columns, the guest sent 1 values"),
        ([4, "note", "nope", 1], "has no unique column or index 'nope'"),
        ([42], "unknown operation code 42"),
        ([9, 7, "x"], "log level 7"),
        ("junk", "an operation is a list"),
    ],
)
def test_a_malformed_operation_fails_the_call_naming_it(
    tmp_path: Path, op: Any, expected: str
) -> None:
    with open_db(tmp_path, batch_guest([[0, "note", [0, "kept?"]], op])) as db:
        with pytest.raises(ReducerFailed, match="broke the module ABI") as failed:
            db.call("run")
        assert expected in str(failed.value)
        assert db.sql("SELECT * FROM note").rows == []


def test_description_errors_name_what_is_wrong() -> None:
    with pytest.raises(SchemaError, match="ABI version 2"):
        abi.parse_description({"abi": 2, "tables": [], "reducers": []})
    with pytest.raises(SchemaError, match="type 'Nope' is not declared"):
        abi.parse_description(
            {
                "abi": 1,
                "tables": [{"name": "t", "columns": [{"name": "c", "type": "ref", "ref": "Nope"}]}],
                "reducers": [],
            }
        )
    with pytest.raises(SchemaError, match="unknown column type 'i65'"):
        abi.parse_description(
            {
                "abi": 1,
                "tables": [{"name": "t", "columns": [{"name": "c", "type": "i65"}]}],
                "reducers": [],
            }
        )
    with pytest.raises(SchemaError, match="procedures are Python-only"):
        abi.parse_description(
            {"abi": 1, "tables": [], "reducers": [{"name": "p", "kind": "procedure"}]}
        )
    with pytest.raises(SchemaError, match="scheduled to run reducer 'missing'"):
        table = {**NOTE[0], "scheduled": "missing"}
        abi.parse_description({"abi": 1, "tables": [table], "reducers": []})
    merged = abi.merge_fragments([{"abi": 1, "tables": NOTE}, {"abi": 1, "reducers": []}])
    assert abi.parse_description(merged).schema.table("note") is not None
    with pytest.raises(SchemaError, match="ABI versions 1 and 2"):
        abi.merge_fragments([{"abi": 1}, {"abi": 2}])
