"""``GET /console/``: the web console, files served as they are from the package.

The console (issue 20, docs/guide/console.md) is a single-page app built from
``console/`` with esbuild into ``static/console/`` and committed, so installing or
running Cosmictron needs no Node; ``scripts/build-console --check`` fails when the
committed bundle differs from what its sources build. Only the files of that folder
are served, by name (no path is ever joined from the request). The page holds the
token it was given in the URL fragment, which browsers never send to a server, in
``sessionStorage``; the files themselves are public.

Answers are compressed when the browser accepts gzip, revalidated on every load
(``no-cache`` with an ``ETag``: the bundle changes with each release), and carry a
Content-Security-Policy that lets the page load only its own files and talk only to
this server.
"""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from cosmictron.errors import NotFound

STATIC = Path(__file__).parent / "static" / "console"
"""Where the built console lives inside the package."""

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


@cache
def _read(name: str) -> tuple[bytes, str]:
    """A file of the bundle and its ETag, read once per process."""
    data = (STATIC / name).read_bytes()
    return data, '"' + hashlib.sha256(data).hexdigest()[:32] + '"'


def bundle_files() -> list[str]:
    """The names of the console's files (what ``asset`` will serve)."""
    if not STATIC.is_dir():
        return []
    return sorted(
        entry.name
        for entry in STATIC.iterdir()
        if entry.is_file() and entry.suffix in CONTENT_TYPES
    )


async def redirect(request: web.Request) -> web.StreamResponse:
    """``/console`` to ``/console/``, so the page's relative file names resolve."""
    raise web.HTTPPermanentRedirect("/console/")


async def index(request: web.Request) -> web.StreamResponse:
    return _serve(request, "index.html")


async def asset(request: web.Request) -> web.StreamResponse:
    return _serve(request, request.match_info["file"])


def _serve(request: web.Request, name: str) -> web.StreamResponse:
    if name not in bundle_files():
        raise NotFound(f"the console has no file {name!r}")
    data, etag = _read(name)
    headers = {**SECURITY_HEADERS, "ETag": etag}
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers=headers)
    content_type = CONTENT_TYPES[os.path.splitext(name)[1]]
    response = web.Response(body=data, headers={**headers, "Content-Type": content_type})
    response.enable_compression()
    return response


def module_summary(directory: Path, source: bytes, filename: str) -> dict[str, Any]:
    """What the console shows of the running module: its SHA-256, file name and when it
    was deployed (the time its stored copy was written, which happens only when a
    deploy changes it; ``None`` if it is not stored yet)."""
    stored = directory / "module" / "module.py"
    try:
        deployed_us: int | None = stored.stat().st_mtime_ns // 1000
    except OSError:
        deployed_us = None
    return {
        "sha256": hashlib.sha256(source).hexdigest(),
        "filename": filename,
        "deployed_at_us": deployed_us,
    }


def ledger_summary(ledger: Any) -> dict[str, Any]:
    """Whether the database keeps a ledger, so a page can tell before asking the audit
    routes (which answer 409 ``ledger_off`` when it does not)."""
    return {"on": ledger is not None and ledger.tree is not None}
