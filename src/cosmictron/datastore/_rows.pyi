"""Types of the compiled row helper (``_rows.pyx``), for mypy; it may not be built."""

from typing import Any

def untrack_atomic(rows: list[Any]) -> None: ...
def net_effect_pass(
    changes: dict[Any, Any],
    held: dict[Any, Any],
    deleted: Any,
    key_getters: list[Any],
    positions: list[int],
    required: list[bool],
) -> tuple[dict[Any, Any], int, list[list[list[Any]]]]: ...

class RowChecker:
    def __init__(
        self, kinds: list[int], lows: list[int], highs: list[int], checks: list[Any]
    ) -> None: ...
    def __call__(self, values: Any) -> tuple[Any, ...]: ...
