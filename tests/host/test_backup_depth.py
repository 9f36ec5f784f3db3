"""A backup whose records or snapshot nest past ``limits.msgpack_depth_max`` is refused
on restore as ``BackupDamaged`` naming the member, before anything walks it (issue 21).

The archive is a real one: an embedded caller (whose arguments no JSON depth limit
bounds) stores a deeply nested argument, which the log records; over the server, call
arguments are at most ``limits.json_depth_max`` deep, well under the msgpack limit.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgpack
import pytest

from cosmictron import Database, DurabilityConfig, limits
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

@table(name="kept", public=True)
class Kept:
    id: int = field(primary_key=True, auto_inc=True)
    value: {kind} = field(default=[])

@reducer
def keep(ctx: ReducerContext, value: {kind}) -> None:
    ctx.db.seen.insert(Seen())

@reducer
def store(ctx: ReducerContext, value: {kind}) -> None:
    ctx.db.kept.insert(Kept(value=value))
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


def test_a_snapshot_nested_past_the_limit_is_refused_naming_its_member(
    tmp_path: Path, monkeypatch
) -> None:
    path = tmp_path / "app.py"
    path.write_text(module(NESTING))
    config = dataclasses.replace(
        DurabilityConfig.from_profile("development"), snapshot_interval_tx=2
    )
    with Database.open(tmp_path / "source", path, durability=config) as db:
        for _ in range(4):
            db.call("store", nested(NESTING))
        db.wait_durable(db.tx_offset)
        db.core.persistence.wait_snapshots()
        manifest = db.backup(tmp_path / "backup.tar")
    assert manifest.snapshot_offset is not None
    monkeypatch.setattr(limits, "msgpack_depth_max", NESTING)  # the snapshot is checked first
    with pytest.raises(BackupDamaged) as caught:
        verify_backup(tmp_path / "backup.tar")
    message = str(caught.value)
    assert f"snapshots/{manifest.snapshot_offset:020d}.snap" in message
    assert "limits.msgpack_depth_max" in message


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
