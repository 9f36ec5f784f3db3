"""Which engine a deployed JavaScript module runs on: ``?engine=`` and the content type.

A deploy's body is the module's bytes. A JavaScript module is recognised by its content
type (``text/javascript``, ``application/javascript``), by ``?engine=v8|quickjs``, or
by the first line a previous deploy recorded (``module/js.py``, ``stamp``); it is then
stamped with its engine before anything else sees it, so the rights check, the module
record and every replay agree on what it is and how it runs (docs/reference/http.md).
"""

from __future__ import annotations

from cosmictron.errors import InvalidRequest
from cosmictron.module import js

JS_CONTENT_TYPES = frozenset(
    {"text/javascript", "application/javascript", "application/x-javascript"}
)


def module_bytes(source: bytes, content_type: str, engine: str | None) -> bytes:
    """The bytes to deploy: a JavaScript module stamped with its engine, else ``source``.

    Raises:
        InvalidRequest: ``engine`` is not a JavaScript engine, or was given with a
            module that is not JavaScript (a WASM module or a Python one).
    """
    if engine is not None and engine not in js.ENGINES:
        raise InvalidRequest(
            f"engine {engine!r} is not a JavaScript engine: use one of "
            f"{', '.join(js.ENGINES)} (default {js.DEFAULT_ENGINE})"
        )
    javascript = content_type in JS_CONTENT_TYPES or source.startswith(js.PRAGMA)
    if engine is not None and not javascript:
        if source[:4] == b"\0asm":
            raise InvalidRequest("?engine= chooses a JavaScript engine; this module is WASM")
        if content_type not in ("", "application/octet-stream"):
            raise InvalidRequest(
                f"?engine= chooses a JavaScript engine; this module was sent as "
                f"{content_type} (send JavaScript as text/javascript)"
            )
        javascript = True  # no content type: the engine says it is JavaScript
    if not javascript:
        return source
    return js.stamp(source, engine)
