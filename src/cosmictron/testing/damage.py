"""Helpers for tests that damage a log on a real disk: find frames, flip bytes."""

from __future__ import annotations

import os

from cosmictron.durability.record import FRAME_HEADER, FRAME_HEADER_BYTES
from cosmictron.durability.segment import SEGMENT_HEADER_BYTES


def frame_spans(path: str | os.PathLike[str]) -> list[tuple[int, int]]:
    """``(byte offset, payload length)`` of every frame of a healthy segment, in order.

    Zeros after the last frame are space the writer allocated ahead, not frames.
    """
    with open(path, "rb") as file:
        data = file.read()
    spans, position = [], SEGMENT_HEADER_BYTES
    end = len(data.rstrip(b"\0")) if len(data) > SEGMENT_HEADER_BYTES else len(data)
    while position < end:
        length = FRAME_HEADER.unpack_from(data, position)[0]
        spans.append((position, length))
        position += FRAME_HEADER_BYTES + length
    assert position >= end, f"{path} ends inside a frame: it is not healthy"
    return spans


def flip_byte(path: str | os.PathLike[str], position: int) -> None:
    """Invert every bit of one byte of a file, in place."""
    with open(path, "r+b") as file:
        file.seek(position)
        byte = file.read(1)
        file.seek(position)
        file.write(bytes([byte[0] ^ 0xFF]))
