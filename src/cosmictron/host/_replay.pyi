"""Types of the compiled replay loop (``_replay.pyx``), for mypy; it may not be built."""

from collections.abc import Callable
from typing import Any

def take(
    batch: list[Any],
    i: int,
    pending: dict[str, tuple[Any, ...]],
    tx_kind: int,
    skip_kinds: frozenset[int],
    apart: frozenset[str],
    deleted: Any,
    refuse: Callable[[str, Any], BaseException],
) -> tuple[int, Any]: ...
