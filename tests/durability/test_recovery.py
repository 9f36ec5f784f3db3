"""Recovery on damaged logs: real segment files cut, extended and bit-flipped on disk.

A torn tail (the end of the last segment) must be truncated and appending must resume;
any damage followed by a valid frame, or in an earlier segment, must be refused with a
CorruptLog naming the file and byte offset.
"""

from __future__ import annotations

import os

import pytest

from cosmictron.durability import TX_RECORD_KIND
from cosmictron.durability.record import (
    FRAME_HEADER,
    FRAME_HEADER_BYTES,
    frame_crc,
    payload_crc,
)
from cosmictron.errors import CorruptLog, InternalError

from .conftest import OpenLayer, flip_byte, frame_positions, recover_all, segment_files


def write_log(open_layer: OpenLayer, count: int, **overrides: object) -> None:
    """Append ``count`` records, each synced before the next (so later frames vouch)."""
    layer = open_layer(**{"fsync_policy": "always", **overrides})
    recover_all(layer)
    for n in range(1, count + 1):
        layer.wait_durable(layer.append(TX_RECORD_KIND, {"n": n, "pad": "p" * 40}))
    layer.close()


def assert_recovers(open_layer: OpenLayer, expected_count: int, **overrides: object) -> None:
    """Recovery yields records 1..expected_count, then appending and re-recovery work."""
    layer = open_layer(**overrides)
    records = recover_all(layer)
    assert [record.body["n"] for record in records] == list(range(1, expected_count + 1))
    assert layer.append(TX_RECORD_KIND, {"n": expected_count + 1}) == expected_count + 1
    layer.close()
    records = recover_all(open_layer(**overrides))
    assert [record.offset for record in records] == list(range(1, expected_count + 2))


@pytest.mark.parametrize("cut_bytes", [1, 5, 8, 9, 30])
def test_truncated_last_record_is_a_torn_tail(
    open_layer: OpenLayer, data_dir: str, cut_bytes: int
) -> None:
    write_log(open_layer, 20)
    (path,) = segment_files(data_dir)
    last_frame = frame_positions(path)[-1]
    size = os.path.getsize(path)
    os.truncate(path, size - cut_bytes if cut_bytes < size - last_frame else last_frame + 3)
    assert_recovers(open_layer, 19)
    assert os.path.getsize(path) > last_frame  # truncated to the valid end, then appended


@pytest.mark.parametrize("tail", [b"\xde\xad\xbe\xef" * 10, b"\xff" * 3, b"\x05\x00\x00\x00"])
def test_trailing_garbage_is_a_torn_tail(open_layer: OpenLayer, data_dir: str, tail: bytes) -> None:
    write_log(open_layer, 10)
    (path,) = segment_files(data_dir)
    healthy_size = os.path.getsize(path)
    with open(path, "ab") as file:
        file.write(tail)
    layer = open_layer()
    assert len(recover_all(layer)) == 10
    assert os.path.getsize(path) == healthy_size  # the tail was cut before appending
    layer.close()
    assert_recovers(open_layer, 10)


def test_trailing_zeros_are_allocated_space_kept_and_written_over(
    open_layer: OpenLayer, data_dir: str
) -> None:
    """The writer fills a segment with zeros ahead of its frames (``PREALLOCATE_BYTES``):
    recovery keeps them as free space, nothing is cut or kept aside, and the next frame
    goes right after the last one."""
    write_log(open_layer, 10)
    (path,) = segment_files(data_dir)
    healthy_size = os.path.getsize(path)
    with open(path, "ab") as file:
        file.write(bytes(4096))
    layer = open_layer()
    assert len(recover_all(layer)) == 10
    assert os.path.getsize(path) == healthy_size + 4096, "the allocation is kept"
    assert layer.append(TX_RECORD_KIND, {"n": 11}) == 11
    layer.close()
    assert os.path.getsize(path) < healthy_size + 4096, "a clean close trims the allocation"
    assert not [name for name in os.listdir(os.path.dirname(path)) if ".torn-" in name]
    assert [record.body["n"] for record in recover_all(open_layer())] == list(range(1, 12))


def test_flipped_payload_byte_in_the_middle_is_corrupt(
    open_layer: OpenLayer, data_dir: str
) -> None:
    write_log(open_layer, 20)
    (path,) = segment_files(data_dir)
    position = frame_positions(path)[7]
    flip_byte(path, position + 20)
    layer = open_layer()
    with pytest.raises(CorruptLog) as raised:
        recover_all(layer)
    error = raised.value
    assert error.path == path and error.byte_offset == position and error.tx_offset == 8
    assert path in str(error) and f"byte {position}" in str(error)


def test_flipped_length_byte_in_the_middle_is_still_refused(
    open_layer: OpenLayer, data_dir: str
) -> None:
    # A damaged length makes the frame look like it runs to the end of the file, exactly
    # like a torn tail; the resync scan finds the valid frames after it.
    write_log(open_layer, 20)
    (path,) = segment_files(data_dir)
    position = frame_positions(path)[5]
    flip_byte(path, position + 1)
    with pytest.raises(CorruptLog, match="damage to durable data") as raised:
        recover_all(open_layer())
    assert raised.value.byte_offset == position


def test_flipped_byte_in_an_earlier_segment_is_corrupt(
    open_layer: OpenLayer, data_dir: str
) -> None:
    write_log(open_layer, 200, segment_bytes_max=1024)
    paths = segment_files(data_dir)
    assert len(paths) > 3
    last_frame = frame_positions(paths[1])[-1]
    flip_byte(paths[1], last_frame + 12)  # its last frame: nothing follows in that file
    with pytest.raises(CorruptLog) as raised:
        recover_all(open_layer(segment_bytes_max=1024))
    assert raised.value.path == paths[1] and raised.value.byte_offset == last_frame


def test_truncated_earlier_segment_is_corrupt(open_layer: OpenLayer, data_dir: str) -> None:
    write_log(open_layer, 200, segment_bytes_max=1024)
    paths = segment_files(data_dir)
    os.truncate(paths[0], os.path.getsize(paths[0]) - 3)
    with pytest.raises(CorruptLog) as raised:
        recover_all(open_layer(segment_bytes_max=1024))
    assert raised.value.path == paths[0]


def test_missing_middle_segment_is_corrupt(open_layer: OpenLayer, data_dir: str) -> None:
    write_log(open_layer, 200, segment_bytes_max=1024)
    paths = segment_files(data_dir)
    os.unlink(paths[2])
    with pytest.raises(CorruptLog, match="missing") as raised:
        recover_all(open_layer(segment_bytes_max=1024))
    assert os.path.basename(paths[2]) in str(raised.value)


def test_missing_first_segment_is_corrupt(open_layer: OpenLayer, data_dir: str) -> None:
    write_log(open_layer, 200, segment_bytes_max=1024)
    os.unlink(segment_files(data_dir)[0])
    with pytest.raises(CorruptLog, match=r"records 1\.\.\d+ are missing"):
        recover_all(open_layer(segment_bytes_max=1024))


def test_valid_crc_with_wrong_chain_is_corrupt_even_at_the_tail(
    open_layer: OpenLayer, data_dir: str
) -> None:
    # A second, independent log's records copied over: every crc verifies but the
    # offsets and prev_hash do not continue this log. No torn write produces that.
    write_log(open_layer, 5)
    (path,) = segment_files(data_dir)
    with open(path, "rb") as file:
        data = file.read()
    start = frame_positions(path)[1]
    with open(path, "ab") as file:
        file.write(data[start:])
    with pytest.raises(CorruptLog, match="offset"):
        recover_all(open_layer())


def test_segment_with_foreign_header_is_corrupt(open_layer: OpenLayer, data_dir: str) -> None:
    write_log(open_layer, 5)
    (path,) = segment_files(data_dir)
    flip_byte(path, 0)
    with pytest.raises(CorruptLog, match="magic"):
        recover_all(open_layer())


def test_a_large_garbage_tail_is_scanned_by_payload_prefix(
    open_layer: OpenLayer, data_dir: str
) -> None:
    """16 MiB of random bytes after the last record: a torn tail, found without a
    byte-by-byte scan (the resync scan jumps between payload prefixes)."""
    import random

    write_log(open_layer, 10)
    (path,) = segment_files(data_dir)
    with open(path, "ab") as file:
        file.write(random.Random(7).randbytes(16 << 20))
    assert len(recover_all(open_layer())) == 10


def test_a_half_created_segment_is_removed_by_recovery_but_not_by_a_live_listing(
    open_layer: OpenLayer, data_dir: str
) -> None:
    """A ``.tmp`` segment is the writer's next segment while the log is live (a backup
    lists the log then) and a leftover only at recovery: only recovery removes it."""
    from cosmictron.durability.segment import list_segments
    from cosmictron.durability.storage import FILE_STORAGE

    write_log(open_layer, 3)
    log_dir = os.path.join(data_dir, "log")
    pending = os.path.join(log_dir, f"{99:020d}.log.tmp")
    with open(pending, "wb") as handle:
        handle.write(b"being created")
    assert [base for base, _ in list_segments(FILE_STORAGE, log_dir)] == [1]
    assert os.path.exists(pending)  # a live listing leaves it for the writer
    assert_recovers(open_layer, 3)
    assert not os.path.exists(pending)  # recovery: nothing can be writing it


def rewrite_kind(path: str, position: int, kind: int) -> None:
    """Give the frame at ``position`` another kind, with a crc that matches again.

    The frame stays well-formed, as one written by a newer version would be.
    """
    with open(path, "r+b") as segment:
        segment.seek(position)
        header = segment.read(FRAME_HEADER_BYTES)
        length, _, durable = FRAME_HEADER.unpack(header)
        payload = bytearray(segment.read(length))
        assert payload[:3] == bytes([0x9A, 0x02, TX_RECORD_KIND])
        payload[2] = kind
        segment.seek(position)
        segment.write(FRAME_HEADER.pack(length, frame_crc(payload_crc(payload), durable), durable))
        segment.write(payload)


@pytest.mark.parametrize("count", [4, 6], ids=["at the tail", "mid-log"])
def test_an_unknown_record_kind_is_refused_with_its_offset(
    open_layer: OpenLayer, data_dir: str, count: int
) -> None:
    write_log(open_layer, count)
    path = segment_files(data_dir)[-1]
    rewrite_kind(path, frame_positions(path)[3], 99)
    with pytest.raises(CorruptLog, match=r"offset 4\).*unknown record kind 99") as refused:
        recover_all(open_layer())
    assert refused.value.tx_offset == 4 and refused.value.path == path


def test_appending_an_unknown_kind_is_refused_before_anything_is_written(
    open_layer: OpenLayer,
) -> None:
    layer = open_layer()
    recover_all(layer)
    with pytest.raises(InternalError, match="record kind 9"):
        layer.append(9, {"n": 1})
    assert layer.append(TX_RECORD_KIND, {"n": 1}) == 1
    layer.close()
    assert [record.offset for record in recover_all(open_layer())] == [1]
