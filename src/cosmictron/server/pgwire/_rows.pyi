"""Types of the compiled DataRow writer (``_rows.pyx``), for mypy; it may not be built."""

from collections.abc import Callable, Sequence
from typing import Any

def data_rows(
    rows: Sequence[tuple[Any, ...]], kinds: bytes, encoders: tuple[Callable[[Any], bytes], ...]
) -> bytes: ...
def frontend_run(data: bytes, at: int, bytes_max: int) -> list[tuple[Any, ...]]: ...
def match_round(
    data: bytes, at: int, head: bytes, tail: bytes, rest: bytes, bytes_max: int
) -> int: ...
