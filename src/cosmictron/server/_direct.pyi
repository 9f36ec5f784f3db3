"""Types of the compiled direct frame write (``_direct.pyx``), for mypy; it may not be built."""

from typing import Any

def send_frame(ws: Any, transport: Any, fd: int, data: bytes) -> bool | int: ...
