"""Types of the compiled row helper (``_rows.pyx``), for mypy; it may not be built."""

from typing import Any

def untrack_atomic(rows: list[Any]) -> None: ...
