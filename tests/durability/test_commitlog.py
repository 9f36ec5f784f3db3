"""Appending and replaying real logs: offsets, the hash chain, rotation, failed writes."""

from __future__ import annotations

import errno
import os

import pytest

from cosmictron.durability import MODULE_RECORD_KIND, TX_RECORD_KIND, Record
from cosmictron.durability.record import FRAME_HEADER_BYTES, encode_payload
from cosmictron.errors import DurabilityError, InternalError
from cosmictron.ledger import GENESIS_HASH, record_hash
from cosmictron.testing import frame_spans

from .conftest import OpenLayer, recover_all, segment_files


def test_empty_log_recovers_to_offset_zero(open_layer: OpenLayer) -> None:
    layer = open_layer()
    recovery = layer.recover()
    assert recovery.snapshot is None
    assert list(recovery.records) == []
    assert recovery.last_offset == 0
    assert layer.next_offset == 1
    assert layer.last_hash == GENESIS_HASH


def test_append_then_recover_across_segment_rotation(open_layer: OpenLayer, data_dir: str) -> None:
    layer = open_layer(segment_bytes_max=4096)
    recover_all(layer)
    bodies = [{"n": n, "text": "x" * (n % 50)} for n in range(2000)]
    offsets = [layer.append(TX_RECORD_KIND, body) for body in bodies]
    assert offsets == list(range(1, 2001))
    last_hash = layer.last_hash
    layer.close()
    assert len(segment_files(data_dir)) > 10

    layer = open_layer(segment_bytes_max=4096)
    recovery = layer.recover()
    records = list(recovery.records)
    assert [record.body for record in records] == bodies
    assert [record.offset for record in records] == offsets
    assert recovery.last_offset == 2000
    assert layer.last_hash == last_hash
    assert layer.append(TX_RECORD_KIND, "next") == 2001


def test_hash_chain_links_every_record(open_layer: OpenLayer) -> None:
    layer = open_layer(segment_bytes_max=1024)
    recover_all(layer)
    for n in range(300):
        layer.append(TX_RECORD_KIND if n % 3 else MODULE_RECORD_KIND, n)
    layer.close()
    records = recover_all(open_layer(segment_bytes_max=1024))
    previous = GENESIS_HASH
    for record in records:
        assert record.prev_hash == previous
        previous = record.hash
    assert [record.kind for record in records[:3]] == [
        MODULE_RECORD_KIND,
        TX_RECORD_KIND,
        TX_RECORD_KIND,
    ]
    payload = encode_payload(records[-1].kind, records[-1].offset, previous_of(records), "x")
    assert records[-1].hash != record_hash(payload)  # the hash covers the body


def previous_of(records: list[Record]) -> bytes:
    return records[-1].prev_hash


def test_append_before_recovery_is_refused(open_layer: OpenLayer) -> None:
    layer = open_layer()
    with pytest.raises(InternalError):
        layer.append(TX_RECORD_KIND, 1)
    recovery = layer.recover()
    with pytest.raises(InternalError):
        layer.append(TX_RECORD_KIND, 1)  # records not exhausted yet
    list(recovery.records)
    assert layer.append(TX_RECORD_KIND, 1) == 1


def test_record_larger_than_limit_is_refused_and_log_stays_usable(open_layer: OpenLayer) -> None:
    layer = open_layer(record_bytes_max=100)
    recover_all(layer)
    with pytest.raises(DurabilityError, match="record_bytes_max"):
        layer.append(TX_RECORD_KIND, "x" * 200)
    assert layer.append(TX_RECORD_KIND, "small") == 1


def test_failed_write_leaves_nothing_and_log_stays_usable(
    open_layer: OpenLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    layer = open_layer()
    recover_all(layer)
    layer.append(TX_RECORD_KIND, "before")

    def write_half_then_fail(fd: int, position: int, parts: list[bytes]) -> int:
        os.pwrite(fd, b"".join(parts)[:5], position)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layer.storage, "writev_at", write_half_then_fail)
    with pytest.raises(DurabilityError, match="No space left"):
        layer.append(TX_RECORD_KIND, "lost")
    monkeypatch.undo()
    assert layer.append(TX_RECORD_KIND, "after") == 2
    layer.close()
    records = recover_all(open_layer())
    assert [record.body for record in records] == ["before", "after"]


def test_close_is_idempotent_and_append_after_close_fails(open_layer: OpenLayer) -> None:
    layer = open_layer()
    recover_all(layer)
    layer.close()
    layer.close()
    with pytest.raises(DurabilityError, match="closed"):
        layer.append(TX_RECORD_KIND, 1)


def test_statistics_count_this_session(open_layer: OpenLayer) -> None:
    layer = open_layer()
    recover_all(layer)
    for n in range(10):
        layer.append(TX_RECORD_KIND, n)
    statistics = layer.statistics()
    assert statistics.appends == 10
    assert statistics.durable_offset == 10  # under never: the highest written
    assert statistics.bytes_written > 0
    assert not statistics.failed


def test_always_buffers_until_the_leader_writes_and_a_failed_write_fails_the_log(
    open_layer: OpenLayer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under ``always`` the group-commit leader writes; its write failing is permanent.

    Records past the failure were applied in memory by their callers, so the log cannot
    stay usable: like a failed fsync, every later append and wait raises.
    """
    layer = open_layer(fsync_policy="always")
    recover_all(layer)
    first = layer.append(TX_RECORD_KIND, "first")
    segment = segment_files(layer.data_dir)[-1]
    size_before = os.path.getsize(segment)
    layer.wait_durable(first)
    assert os.path.getsize(segment) > size_before, "the leader wrote the frame"
    pending = layer.append(TX_RECORD_KIND, "pending")

    def fail(fd: int, position: int, parts: list[bytes]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(layer.storage, "writev_at", fail)
    with pytest.raises(DurabilityError, match="refuses further writes"):
        layer.wait_durable(pending)
    monkeypatch.undo()
    with pytest.raises(DurabilityError):
        layer.append(TX_RECORD_KIND, "after")
    layer.close()
    records = recover_all(open_layer())
    assert [record.body for record in records] == ["first"]


def test_segments_are_allocated_ahead_and_sealed_at_their_last_frame(
    open_layer: OpenLayer,
) -> None:
    """Frames are written into zeros allocated ahead (so syncs skip the size update);
    a sealed segment, and any segment after a clean close, ends at its last frame."""
    layer = open_layer(segment_bytes_max=4096)
    recover_all(layer)
    for n in range(100):
        layer.append(TX_RECORD_KIND, {"n": n, "pad": "p" * 40})
    *sealed, last = segment_files(layer.data_dir)
    assert sealed, "the log rotated"
    for path in sealed:
        spans = frame_spans(path)
        assert os.path.getsize(path) == spans[-1][0] + FRAME_HEADER_BYTES + spans[-1][1]
    end_of_frames = frame_spans(last)[-1][0] + FRAME_HEADER_BYTES + frame_spans(last)[-1][1]
    assert os.path.getsize(last) > end_of_frames, "the open segment is allocated ahead"
    layer.close()
    assert os.path.getsize(last) == end_of_frames
