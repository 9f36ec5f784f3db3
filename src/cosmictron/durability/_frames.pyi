"""Types of the compiled frame reader (``_frames.pyx``), for mypy; it may not be built."""

from collections.abc import Callable
from typing import Any

def read_frames(
    data: bytes,
    position: int,
    record_bytes_max: int,
    max_frames: int,
    next_offset: int,
    last_hash: bytes | None,
    unpackb: Callable[..., Any],
    unpack_kwargs: dict[str, Any],
    kinds: frozenset[int],
    formats: dict[int, int],
    record_type: type[tuple[Any, ...]],
    want_records: bool = True,
) -> tuple[list[Any], int, int, bytes | None]: ...
def seal(payload: bytes) -> tuple[int, bytes]: ...
def pack_record(fields: object) -> bytes | None: ...
def frame_record(fields: object, durable: int) -> tuple[bytes, bytes] | None: ...
