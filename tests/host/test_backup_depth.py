"""A backup whose records or snapshot nest past ``limits.msgpack_depth_max`` is refused
on restore as ``BackupDamaged`` naming the member, before anything walks it (issue 21).

The archive is a real one: an embedded caller (whose arguments no JSON depth limit
bounds) stores a deeply nested argument, which the log records; over the server, call
arguments are at most ``limits.json_depth_max`` deep, well under the msgpack limit.
"""

from __future__ import annotations

from pathlib import Path

import msgpack
import pytest

from cosmictron import Database, limits
from cosmictron.durability.depth import payload_too_deep, value_too_deep
from cosmictron.errors import BackupDamaged
from cosmictron.host.backup import restore, verify_backup

NESTING = 40


def module(depth: int) -> str:
    kind = "list[" * depth + "int" + "]" * depth
    return f"""
from cosmictron import *

@table(name="seen", public=True)
class Seen:
    id: int = field(primary_key=True, auto_inc=True)

@reducer
def keep(ctx: ReducerContext, value: {kind}) -> None:
    ctx.db.seen.insert(Seen())
"""


def nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_record_nested_past_the_limit_is_refused_naming_its_member(
    tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "app.py"
    path.write_text(module(NESTING))
    with Database.open(tmp_path / "source", path) as db:
        db.call("keep", nested(NESTING))
        offset = db.tx_offset
        db.backup(tmp_path / "backup.tar")
    verify_backup(tmp_path / "backup.tar")  # within the default limit
    monkeypatch.setattr(limits, "msgpack_depth_max", NESTING)  # the record nests deeper
    with pytest.raises(BackupDamaged) as caught:
        verify_backup(tmp_path / "backup.tar")
    message = str(caught.value)
    assert "log/" in message and "limits.msgpack_depth_max" in message
    assert f"more than {NESTING} deep" in message and f"(offset {offset})" in message
    with pytest.raises(BackupDamaged, match="limits.msgpack_depth_max"):
        restore(tmp_path / "backup.tar", tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_payload_depth_is_found_without_recursing() -> None:
    assert not payload_too_deep(msgpack.packb(nested(64)), 64)
    assert payload_too_deep(msgpack.packb(nested(65)), 64)
    assert not payload_too_deep(msgpack.packb({"a": [[1]], "b": b"\x90" * 1000}), 3)
    assert payload_too_deep(msgpack.packb({"a": [[1]]}), 2)
    assert payload_too_deep(b"\x91" * 100_000 + b"\x01", 64)  # past msgpack's own stack
    assert not payload_too_deep(b"\xc1" * 100, 10)  # does not decode: not judged here
    assert value_too_deep(nested(100_000), 64)
    assert not value_too_deep({"k": [1, {"v": [2]}]}, 4)
    assert value_too_deep({"k": [1, {"v": [2]}]}, 3)
