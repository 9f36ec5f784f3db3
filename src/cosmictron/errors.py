"""Every error Cosmictron raises, in one hierarchy.

Edges (the server's exception handler, the CLI's ``main``) translate these into an HTTP
status or a one-line message and a non-zero exit; nothing in between swallows them.
``code`` is stable and snake_case so clients can match on it; ``http_status`` is what the
server replies with.

::

    CosmictronError
    ├── InvalidRequest 400      bad arguments, wrong value type, integer out of range,
    │                           a write to an append-only (event) table
    │   ├── SqlError            (query layer, with SQL) line, column and offending text
    │   ├── SchemaError         a module declares an impossible table or reducer
    │   ├── SubscriptionError   a subscription ended: its table changed or maintenance failed
    │   ├── ConfigError         unknown profile or policy name, bad config.toml
    │   ├── TooLarge 413        a request body over its route's limit
    │   ├── TooDeep             JSON nested deeper than ``limits.json_depth_max``
    │   │   └── SqlTooDeep      (also a SqlError) SQL nested deeper than ``limits.sql_depth_max``
    │   └── NotFinite           NaN, an infinity or a number past the float range
    ├── Unauthenticated 401     a bad, forged or expired token
    ├── PermissionDenied 403    not the owner; a private table
    ├── NotFound 404            database, table, reducer, row
    ├── Conflict 409            unique or primary-key violation
    ├── DatabaseInUse 409       another process holds the data directory's lock
    ├── ReducerFailed 400       the reducer raised; its transaction rolled back
    ├── ProcedureTimedOut 504   a procedure ran past its timeout_s; the caller stopped waiting
    ├── ResourceExhausted 507   a memory limit would be exceeded; nothing was changed
    │   └── QueryTooCostly 422  a query examined or returned more rows than its budget
    ├── QueryCancelled 422      a query ran past its time budget and was stopped
    ├── RateLimited 429         too many requests from one identity or address; retry later
    ├── DurabilityError 503     disk full or fsync failed: the database stops accepting writes
    │   ├── CorruptLog          names the file and byte offset of the first bad record
    │   └── ClusterUnavailable  (cluster mode) JetStream has no quorum; retry after Retry-After
    │       └── NotLeader       (cluster mode) this node's append was refused as stale
    ├── VerificationFailed 422  the audit found a bad record; names the first one
    │   └── BackupDamaged       a backup archive fails its checksums or its log check
    ├── ConnectionLost 503      (client SDK) the connection dropped before a reply came
    └── InternalError 500       a bug in Cosmictron, never a user's mistake
"""

from __future__ import annotations


class CosmictronError(Exception):
    """Base class: catch this to handle anything Cosmictron raises on purpose."""

    code = "cosmictron_error"
    http_status = 500
    traceback: str | None = None
    """The frames of the user's own code that led here (a module's load error, a
    reducer's exception), Cosmictron's frames left out; None for most errors. Shown to
    the database's owner only (``error_document``)."""


class InvalidRequest(CosmictronError):
    """The caller sent something that can never succeed as sent (bad value, bad arity)."""

    code = "invalid_request"
    http_status = 400


class SchemaError(InvalidRequest):
    """A module declares something the datastore cannot hold (bad column type, bad key)."""

    code = "schema_error"


class SqlError(InvalidRequest):
    """A SQL statement cannot run as written: bad syntax, unknown name, type mismatch.

    Like SQLGlot's ``ParseError`` it says where: ``line`` and ``column`` (1-based) and the
    offending ``text``, when the problem has a place in the statement.

    Attributes:
        line: 1-based line of the offending text, or None.
        column: 1-based column where the offending text starts, or None.
        text: the offending text ("" when unknown).
    """

    code = "sql_error"

    def __init__(
        self,
        message: str,
        *,
        line: int | None = None,
        column: int | None = None,
        text: str = "",
    ) -> None:
        where = ""
        if line is not None:
            where = f" (line {line}, column {column}"
            where += f": {text!r})" if text else ")"
        super().__init__(message + where)
        self.reason = message
        self.line = line
        self.column = column
        self.text = text


class SubscriptionError(InvalidRequest):
    """A subscription was ended: its query no longer fits the schema, or could not be
    maintained. Delivered to the subscriber (``on_error``, WebSocket ``SubscriptionError``);
    the other subscriptions keep running."""

    code = "subscription_error"


class ConfigError(InvalidRequest):
    """A configuration value (profile, fsync policy, config.toml) is not one we know."""

    code = "config_error"


class TooLarge(InvalidRequest):
    """A request body is larger than its route's limit; nothing was read past it."""

    code = "too_large"
    http_status = 413


class TooDeep(InvalidRequest):
    """Input nested deeper than its limit (``limits.json_depth_max`` for JSON); refused
    before it is decoded, since decoding and every later walk of it would recurse."""

    code = "too_deep"


class SqlTooDeep(SqlError, TooDeep):
    """A SQL statement nests deeper than ``limits.sql_depth_max`` or
    ``limits.sql_expression_depth_max`` (bound-sql, issue 21): refused before it is
    parsed or bound, both of which recurse. A ``SqlError`` (so every SQL edge reports it
    as one) whose code is ``too_deep``, like every depth limit's."""

    code = "too_deep"


class NotFinite(InvalidRequest):
    """A float that is NaN or infinite (``Infinity``, ``NaN``, ``1e400`` in JSON) where
    the server must carry it as JSON: strict parsers refuse such a message whole
    (docs/reference/column-types.md, "Floats")."""

    code = "not_finite"


class Unauthenticated(CosmictronError):
    """A token is missing where one is needed, malformed, forged or expired."""

    code = "unauthenticated"
    http_status = 401


class PermissionDenied(CosmictronError):
    """The caller's identity may not do this (not the owner, private table)."""

    code = "permission_denied"
    http_status = 403


class NotFound(CosmictronError):
    """A named thing (database, table, reducer, row) does not exist."""

    code = "not_found"
    http_status = 404


class Conflict(CosmictronError):
    """The write contradicts a constraint: a duplicate primary key or unique value."""

    code = "conflict"
    http_status = 409


class DatabaseInUse(CosmictronError):
    """Another process has this data directory open; two writers would corrupt the log."""

    code = "database_in_use"
    http_status = 409


class ReducerFailed(CosmictronError):
    """A reducer raised; everything it did was rolled back.

    Attributes:
        reducer: the reducer's name.
        cause_type: the class name of the exception the reducer raised.
    """

    code = "reducer_failed"
    http_status = 400

    def __init__(self, reducer: str, message: str, cause_type: str = "Exception") -> None:
        super().__init__(f"reducer {reducer!r} failed: {message}")
        self.reducer = reducer
        self.cause_type = cause_type
        self.reason = message


class ProcedureTimedOut(CosmictronError):
    """A procedure call ran longer than its ``timeout_s``; its caller stopped waiting.

    Transactions the procedure committed with ``ctx.with_tx`` before (or while) the
    timeout struck stay committed; it cannot open another one afterwards.

    Attributes:
        procedure: the procedure's name.
        timeout_s: the timeout it exceeded.
    """

    code = "procedure_timed_out"
    http_status = 504

    def __init__(self, procedure: str, timeout_s: float) -> None:
        super().__init__(
            f"procedure {procedure!r} did not finish within its timeout of {timeout_s:g} s "
            f"(raise it with @procedure(timeout_s=...)); transactions it committed before "
            f"stay committed"
        )
        self.procedure = procedure
        self.timeout_s = timeout_s


class ResourceExhausted(CosmictronError):
    """Committing would take the database past a configured limit; nothing was changed."""

    code = "resource_exhausted"
    http_status = 507


class QueryTooCostly(ResourceExhausted):
    """A query examined (or would return) more rows than its budget; it was stopped.

    Its code is ``resource_exhausted`` like its parent's, but its status is 422: the
    query, not the server, is at fault, and sending it again unchanged fails again. The
    message names the limit and how to raise it (``limits.py``, ``Database.sql(...)``).
    """

    http_status = 422


class QueryCancelled(CosmictronError):
    """A query ran longer than its time budget and was stopped; nothing was changed.

    422 rather than 408 (which clients and proxies retry on their own, running the same
    costly query again) or a 5xx (the server is fine; the query is too costly). The
    message names the limit and how to raise it.
    """

    code = "query_cancelled"
    http_status = 422


class RateLimited(CosmictronError):
    """One identity (or, without a token, one address) sent requests faster than its
    rate limit (``limits.rate_*``); nothing was done. Retry after ``retry_after_s``.

    Attributes:
        retry_after_s: seconds until the request would be accepted (HTTP ``Retry-After``);
            1.0 where only the message is known (the SDK rebuilding a server's reply).
    """

    code = "rate_limited"
    http_status = 429

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class DurabilityError(CosmictronError):
    """Writing or syncing the commit log failed; the database refuses further writes."""

    code = "durability_error"
    http_status = 503


class CorruptLog(DurabilityError):
    """A record on disk is damaged somewhere other than a torn tail.

    Attributes:
        path: the segment or snapshot file.
        byte_offset: where in that file the bad record starts.
        tx_offset: the transaction offset expected there, when known.
    """

    code = "corrupt_log"

    def __init__(
        self, path: str, byte_offset: int, reason: str, tx_offset: int | None = None
    ) -> None:
        where = f"{path} at byte {byte_offset}"
        if tx_offset is not None:
            where += f" (transaction offset {tx_offset})"
        super().__init__(f"corrupt commit log: {where}: {reason}")
        self.path = path
        self.byte_offset = byte_offset
        self.tx_offset = tx_offset
        self.reason = reason


class ClusterUnavailable(DurabilityError):
    """Cluster mode (issue 19): the replicated log did not acknowledge a record in time.

    JetStream lost its quorum or is unreachable. The transaction may still be stored
    once the cluster recovers (its record keeps its message id, so a retry never
    doubles it); nothing is reported committed before that. Retry after ``retry_after_s``.
    """

    code = "cluster_unavailable"
    http_status = 503

    def __init__(self, message: str, retry_after_s: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotLeader(ClusterUnavailable):
    """Cluster mode: this node's append was refused as stale (another node leads now).

    Whatever this node had not had acknowledged is dropped; it rejoins as a follower.
    """

    code = "not_leader"


class VerificationFailed(CosmictronError):
    """An audit check failed; the message names the first bad record."""

    code = "verification_failed"
    http_status = 422


class ConnectionLost(CosmictronError):
    """The client's connection to the server dropped while a request waited for its reply.

    Raised by the client SDK for a reducer call or query in flight when the connection
    broke. The call may or may not have committed: a reducer call is not idempotent, so
    the SDK never resends it; check the state (the subscription cache, a query) and decide.
    """

    code = "connection_lost"
    http_status = 503


class BackupDamaged(VerificationFailed):
    """A backup archive is damaged (a checksum, its manifest, or its log does not check).

    Raised when a backup is verified after it is written and before it is restored; the
    message names the member and what is wrong. A restore that raises it created nothing.
    """

    code = "backup_damaged"


class InternalError(CosmictronError):
    """A bug in Cosmictron, never the caller's mistake; please report it."""

    code = "internal_error"
    http_status = 500


# -- connections (issue 21, bound-conn: server/connections.py) ----------------------------


class RequestTimedOut(CosmictronError):
    """A client sent a request's head or body slower than ``limits.http_head_s_max`` or
    ``http_body_s_max`` / ``http_body_rate_bytes_per_s_min`` allow; the request was not
    handled and the connection is closed. Send the request again, faster."""

    code = "request_timeout"
    http_status = 408


class TooManyConnections(CosmictronError):
    """The server holds as many connections as it allows, in all (``limits.connections_max``)
    or from the caller's address (``connections_per_address_max``); the new connection
    was answered with ``Retry-After`` and closed. Nothing was done."""

    code = "too_many_connections"
    http_status = 503


class OriginNotAllowed(PermissionDenied):
    """A browser page sent a request (or a WebSocket upgrade) with an ``Origin`` the server
    does not allow: only its own origin, loopback pages and those named in
    ``COSMICTRON_ALLOWED_ORIGINS`` may use it (``server/origins.py``). Nothing was done."""

    code = "origin_not_allowed"


# -- MCP (issue 14, agents-mcp: server/mcp_route.py) ---------------------------------------


class McpUnavailable(CosmictronError):
    """The server was installed without the ``mcp`` extra, so ``POST .../mcp`` cannot
    speak the Model Context Protocol; install ``cosmictron[mcp]`` and restart it."""

    code = "mcp_unavailable"
    http_status = 501


# -- one form of every error, for every edge (issue 16, newcomer-errors) -------------------
#
# The server's HTTP replies, its WebSocket replies, the CLI and the SDK all render an
# error through these functions, so a code and its wording are the same everywhere
# (docs/design/errors.md). Wording that more than one layer raises lives here too.


def attach_traceback(error: CosmictronError, text: str | None) -> CosmictronError:
    """Give ``error`` the user's frames: as ``error.traceback`` (for the wire) and as a
    note (``add_note``), so an embedded application's own traceback shows them too."""
    if text:
        error.traceback = text
        error.add_note(text)
    return error


def error_document(error: CosmictronError, *, show_traceback: bool) -> dict[str, str]:
    """``{"code", "message"}`` of ``error``, plus ``"traceback"`` when it has one and
    ``show_traceback`` (the caller owns the database, or deployed the module)."""
    document = {"code": error.code, "message": str(error)}
    if show_traceback and error.traceback:
        document["traceback"] = error.traceback
    return document


def render_error(message: str, traceback: str | None = None) -> str:
    """An error as a person reads it: ``error: <one line>``, then the user's frames,
    indented, when there are any (the CLI prints this; the SDK's notes carry the same)."""
    head = " ".join(message.split()) if "\n" in message.strip() else message.strip()
    text = f"error: {head}"
    if traceback:
        text += "\n" + traceback.rstrip("\n")
    return text


def unknown_reducer(reducer: str, known: list[str]) -> NotFound:
    """The one wording of "no such reducer", embedded, over HTTP and over WebSocket."""
    listed = ", ".join(sorted(known)) or "none"
    return NotFound(f"no reducer named {reducer!r} (reducers: {listed})")
