"""Recovery reads a segment in batches (``SegmentReader.batches``): the same records and
the same precise errors wherever in a batch, or across batches, the damage falls."""

from __future__ import annotations

import itertools

import pytest

from cosmictron.durability import TX_RECORD_KIND
from cosmictron.durability.segment import BATCH_FRAMES
from cosmictron.errors import CorruptLog

from .conftest import OpenLayer, flip_byte, frame_positions, recover_all, segment_files
from .test_recovery import rewrite_kind, write_log

COUNT = 3 * BATCH_FRAMES + 5
"""Records in the log: three full batches and a partial one."""

POSITIONS = [0, BATCH_FRAMES - 1, BATCH_FRAMES, 2 * BATCH_FRAMES + 7, COUNT - 2]
"""Zero-based records to damage: first, a batch's last and next's first, mid, near the end."""


def test_every_record_comes_back_across_batches(open_layer: OpenLayer) -> None:
    write_log(open_layer, COUNT)
    records = recover_all(open_layer())
    assert [record.offset for record in records] == list(range(1, COUNT + 1))
    assert [record.body["n"] for record in records] == list(range(1, COUNT + 1))
    for before, after in itertools.pairwise(records):
        assert after.prev_hash == before.hash


@pytest.mark.parametrize("index", POSITIONS)
def test_a_flipped_payload_byte_names_its_record_in_any_batch(
    open_layer: OpenLayer, data_dir: str, index: int
) -> None:
    write_log(open_layer, COUNT)
    (path,) = segment_files(data_dir)
    position = frame_positions(path)[index]
    flip_byte(path, position + 20)
    with pytest.raises(CorruptLog) as raised:
        recover_all(open_layer())
    assert raised.value.byte_offset == position and raised.value.tx_offset == index + 1


@pytest.mark.parametrize("index", POSITIONS)
def test_a_well_framed_bad_record_names_its_offset_in_any_batch(
    open_layer: OpenLayer, data_dir: str, index: int
) -> None:
    # The crc verifies, so only the batch's decode checks can catch it; the record-at-a-
    # time pass they fall back to must name this record, not its batch.
    write_log(open_layer, COUNT)
    (path,) = segment_files(data_dir)
    rewrite_kind(path, frame_positions(path)[index], 99)  # 2-7 are the ledger's kinds
    with pytest.raises(CorruptLog, match="unknown record kind 99") as raised:
        recover_all(open_layer())
    assert raised.value.tx_offset == index + 1


def test_a_torn_tail_after_several_batches_is_cut_and_appending_resumes(
    open_layer: OpenLayer, data_dir: str
) -> None:
    write_log(open_layer, COUNT)
    (path,) = segment_files(data_dir)
    with open(path, "ab") as segment:
        segment.write(b"\x05\x00\x00\x00")
    layer = open_layer()
    assert len(recover_all(layer)) == COUNT
    assert layer.append(TX_RECORD_KIND, {"n": COUNT + 1}) == COUNT + 1
    layer.close()
