"""The server: many databases behind HTTP and WebSocket (DESIGN.md §5).

Owns: the HTTP and WebSocket routes (every one listed in ``app.ROUTES``), the JSON forms
of values (``wire``), identities and tokens (``auth``), who may deploy code (``rights``:
the operator and its grants), the databases a server hosts (``registry``), the client
connections and their limits (``connections``) and the process (``app.serve``).
Imports: ``host`` and the layers below it; it re-implements none of them (a WebSocket
subscription is ``Database.subscribe``). See docs/reference/http.md and, for who may
run code, docs/guide/security.md.
"""

from cosmictron.server.app import build_app, serve
from cosmictron.server.auth import ANONYMOUS, TokenAuthority
from cosmictron.server.registry import DatabaseRegistry

__all__ = ["ANONYMOUS", "DatabaseRegistry", "TokenAuthority", "build_app", "serve"]
