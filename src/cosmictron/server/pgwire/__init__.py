"""The PostgreSQL frontend/backend protocol 3.0 on its own port (DESIGN.md §10, issue 22).

Owns: the socket (``listen``), one ``Session`` per connection (startup, the token as
the password, simple and extended query, transaction blocks, COPY TO STDOUT), the
mapping of Cosmictron's column types to PostgreSQL type OIDs and their text and binary
forms (``pgtypes``), the SQLSTATE of each error (``sqlstate``), the session statements
PostgreSQL clients send (``session_sql``: SET, SHOW, BEGIN ...) and the catalogue they
read (``catalog``: ``pg_catalog`` and ``information_schema``, built from the schema and
filtered by what the caller may see). Every other statement runs through
``Database.sql`` with the caller's identity, so rights, visibility filters and budgets
are those of ``POST /v1/database/{name}/sql``.

Written on asyncio streams rather than a library: the libraries available do not serve
(docs/design/pgwire.md). See docs/guide/postgres-clients.md.
"""

from cosmictron.server.pgwire.context import PgSettings
from cosmictron.server.pgwire.listen import listen_pg

__all__ = ["PgSettings", "listen_pg"]
