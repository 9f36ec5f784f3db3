"""One PostgreSQL connection: startup and authentication, then the query loop.

Startup: SSLRequest and GSSENCRequest are answered ``N`` (no TLS on this port yet; a
TLS-terminating proxy or ``start_tls`` later, docs/guide/postgres-clients.md), a
CancelRequest cancels the named session's running query, anything but protocol 3.0 is
refused. The startup packet is capped (``limits.pg_startup_bytes_max``) and the whole
of startup and authentication must finish within ``limits.pg_auth_s_max``. The
password is an identity's token, checked by ``TokenAuthority`` (FATAL 28P01 when
wrong); the database name must be a hosted database (FATAL 3D000).

Queries: the simple protocol (``Q``, several statements allowed) and the extended one
(Parse, Bind, Describe, Execute, Close, Sync, Flush) share ``_run``: a statement is a
session command (``session_sql``), a catalogue query (``catalog``), a ``COPY (SELECT
...) TO STDOUT``, or goes to the engine. After an error in the extended protocol every
message up to Sync is skipped, as PostgreSQL does. ReadyForQuery carries the true
transaction status: ``I`` idle, ``T`` in a block, ``E`` in a failed block.

Transaction blocks (docs/design/pgwire.md, "Transaction blocks"): a block's DML is run as it
arrives inside a transaction that is rolled back (to report its row count and errors
at once), and the whole block is run again and committed as one transaction at
``COMMIT``; a SELECT in a block sees the block's own writes. Other readers see nothing
of a block before its COMMIT.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

from cosmictron.errors import (
    CosmictronError,
    NotFound,
    QueryCancelled,
    RateLimited,
    Unauthenticated,
)
from cosmictron.host.sql import point_rows, select_batches
from cosmictron.query import QueryResult
from cosmictron.query.budget import QueryBudget
from cosmictron.query.cache import Prepared
from cosmictron.query.params import fixed_weight
from cosmictron.server.pgwire import catalog, messages, pgtypes, results, rounds, session_sql
from cosmictron.server.pgwire.inbound import Inbound
from cosmictron.server.pgwire.leader_writes import LeaderAnswer, LeaderWrites
from cosmictron.server.pgwire.lexer import rename_params, split_statements, strip_comments
from cosmictron.server.pgwire.messages import Body, FrameTooLarge, Malformed
from cosmictron.server.pgwire.shapes import (
    Shape,
    cached_shape,
    is_point_lookup,
    point_entry,
    sample_params,
    shape_of,
)
from cosmictron.server.pgwire.sqlstate import (
    ACTIVE_SQL_TRANSACTION,
    CONFIGURATION_LIMIT_EXCEEDED,
    DUPLICATE_PREPARED_STATEMENT,
    FEATURE_NOT_SUPPORTED,
    IN_FAILED_TRANSACTION,
    INSUFFICIENT_PRIVILEGE,
    INVALID_CATALOG_NAME,
    INVALID_CURSOR_NAME,
    INVALID_PASSWORD,
    INVALID_PREPARED_STATEMENT,
    INVALID_TEXT_REPRESENTATION,
    NO_ACTIVE_SQL_TRANSACTION,
    NUMERIC_VALUE_OUT_OF_RANGE,
    PROTOCOL_VIOLATION,
    QUERY_CANCELED,
    WARNING,
    PgError,
    sqlstate_of,
)
from cosmictron.values import Identity

if TYPE_CHECKING:
    from cosmictron.server.pgwire.context import PgContext
    from cosmictron.server.registry import HostedDatabase
    from cosmictron.server.throttle import Allowance

logger = logging.getLogger(__name__)

_PARAM_NAMES = tuple(f"p{n}" for n in range(64))
_SELECT_TAGS = ("SELECT 0", "SELECT 1")
"""The tags of a point read (``Session._point_read``)."""
_SELECT_DONE = tuple(messages.command_complete(tag) for tag in _SELECT_TAGS)
"""Their CommandComplete messages, made once."""
_READY_IDLE = messages.READY[b"I"]
_INT32_AT = struct.Struct("!i").unpack_from

_COPY = re.compile(
    r"^\s*copy\s*\((?P<query>.*)\)\s*to\s+stdout(?P<options>.*)$", re.IGNORECASE | re.DOTALL
)
_COPY_ANY = re.compile(r"^\s*copy\b", re.IGNORECASE)


STREAM_AHEAD = 8
"""Encoded batches of a streamed SELECT that may wait for the event loop (about
0.5 MiB of text rows): past them the database thread waits for the client."""


def _quiet(future: asyncio.Future[Any]) -> None:
    """Retrieve an abandoned future's error (a stream the client went away from)."""
    if not future.cancelled():
        future.exception()


def show_column(name: str) -> str:
    """The column ``SHOW name`` answers in, named as PostgreSQL names it."""
    column = name.lower().replace(" ", "_")
    return "transaction_isolation" if column == "transaction_isolation_level" else column


class Closed(Exception):
    """The session ends (Terminate, a FATAL error, or the peer went away)."""


@dataclass
class Streamed:
    """A SELECT to be run as its rows are sent (``Session._stream``): both functions
    run on a database thread."""

    batches: Callable[[], tuple[tuple[str, ...], Iterator[list[tuple[Any, ...]]]] | None]
    """``host.sql.select_batches``: the rows in batches, produced while they are
    iterated; None when the statement cannot be streamed (``whole`` runs it)."""
    whole: Callable[[], QueryResult]
    """``Database.sql``: every row at once."""
    text: str
    """The statement as the client sent it (for the position of an error)."""


@dataclass(slots=True)
class Outcome:
    """What one statement produced: rows (with their description) and a command tag,
    or, for a SELECT not yet run, how to stream it (``streamed``; ``tag`` and
    ``rows`` are filled once it has run)."""

    tag: str
    columns: tuple[str, ...] | None = None
    oids: tuple[int, ...] = ()
    rows: Sequence[tuple[Any, ...]] = ()
    empty: bool = False
    streamed: Streamed | None = None


@dataclass(slots=True)
class Statement:
    """A parsed statement (named or unnamed), ready to bind."""

    text: str
    route: str
    """``empty``, ``session``, ``catalog``, ``copy`` or ``engine``."""
    engine_text: str = ""
    param_count: int = 0
    declared: tuple[int, ...] = ()
    command: session_sql.Command | None = None
    shape: Shape | None = None
    param_oids: tuple[int, ...] | None = None
    """The type of each parameter, worked out at the first Bind or Describe."""
    point: tuple[Any, tuple[type, ...], Prepared, bool] | None = None
    """A primary-key SELECT's statement cache entry, with the schema and the
    parameters' Python types it was found for, and whether parameters of those types
    passed the size check once and weigh the same every time (``Session._point_read``)."""
    writers: dict[tuple[int, ...], tuple[tuple[int, ...], results.Writer]] = field(
        default_factory=dict
    )
    """By a Bind's result formats: the column OIDs and the DataRow writer for them
    (``Session._rows_writer``): an Execute of a prepared statement chooses nothing."""
    descriptions: dict[tuple[int, ...], tuple[Shape, bytes]] = field(default_factory=dict)
    """By a Bind's result formats: the shape described and its RowDescription
    (``Session._row_description``), for a Describe of the statement's portal."""


@dataclass(slots=True)
class Portal:
    statement: Statement
    params: dict[str, Any]
    formats: tuple[int, ...]
    outcome: Outcome | None = None
    sent: int = 0
    described: bool = False


@dataclass
class Block:
    """An open transaction block: its DML so far, with the row counts reported."""

    pending: list[tuple[str, Mapping[str, Any] | None, int | None]] = field(default_factory=list)
    failed: bool = False
    read_only: bool = False
    savepoints: list[tuple[str, int]] = field(default_factory=list)
    """Each savepoint's name and how many writes were pending when it was set."""


class Session:
    """One client connection, from its first byte to its last."""

    def __init__(
        self,
        context: PgContext,
        reader: Inbound,
        writer: asyncio.StreamWriter,
        address: str,
    ) -> None:
        self.context = context
        self.reader = reader
        self.writer = writer
        self.address = address
        self.pid = 0
        self.secret = secrets.randbits(31)
        self.database: HostedDatabase | None = None
        self.database_name = ""
        self.user = ""
        self.caller = Identity.zero()
        self.caller_hex = ""
        self.token = ""
        """The password the session logged in with: a follower sends its writes to the
        leader with it (``leader_writes.py``), so they run as the caller."""
        self.settings = session_sql.Settings()
        self.statements: dict[str, Statement] = {}
        self.portals: dict[str, Portal] = {}
        self.block: Block | None = None
        self.skipping = False
        self.running = False
        self.cancelled = False
        self.idle_since: float | None = None
        self.out: list[bytes] = []
        self.out_bytes = 0
        self.budget: QueryBudget = context.limits.query_budget(False)
        self.query_rate: Allowance | None = None
        """The caller's query bucket, held once the first query spends from it."""
        self.rounds: list[rounds.Round] = []
        """Point queries' round trips answered generically, kept by their bytes
        (``rounds.py``): a repeat of one is answered by ``_repeat``."""

    # --- the connection ---------------------------------------------------------

    async def serve(self) -> None:
        try:
            try:
                await asyncio.wait_for(self._startup(), self.context.settings.auth_s_max)
            except TimeoutError:
                limit = self.context.settings.auth_s_max
                await self._say_fatal(
                    PgError(
                        "08006",
                        f"authentication took longer than {limit:g} s (limits.pg_auth_s_max)",
                    )
                )
                return
            await self._loop()
        except Closed:
            pass
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except FrameTooLarge as exc:
            await self._say_fatal(PgError(PROTOCOL_VIOLATION, f"invalid message: {exc}"))
        except (Malformed, UnicodeDecodeError) as exc:
            await self._say_fatal(PgError(PROTOCOL_VIOLATION, f"malformed message: {exc}"))
        except Exception:
            logger.exception("PostgreSQL session from %s failed", self.address)
            await self._say_fatal(PgError("XX000", "internal error; see the server log"))
        finally:
            self.context.forget(self)
            self.writer.close()

    def close_idle(self, limit: float) -> None:
        """Called by the context's reaper: end a session idle past ``limit`` seconds."""
        self.writer.write(
            messages.error_response(
                "FATAL", "57P05", f"idle for {limit:g} s (limits.pg_idle_s_max): closed"
            )
        )
        self.writer.close()

    async def _say_fatal(self, error: PgError) -> None:
        """Send a FATAL error (the connection closes after it)."""
        try:
            self._put(messages.error_response("FATAL", error.code, error.message, error.position))
            await asyncio.wait_for(self._flush(), 5)
        except (ConnectionError, TimeoutError, RuntimeError):
            pass

    async def _fatal(self, error: PgError) -> NoReturn:
        await self._say_fatal(error)
        raise Closed

    async def _startup(self) -> None:
        cap = self.context.settings.startup_bytes_max
        body = b""
        while True:
            body = await messages.read_startup(self.reader, cap)
            if len(body) < 4:
                raise Malformed("a startup packet without its protocol version")
            code = int.from_bytes(body[:4], "big")
            if code in (messages.SSL_REQUEST, messages.GSSENC_REQUEST):
                self._put(b"N")
                await self._flush()
                continue
            if code == messages.CANCEL_REQUEST:
                cursor = Body(body)
                cursor.int32()
                self.context.cancel(cursor.int32(), cursor.int32())
                raise Closed
            if code >> 16 != 3:
                await self._fatal(
                    PgError(
                        FEATURE_NOT_SUPPORTED,
                        f"unsupported frontend protocol {code >> 16}.{code & 0xFFFF}: "
                        "this server speaks protocol 3.0",
                    )
                )
            break
        params = messages.startup_parameters(body)
        self.user = params.get("user", "")
        self.database_name = params.get("database") or self.user
        try:
            self.database = self.context.registry.get(self.database_name)
        except (NotFound, CosmictronError):
            await self._fatal(
                PgError(INVALID_CATALOG_NAME, f'database "{self.database_name}" does not exist')
            )
        self._put(messages.AUTH_CLEARTEXT)
        await self._flush()
        kind, body = await messages.read_message(self.reader, cap)
        if kind != b"p":
            await self._fatal(PgError(PROTOCOL_VIOLATION, "expected a password message"))
        token = Body(body).cstring()
        try:
            if not token:
                raise Unauthenticated("no password: send an identity's token as the password")
            self.caller = self.context.authority.verify(token)
            self.caller_hex = self.caller.hex()
            self.token = token
        except Unauthenticated as exc:
            await self._fatal(
                PgError(
                    INVALID_PASSWORD,
                    f'password authentication failed for user "{self.user}": the password '
                    f"must be a Cosmictron token ({exc})",
                )
            )
        if "application_name" in params:
            self.settings.values["application_name"] = params["application_name"][:63]
        for name, value in params.items():  # options clients send in the packet
            if name.lower() in ("client_encoding", "datestyle", "timezone"):
                try:
                    self.settings.set(name, value)
                except PgError as exc:
                    await self._fatal(exc)
        self.pid = self.context.register(self)
        out = [messages.AUTH_OK]
        for name in session_sql.REPORTED:
            value = self.settings.values[name.lower()]
            if name == "session_authorization":
                value = self.user
            out.append(messages.parameter_status(name, value))
        out.append(messages.backend_key(self.pid, self.secret))
        out.append(messages.READY[b"I"])
        self._put(b"".join(out))
        await self._flush()

    async def _loop(self) -> None:
        frames = self.reader
        frames.on_data = self._fast
        loop = asyncio.get_running_loop()
        while True:
            self.idle_since = loop.time()  # the context's reaper closes idle sessions
            kind, body = await frames.next()
            self.idle_since = None
            if kind == b"X":
                raise Closed
            if kind == b"Q":
                self.skipping = False
                await self._simple(Body(body).cstring())
                continue
            if kind == b"S":
                self.skipping = False
                self._put(self._ready())
                await self._flush()
                continue
            if kind == b"H":
                await self._flush()
                continue
            if kind in (b"P", b"B", b"D", b"E", b"C"):
                if self.skipping:
                    continue
                try:
                    if kind == b"B":  # Bind and Execute first: a point query's messages
                        await self._bind(body)
                    elif kind == b"E":
                        name, limit = messages.parse_execute(body)
                        await self._execute(name, limit)
                    else:
                        await self._extended(kind, Body(body))
                except PgError as exc:
                    self._error(exc)
                    self.skipping = True
                continue
            if kind in (b"d", b"c", b"f"):  # COPY FROM data: never started here
                continue
            await self._fatal(PgError(PROTOCOL_VIOLATION, f"unexpected message type {kind!r}"))

    def _fast(self) -> None:
        """Answer, from ``data_received``, the buffered frames that need no awaiting:
        Bind of a statement whose parameter types are known, Describe of its portal,
        Execute of a cached point read (``_point_read``), Sync and Flush. It stops at
        the first other frame (left in the buffer for the task, which is woken) and
        whenever replies are still waiting to leave (the task drains them). Same
        checks, rights and errors as the task's path: this only skips its awaits.
        Called on every read: the idle clock restarts only when a message was taken
        (the bytes of an unfinished one are no activity)."""
        reader = self.reader
        at = reader.at
        try:  # (one method, not two: a Python call less per round trip)
            transport = reader.transport  # (the writer's, without its property)
            assert transport is not None
            statements = self.statements
            portals = self.portals
            out = self.out
            if transport.get_write_buffer_size():  # (checked again after each write)
                return
            # A repeat of a kept round trip (``rounds.py``), as often as one is buffered.
            while (
                self.rounds
                and not self.skipping
                and self.out_bytes <= 1 << 18
                and self._repeat(transport)
            ):
                if transport.get_write_buffer_size() or reader.at == len(reader.data):
                    return
            # One call parses every whole message buffered (compiled where built): Bind,
            # Describe, Execute, Sync, Flush. ``reader.at`` moves past each one answered
            # and stays before the first one left to the task. ``learning``: a point
            # query's round answered here so far (Bind, [Describe,] Execute), kept at
            # its Sync as a ``rounds.Round``.
            learning: list[Any] | None = None
            for entry in messages.frontend_run(reader.data, reader.at, reader.bytes_max):
                if self.out_bytes > 1 << 18:
                    return
                kind = entry[0]
                if kind == b"S":
                    if learning is not None and len(learning) == 5 and self.block is None:
                        self._learn(learning, entry[1])
                    learning = None
                    reader.at = entry[1]
                    self.skipping = False
                    out.append(_READY_IDLE if self.block is None else self._ready())
                    transport.write(b"".join(out))  # ``_flush_now``, inline: once per query
                    out.clear()
                    self.out_bytes = 0
                    if transport.get_write_buffer_size():
                        return
                    continue
                if kind == b"H":
                    learning = None
                    reader.at = entry[1]
                    self._flush_now()
                    if transport.get_write_buffer_size():
                        return
                    continue
                if self.skipping:  # after an error, up to Sync (Bind, Describe, Execute)
                    reader.at = entry[1]
                    continue
                try:
                    if kind == b"B":
                        _, end, portal_name, statement_name, formats, raw, result_formats = entry
                        statement = statements.get(statement_name)
                        if (
                            statement is None
                            or len(raw) != statement.param_count
                            or (raw and statement.param_oids is None)
                            or (
                                len(portals) >= self.context.settings.portals_max
                                and portal_name not in portals
                            )
                        ):
                            return
                        learning = None
                        if len(raw) == 1 and raw[0] is not None:
                            learning = [reader.at, entry, statement]  # (where the Bind starts)
                        reader.at = end
                        self._bound(
                            portal_name,
                            statement,
                            formats,
                            raw,
                            result_formats,
                            statement.param_oids or (),
                        )
                    elif kind == b"E":
                        _, end, name, limit = entry
                        portal = portals.get(name)
                        if (
                            portal is None
                            or portal.outcome is not None
                            or portal.statement.route != "engine"
                        ):
                            return
                        statement = portal.statement
                        before = reader.at
                        reader.at = end  # taken, unless the task must run it
                        outcome = self._point_read(statement, portal.params)
                        if outcome is None:
                            reader.at = before
                            return
                        portal.outcome = outcome
                        rows = outcome.rows
                        count = len(rows)
                        if (
                            learning is not None
                            and len(learning) < 5
                            and limit == 0
                            and learning[1][2] == name
                        ):
                            if len(learning) == 3:
                                learning.append(None)  # no Describe in this round
                            learning.append(portal)
                        else:
                            learning = None
                        if limit <= 0 or limit >= count:  # the usual: no batches, no suspense
                            oids = outcome.oids
                            kept = statement.writers.get(portal.formats)
                            if kept is not None and kept[0] is oids:
                                written = kept[1](rows)
                            else:
                                written = self._rows_writer(statement, portal.formats, oids)(rows)
                            tag = (
                                _SELECT_DONE[count]
                                if count < 2
                                else messages.command_complete(outcome.tag)
                            )
                            out.append(written)
                            out.append(tag)
                            self.out_bytes += len(written) + len(tag)
                            portal.sent = count
                            continue
                        learning = None
                        fmts = self._formats(portal.formats, outcome.oids)
                        for _ in self._queue_rows(outcome, fmts, portal, limit, False):
                            self._flush_now()
                        if transport.get_write_buffer_size():
                            return
                    else:  # Describe
                        _, end, what, name = entry
                        portal = portals.get(name) if what == b"P" else None
                        if portal is None:
                            return
                        statement = portal.statement
                        shape = statement.shape
                        if statement.route != "engine" or shape is None or shape.columns is None:
                            return
                        reader.at = end
                        known = statement.descriptions.get(portal.formats)
                        if known is not None and known[0] is shape:
                            described = known[1]
                        else:
                            described = self._row_description(statement, portal.formats, shape)
                        out.append(described)
                        self.out_bytes += len(described)
                        portal.described = True
                        if learning is not None and len(learning) == 3 and learning[1][2] == name:
                            learning.append(described)
                        else:
                            learning = None
                except PgError as exc:
                    learning = None
                    self._error(exc)
                    self.skipping = True
        except Exception:
            logger.exception("PostgreSQL session from %s failed", self.address)
            self.out.clear()
            self._put(
                messages.error_response("FATAL", "XX000", "internal error; see the server log")
            )
            self._flush_now()
            self.writer.close()
        finally:
            if reader.at != at:
                self.idle_since = reader.loop.time()  # (get_running_loop calls getpid)

    def _learn(self, learning: list[Any], end: int) -> None:
        """Keep a point query's round trip just answered by ``_fast`` (Bind of one
        parameter, [Describe portal,] Execute with no row limit, Sync ending at
        ``end``) as a ``rounds.Round``, if its statement's entry was weighed once (a
        scalar key) and its writer is kept: a later round of the same bytes but the key
        is answered by ``_repeat``."""
        begin, entry, statement, described, portal = learning
        _, bind_end, portal_name, statement_name, formats, raw, result_formats = entry
        point = statement.point
        shape = statement.shape
        oids = statement.param_oids
        if point is None or not point[3] or shape is None or not oids or portal.outcome is None:
            return
        if point[1] != (type(portal.params["p1"]),):
            return
        kept = statement.writers.get(result_formats)
        if kept is None or kept[0] is not shape.column_oids:
            return
        reader = self.reader
        data = reader.data
        head_size = len(portal_name.encode()) + len(statement_name.encode()) + 6
        head_size += 2 * len(formats)
        head = data[begin + 5 : begin + 5 + head_size]
        tail = data[begin + 9 + head_size + len(raw[0]) : bind_end]
        rest = data[bind_end:end]
        if rounds.match(data, begin, head, tail, rest, reader.bytes_max) != begin + 5 + head_size:
            return  # (not the layout read above: nothing kept)
        learnt = rounds.Round(
            head,
            tail,
            rest,
            statement_name,
            portal_name,
            statement,
            point,
            shape,
            oids[0],
            formats == (1,) if len(formats) < 2 else formats[0] == 1,
            point[1][0],
            len(tail) + len(rest),
            result_formats,
            described,
            kept[1],
        )
        others = [r for r in self.rounds if (r.head, r.tail, r.rest) != (head, tail, rest)]
        self.rounds = [learnt, *others[: rounds.ROUNDS_MAX - 1]]

    def _repeat(self, transport: Any) -> bool:
        """Answer the buffered round trip at ``reader.at`` if it is a kept round's bytes
        with another key (``rounds.py``) and the round still holds: the same
        statement under its name, its point entry, shape and module, no transaction
        block, room for the portal, a key that decodes to the entry's type. Whatever
        does not hold is left to the generic path untouched (False). What the generic
        path does per round is done here too, in its order: the portal opened, the
        query rate spent, ``point_rows`` (rights, schema, rows budget, the lookup under
        the writer lock), an error answered as the generic path answers it."""
        reader = self.reader
        data = reader.data
        at = reader.at
        match = rounds.match
        bytes_max = reader.bytes_max
        for kept in self.rounds:
            found = match(data, at, kept.head, kept.tail, kept.rest, bytes_max)
            if found >= 0:
                break
        else:
            return False
        statement: Statement = kept.statement
        point = kept.point
        database = self.database
        assert database is not None
        core = database.db.core
        portals = self.portals
        name = kept.portal_name
        if (
            self.statements.get(kept.statement_name) is not statement
            or statement.point is not point
            or statement.shape is not kept.shape
            or self.block is not None
            or core.module.schema is not point[0]
            or (len(portals) >= self.context.settings.portals_max and name not in portals)
        ):
            return False
        (size,) = _INT32_AT(data, found)
        start = found + 4
        if kept.int8 and size == 8:  # ``decode_param``'s first case: asyncpg's key
            key = int.from_bytes(data[start : start + 8], "big", signed=True)
        else:
            try:
                key = pgtypes.decode_param(data[start : start + size], kept.oid, kept.binary)
            except (pgtypes.BadValue, pgtypes.OutOfRange):
                return False  # the generic path says what is wrong with it
        if type(key) is not kept.value_type:
            return False
        reader.at = start + size + kept.after
        params = {"p1": key}
        out = self.out
        out.append(messages.BIND_COMPLETE)
        described = kept.described
        if described is not None:
            out.append(described)
        # The portal is opened here, before the query runs, as a Bind opens it (made
        # with what it ends up holding: nothing reads it in between).
        try:
            (self.query_rate or self._query_rate()).take()
            rows = point_rows(core, point[2], params, self.caller, self.budget, True)
            if rows is None:  # the module changed meanwhile: as ``_point_read``
                statement.point = None
                text = statement.engine_text
                rows = database.db.sql(text, params, sender=self.caller, budget=self.budget).rows
        except CosmictronError as exc:  # RateLimited too
            portals[name] = Portal(statement, params, kept.formats, None, 0, described is not None)
            self._error(sqlstate_of(exc, statement.text))
        else:
            count = len(rows)
            shape = kept.shape
            tag = _SELECT_TAGS[count] if count < 2 else f"SELECT {count}"
            outcome = Outcome(tag, shape.columns, shape.column_oids, rows)
            portals[name] = Portal(
                statement, params, kept.formats, outcome, count, described is not None
            )
            out.append(kept.writer(rows))
            out.append(_SELECT_DONE[count] if count < 2 else messages.command_complete(tag))
        out.append(_READY_IDLE)
        transport.write(b"".join(out))
        out.clear()
        self.out_bytes = 0
        return True

    def _row_description(
        self, statement: Statement, requested: tuple[int, ...], shape: Shape
    ) -> bytes:
        """The RowDescription of ``statement``'s columns in the formats a Bind asked
        for, kept on the statement by those formats as its DataRow writer is.

        Raises:
            PgError: the formats do not fit the columns (``_formats``).
        """
        found = statement.descriptions.get(requested)
        if found is not None and found[0] is shape:
            return found[1]
        columns = shape.columns
        assert columns is not None
        oids = shape.column_oids
        described = messages.row_description(columns, oids, self._formats(requested, oids))
        if len(statement.descriptions) >= 16:  # a client varying its formats: bounded
            statement.descriptions.clear()
        statement.descriptions[requested] = (shape, described)
        return described

    def _rows_writer(
        self, statement: Statement, requested: tuple[int, ...], oids: tuple[int, ...]
    ) -> results.Writer:
        """The DataRow writer for ``statement``'s rows (of ``oids``) in the formats a
        Bind asked for, kept on the statement by those formats.

        Raises:
            PgError: the formats do not fit the columns (``_formats``).
        """
        found = statement.writers.get(requested)
        if found is not None and found[0] is oids:
            return found[1]
        writer = results.writer_for(oids, self._formats(requested, oids))
        if len(statement.writers) >= 16:  # a client varying its formats: bounded
            statement.writers.clear()
        statement.writers[requested] = (oids, writer)
        return writer

    def _flush_now(self) -> None:
        """``_flush`` without waiting for the drain (``_fast``, which stops while
        anything is left in the transport's buffer)."""
        out = self.out
        if out:  # straight to the transport (StreamWriter.write only forwards)
            self.writer.transport.write(b"".join(out))
            out.clear()
            self.out_bytes = 0

    def _put(self, data: bytes) -> None:
        """Queue bytes for the client; ``_flush`` sends them in one write. Replies are
        many small messages: one socket write each would cost a system call apiece."""
        self.out.append(data)
        self.out_bytes += len(data)

    async def _flush(self) -> None:
        writer = self.writer
        if writer.transport.is_closing():  # the client went away (mid-stream, say)
            self.out.clear()
            self.out_bytes = 0
            raise ConnectionResetError("the client closed the connection")
        if self.out:
            writer.write(b"".join(self.out))
            self.out.clear()
            self.out_bytes = 0
        # The socket took everything (the usual case on a reply): nothing to wait for,
        # and a peer gone away shows at the next read. Otherwise wait for the drain:
        # back pressure on a client reading slowly.
        if writer.transport.get_write_buffer_size() or writer.transport.is_closing():
            await writer.drain()

    def _ready(self) -> bytes:
        if self.block is None:
            return messages.READY[b"I"]
        return messages.READY[b"E" if self.block.failed else b"T"]

    def _error(self, error: PgError) -> None:
        if self.block is not None:
            self.block.failed = True
        self._put(
            messages.error_response(
                error.severity, error.code, error.message, error.position, error.detail
            )
        )

    # --- the simple protocol ----------------------------------------------------

    async def _simple(self, text: str) -> None:
        try:
            statements = split_statements(text)
            if not statements:
                self._put(messages.EMPTY_QUERY)
            for one in statements:
                statement = self._parse(one, ())
                if statement.route == "copy":
                    await self._copy(statement)
                    continue
                outcome = await self._run(statement, {})
                await self._send(outcome, (0,) * len(outcome.oids), None, 0)
        except PgError as exc:
            self._error(exc)
        self._put(self._ready())
        await self._flush()

    # --- the extended protocol --------------------------------------------------

    async def _extended(self, kind: bytes, body: Body) -> None:
        if kind == b"P":
            name = body.cstring()
            text = body.cstring()
            count = body.int16()
            declared = tuple(body.int32() for _ in range(count))
            if name and name in self.statements:
                raise PgError(
                    DUPLICATE_PREPARED_STATEMENT, f'prepared statement "{name}" already exists'
                )
            if len(self.statements) >= self.context.settings.statements_max and name:
                raise PgError(
                    CONFIGURATION_LIMIT_EXCEEDED,
                    f"more than {self.context.settings.statements_max} prepared statements in one "
                    "session (limits.pg_statements_prepared_max); close some",
                )
            pieces = split_statements(text)
            if len(pieces) > 1:
                raise PgError("42601", "cannot insert multiple commands into a prepared statement")
            self.statements[name] = self._parse(pieces[0] if pieces else "", declared)
            self._put(messages.PARSE_COMPLETE)
        elif kind == b"B":
            await self._bind(body.data)
        elif kind == b"D":
            what = body.byte()
            name = body.cstring()
            await self._describe(what, name)
        elif kind == b"E":
            await self._execute(*messages.parse_execute(body.data))
        else:
            what = body.byte()
            name = body.cstring()
            (self.statements if what == b"S" else self.portals).pop(name, None)
            self._put(messages.CLOSE_COMPLETE)

    async def _bind(self, body: bytes) -> None:
        portal_name, statement_name, formats, raw, result_formats = messages.parse_bind(body)
        statement = self.statements.get(statement_name)
        if statement is None:
            raise PgError(
                INVALID_PREPARED_STATEMENT, f'prepared statement "{statement_name}" does not exist'
            )
        count = len(raw)
        if count != statement.param_count:
            raise PgError(
                PROTOCOL_VIOLATION,
                f"bind message supplies {count} parameters, but the prepared statement "
                f"requires {statement.param_count}",
            )
        if (
            len(self.portals) >= self.context.settings.portals_max
            and portal_name not in self.portals
        ):
            raise PgError(
                CONFIGURATION_LIMIT_EXCEEDED,
                f"more than {self.context.settings.portals_max} open portals "
                "(limits.pg_portals_max)",
            )
        oids: tuple[int, ...] = ()
        if count:
            oids = statement.param_oids or await self._param_oids(statement)
        self._bound(portal_name, statement, formats, raw, result_formats, oids)

    def _bound(
        self,
        portal_name: str,
        statement: Statement,
        formats: tuple[int, ...],
        raw: list[bytes | None],
        result_formats: tuple[int, ...],
        oids: tuple[int, ...],
    ) -> None:
        """The rest of a Bind once the parameters' types are known: decode them and
        open the portal."""
        params: dict[str, Any] = {}
        if raw:
            decode = pgtypes.decode_param
            shared = len(formats) < 2  # one format code for all, or none (text)
            binary = shared and formats == (1,)
            for number, data in enumerate(raw, start=1):
                name = _PARAM_NAMES[number] if number < 64 else f"p{number}"
                if data is None:
                    params[name] = None
                    continue
                try:
                    params[name] = decode(
                        data, oids[number - 1], binary if shared else formats[number - 1] == 1
                    )
                except pgtypes.BadValue as exc:
                    raise PgError(
                        INVALID_TEXT_REPRESENTATION, f"parameter ${number}: {exc}"
                    ) from None
                except pgtypes.OutOfRange as exc:
                    raise PgError(
                        NUMERIC_VALUE_OUT_OF_RANGE, f"parameter ${number}: {exc}"
                    ) from None
        self.portals[portal_name] = Portal(statement, params, result_formats)
        self.out.append(messages.BIND_COMPLETE)
        self.out_bytes += 5

    async def _param_oids(self, statement: Statement) -> tuple[int, ...]:
        """The parameters' types (declared at Parse, else inferred), kept on the
        statement: they do not change between its Binds."""
        if statement.param_oids is not None:
            return statement.param_oids
        declared = statement.declared
        if len(declared) >= statement.param_count and all(declared[: statement.param_count]):
            statement.param_oids = declared[: statement.param_count]
            return statement.param_oids
        if statement.route == "catalog":
            inferred = catalog.param_oids(statement.text, statement.param_count)
        else:
            shape = await self._shape(statement)
            inferred = shape.param_oids if shape is not None else ()
        statement.param_oids = tuple(
            (declared[i] if i < len(declared) and declared[i] else 0)
            or (inferred[i] if i < len(inferred) else pgtypes.TEXT)
            for i in range(statement.param_count)
        )
        return statement.param_oids

    async def _shape(self, statement: Statement) -> Shape | None:
        if statement.route != "engine":
            return None
        if statement.shape is None:
            database = self._database()
            count = statement.param_count
            samples = sample_params(count, statement.declared)
            statement.shape = cached_shape(
                database.db, statement.engine_text, samples, self.caller, count
            )
            if statement.shape is not None:
                return statement.shape
            try:
                statement.shape = await database.run(
                    shape_of, database.db, statement.engine_text, samples, self.caller, count
                )
            except CosmictronError as first:
                if not count:
                    raise sqlstate_of(first, statement.text) from None
                numbers = {name: 0 for name in samples}
                try:
                    statement.shape = await database.run(
                        shape_of, database.db, statement.engine_text, numbers, self.caller, count
                    )
                except CosmictronError:
                    raise sqlstate_of(first, statement.text) from None
        return statement.shape

    async def _describe(self, what: bytes, name: str) -> None:
        if what == b"S":
            statement = self.statements.get(name)
            if statement is None:
                raise PgError(
                    INVALID_PREPARED_STATEMENT, f'prepared statement "{name}" does not exist'
                )
            oids = await self._param_oids(statement)
            self._put(messages.parameter_description(oids))
            columns, column_oids = await self._description(statement, None)
            if columns is None:
                self._put(messages.NO_DATA)
            else:
                fmts = (0,) * len(columns)
                self._put(messages.row_description(columns, column_oids, fmts))
            return
        portal = self.portals.get(name)
        if portal is None:
            raise PgError(INVALID_CURSOR_NAME, f'portal "{name}" does not exist')
        columns, column_oids = await self._description(portal.statement, portal)
        if columns is None:
            self._put(messages.NO_DATA)
            return
        fmts = self._formats(portal.formats, column_oids)
        self._put(messages.row_description(columns, column_oids, fmts))
        portal.described = True

    async def _description(
        self, statement: Statement, portal: Portal | None
    ) -> tuple[tuple[str, ...] | None, tuple[int, ...]]:
        """Columns and OIDs of what ``statement`` returns (None: no rows)."""
        if statement.route == "engine":
            shape = statement.shape or await self._shape(statement)
            assert shape is not None
            if shape.columns is None:
                return None, ()
            return shape.columns, shape.column_oids
        if statement.route in ("empty", "copy"):
            return None, ()
        command = statement.command
        if command is not None:  # described without running it: BEGIN runs at Execute
            if command.verb != "SHOW":
                return None, ()
            if command.name.lower() == "all":
                return ("name", "setting", "description"), (pgtypes.TEXT,) * 3
            return (show_column(command.name),), (pgtypes.TEXT,)
        # A catalogue statement is answered when described: it only reads, so a later
        # Execute cannot order it differently.
        if portal is None:
            params = {f"p{n}": None for n in range(1, statement.param_count + 1)}
            outcome = await self._run(statement, params)
        else:
            if portal.outcome is None:
                portal.outcome = await self._run(statement, portal.params)
            outcome = portal.outcome
        return outcome.columns, outcome.oids

    def _formats(self, requested: tuple[int, ...], oids: tuple[int, ...]) -> tuple[int, ...]:
        try:
            # A type without a binary form here is sent as text, and described so.
            return results.sent_formats(requested, tuple(oids))
        except ValueError as exc:
            raise PgError(PROTOCOL_VIOLATION, str(exc)) from None

    async def _execute(self, name: str, limit: int) -> None:
        portal = self.portals.get(name)
        if portal is None:
            raise PgError(INVALID_CURSOR_NAME, f'portal "{name}" does not exist')
        if portal.statement.route == "copy":
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY runs through the simple query protocol")
        outcome = portal.outcome
        if outcome is None:
            statement = portal.statement
            if statement.route == "engine":
                outcome = self._point_read(statement, portal.params)
            if outcome is None:
                outcome = await self._run(statement, portal.params)
                if limit > 0:  # a portal read in parts keeps its rows between Executes
                    outcome = await self._whole(outcome)
            portal.outcome = outcome
        fmts = self._formats(portal.formats, outcome.oids)
        await self._send(outcome, fmts, portal, limit, describe=False)

    def _point_read(self, statement: Statement, params: dict[str, Any]) -> Outcome | None:
        """A SELECT the statement cache knows as a primary-key lookup, outside a
        transaction block: answered here, on the event loop, without ``_run``'s awaits
        (``Database.sql`` does one dict lookup under the writer lock; it checks the
        caller's rights and budget as for any statement). None for anything else,
        which ``_run`` runs."""
        shape = statement.shape
        if shape is None or shape.kind != "SELECT" or self.block is not None:
            return None
        database = self.database
        assert database is not None
        db = database.db
        given = params or None
        core = db.core
        # The cache entry is kept on the statement while the module and the parameters'
        # types stay the same (a NULL key is another plan): no lookup per Execute.
        schema = core.module.schema
        types = tuple(map(type, params.values())) if params else ()
        known = statement.point
        if known is None or known[0] is not schema or known[1] != types:
            entry = point_entry(db, statement.engine_text, given, self.caller)
            if entry is None:
                statement.point = None
                return None
            statement.point = known = (schema, types, entry, False)
        try:
            (self.query_rate or self._query_rate()).take()
            rows = point_rows(core, known[2], given, self.caller, self.budget, known[3])
            if rows is None:  # the module changed meanwhile
                statement.point = None
                text = statement.engine_text
                rows = db.sql(text, given, sender=self.caller, budget=self.budget).rows
            elif not known[3] and fixed_weight(types):  # weighed once (the session's budget)
                statement.point = (schema, types, known[2], True)
        except CosmictronError as exc:  # RateLimited too
            raise sqlstate_of(exc, statement.text) from None
        count = len(rows)
        tag = _SELECT_TAGS[count] if count < 2 else f"SELECT {count}"
        return Outcome(tag, shape.columns, shape.column_oids, rows)

    # --- running statements -----------------------------------------------------

    def _parse(self, text: str, declared: tuple[int, ...]) -> Statement:
        bare = strip_comments(text).strip()
        if not bare:
            return Statement(text, "empty")
        command = session_sql.classify(bare)
        if command is not None:
            return Statement(text, "session", command=command)
        renamed, count = rename_params(text)
        if _COPY_ANY.match(bare):
            return Statement(text, "copy", engine_text=renamed, param_count=count)
        if catalog.handles(bare):
            return Statement(text, "catalog", renamed, count, declared)
        return Statement(text, "engine", renamed, count, declared)

    def _database(self) -> HostedDatabase:
        assert self.database is not None
        return self.database

    async def _run(self, statement: Statement, params: dict[str, Any]) -> Outcome:
        block = self.block
        route = statement.route
        if route == "empty":
            return Outcome("", empty=True)
        if block is not None and block.failed:
            command = statement.command
            if command is None or command.verb not in ("COMMIT", "ROLLBACK", "ROLLBACK TO"):
                raise PgError(
                    IN_FAILED_TRANSACTION,
                    "current transaction is aborted, commands ignored until end of "
                    "transaction block",
                )
        if route == "session":
            assert statement.command is not None
            return await self._session_command(statement.command)
        self._take_rate()
        self.running = True
        self.cancelled = False
        try:
            if route == "catalog":
                return await self._catalog(statement, params)
            return await self._engine(statement, params)
        except PgError:
            raise
        except CosmictronError as exc:
            raise sqlstate_of(exc, statement.text) from None
        finally:
            self.running = False

    def _take_rate(self) -> None:
        try:
            (self.query_rate or self._query_rate()).take()
        except RateLimited as exc:
            raise sqlstate_of(exc) from None

    def _query_rate(self) -> Allowance:
        """The caller's query bucket (its identity's, as for HTTP ``sql``), kept."""
        self.query_rate = self.context.throttle.allowance("queries", False, self.caller_hex)
        return self.query_rate

    async def _catalog(self, statement: Statement, params: dict[str, Any]) -> Outcome:
        database = self._database()
        answer = await database.run(
            catalog.answer,
            database.db,
            statement.engine_text,
            params,
            self.caller,
            catalog.SessionInfo(self.database_name, self.user, self.pid, self.settings.values),
            self.context.registry.names(),
        )
        return Outcome(
            f"SELECT {len(answer.rows)}", answer.columns, tuple(answer.oids), answer.rows
        )

    async def _engine(self, statement: Statement, params: dict[str, Any]) -> Outcome:
        database = self._database()
        shape = statement.shape or await self._shape(statement)
        assert shape is not None
        text = statement.engine_text
        budget = self.budget
        given = params or None
        block = self.block
        db = database.db
        reads = shape.kind in ("SELECT", "EXPLAIN")
        if not reads and block is not None and block.read_only:
            raise PgError("25006", f"cannot execute {shape.kind} in a read-only transaction")
        if not reads and self.caller != db.owner:
            raise PgError(
                INSUFFICIENT_PRIVILEGE,
                f"permission denied: only the owner of database {self.database_name!r} "
                "may change data through SQL",
            )
        if not reads and block is None and database.follower is not None:
            # This node follows: the write runs on the leader (a block's, at COMMIT).
            done = await self._leader().run(
                [(text, given)], None, shape.column_oids, statement.text
            )
            self._behind(done)
            answer = done.results[0]
            count = answer.rows_affected
            tag = f"INSERT 0 {count}" if shape.kind == "INSERT" else f"{shape.kind} {count}"
            return Outcome(tag, shape.columns, shape.column_oids, answer.rows)
        if block is None or (reads and not block.pending):
            if reads and is_point_lookup(db, text, given, self.caller):
                # One dict lookup under the writer lock (host/sql.py): cheaper than the
                # hop to a database thread and back, so it runs here.
                result = db.sql(text, given, sender=self.caller, budget=budget)
            elif shape.kind == "SELECT":  # run while its rows are sent (_stream)
                caller = self.caller
                streamed = Streamed(
                    lambda: select_batches(
                        db.core, text, given, caller, budget, results.BATCH_ROWS
                    ),
                    lambda: db.sql(text, given, sender=caller, budget=budget),
                    statement.text,
                )
                return Outcome("", shape.columns, shape.column_oids, streamed=streamed)
            else:
                result = await database.run(
                    lambda: db.sql(text, given, sender=self.caller, budget=budget)
                )
        else:
            if len(block.pending) >= self.context.settings.block_statements_max:
                raise PgError(
                    CONFIGURATION_LIMIT_EXCEEDED,
                    f"more than {self.context.settings.block_statements_max} writes in one "
                    "transaction block (limits.pg_block_statements_max); COMMIT sooner",
                )
            statements = [(t, p) for t, p, _ in block.pending] + [(text, given)]
            runs = await database.run(
                lambda: db.sql_block(statements, sender=self.caller, budget=budget, apply=False)
            )
            result = runs[-1]
            if not reads:
                block.pending.append((text, given, result.rows_affected))
        if self.cancelled:
            raise PgError(QUERY_CANCELED, "canceling statement due to user request")
        columns = shape.columns
        oids = shape.column_oids
        if reads:
            return Outcome(f"SELECT {len(result.rows)}", columns, oids, result.rows)
        count = result.rows_affected or 0
        tag = f"INSERT 0 {count}" if shape.kind == "INSERT" else f"{shape.kind} {count}"
        return Outcome(tag, columns, oids, result.rows)

    async def _session_command(self, command: session_sql.Command) -> Outcome:
        verb = command.verb
        if verb == "BEGIN":
            if self.block is not None:
                self._notice(ACTIVE_SQL_TRANSACTION, "there is already a transaction in progress")
            else:
                self.block = Block(read_only=command.value == "read only")
            return Outcome("BEGIN")
        if verb == "COMMIT":
            block = self.block
            self.block = None
            if block is None:
                self._notice(NO_ACTIVE_SQL_TRANSACTION, "there is no transaction in progress")
                return Outcome("COMMIT")
            if block.failed:
                return Outcome("ROLLBACK")
            if block.pending:
                await self._commit(block)
            return Outcome("COMMIT")
        if verb == "ROLLBACK":
            if self.block is None:
                self._notice(NO_ACTIVE_SQL_TRANSACTION, "there is no transaction in progress")
            self.block = None
            return Outcome("ROLLBACK")
        if verb == "SET TRANSACTION":
            return Outcome("SET")
        if verb == "SET":
            reported = self.settings.set(command.name, command.value)
            if reported is not None:
                value = self.settings.values[command.name]
                self._put(messages.parameter_status(reported, value))
            return Outcome("SET")
        if verb == "RESET":
            reported = self.settings.reset(command.name)
            if reported is not None:
                value = self.settings.values[command.name]
                self._put(messages.parameter_status(reported, value))
            return Outcome("RESET")
        if verb == "DISCARD":
            if command.name == "all":
                if self.block is not None:
                    raise PgError(
                        ACTIVE_SQL_TRANSACTION, "DISCARD ALL cannot run inside a transaction block"
                    )
                self.settings.reset("all")
                self.statements = {"": self.statements[""]} if "" in self.statements else {}
                self.portals.clear()
            return Outcome(f"DISCARD {command.name.upper()}")
        if verb == "SHOW":
            name = command.name
            if name.lower() == "all":
                rows = [(k, v, "") for k, v in sorted(self.settings.values.items())]
                oids = (pgtypes.TEXT,) * 3
                return Outcome("SHOW", ("name", "setting", "description"), oids, rows)
            value = self.settings.show(name)
            return Outcome("SHOW", (show_column(name),), (pgtypes.TEXT,), [(value,)])
        if verb == "DEALLOCATE":
            # Named prepared statements go (the unnamed one is not PREPAREd: it stays).
            if command.name == "all":
                self.statements = {"": self.statements[""]} if "" in self.statements else {}
                return Outcome("DEALLOCATE ALL")
            if not command.name or self.statements.pop(command.name, None) is None:
                raise PgError(
                    INVALID_PREPARED_STATEMENT,
                    f'prepared statement "{command.name}" does not exist',
                )
            return Outcome("DEALLOCATE")
        if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK TO"):
            return self._savepoint(verb, command.name)
        raise PgError(FEATURE_NOT_SUPPORTED, f"{command.name} is not supported by Cosmictron")

    def _savepoint(self, verb: str, name: str) -> Outcome:
        """Savepoints mark how many of the block's writes were pending; rolling back
        to one drops the writes after it (they were never applied) and clears a
        failure, as in PostgreSQL."""
        block = self.block
        if block is None:
            raise PgError(
                NO_ACTIVE_SQL_TRANSACTION, f"{verb} can only be used in transaction blocks"
            )
        if verb == "SAVEPOINT":
            block.savepoints.append((name, len(block.pending)))
            return Outcome("SAVEPOINT")
        names = [saved for saved, _ in block.savepoints]
        if name not in names:
            block.failed = True
            raise PgError("3B001", f'savepoint "{name}" does not exist')
        at = len(names) - 1 - names[::-1].index(name)
        if verb == "RELEASE":
            del block.savepoints[at:]
            return Outcome("RELEASE")
        del block.pending[block.savepoints[at][1] :]
        del block.savepoints[at + 1 :]
        block.failed = False
        return Outcome("ROLLBACK")

    async def _commit(self, block: Block) -> None:
        database = self._database()
        db = database.db
        statements = [(t, p) for t, p, _ in block.pending]
        expect = [count for _, _, count in block.pending]
        if database.follower is not None:  # the block runs on the leader, whole
            self._behind(await self._leader().run(statements, expect))
            return
        try:
            await database.run(
                lambda: db.sql_block(
                    statements, sender=self.caller, budget=self.budget, apply=True, expect=expect
                )
            )
        except CosmictronError as exc:  # a BlockChanged is 40001 (sqlstate_of)
            raise sqlstate_of(exc) from None

    def _leader(self) -> LeaderWrites:
        """Where this session's writes go while this node follows its database."""
        return LeaderWrites(self.context.app, self.database_name, self.token)

    def _behind(self, answer: LeaderAnswer) -> None:
        """Warn (01000) when this node had not applied a forwarded write in time."""
        if answer.behind is not None:
            self._notice(WARNING, answer.behind)

    def _notice(self, code: str, text: str) -> None:
        self._put(messages.error_response("WARNING", code, text, notice=True))

    # --- sending results --------------------------------------------------------

    async def _send(
        self,
        outcome: Outcome,
        formats: tuple[int, ...],
        portal: Portal | None,
        limit: int,
        describe: bool = True,
    ) -> None:
        """Row description (simple protocol), DataRows in batches, then the tag or,
        past an Execute's row limit, PortalSuspended."""
        if outcome.streamed is not None:
            await self._stream(outcome, formats, describe)
            describe = False
            if outcome.streamed is None:  # sent, and the tag is known
                self._put(messages.command_complete(outcome.tag))
                return
            outcome = await self._whole(outcome)
        for _ in self._queue_rows(outcome, formats, portal, limit, describe):
            await self._flush()  # back pressure: wait for the socket to drain

    async def _whole(self, outcome: Outcome) -> Outcome:
        """``outcome`` with its rows: a streamed SELECT run at once (a COPY, a portal
        read in parts, a statement that cannot be streamed)."""
        streamed = outcome.streamed
        if streamed is None:
            return outcome
        self.running = True
        try:
            result = await self._database().run(streamed.whole)
        except CosmictronError as exc:
            raise sqlstate_of(exc, streamed.text) from None
        finally:
            self.running = False
        if self.cancelled:
            raise PgError(QUERY_CANCELED, "canceling statement due to user request")
        outcome.streamed = None
        outcome.rows = result.rows
        outcome.tag = f"SELECT {len(result.rows)}"
        return outcome

    async def _stream(self, outcome: Outcome, formats: tuple[int, ...], describe: bool) -> None:
        """Run a SELECT on a database thread and send its DataRows as the plan
        produces them: each batch of ``results.BATCH_ROWS`` rows is encoded on that
        thread and handed to the event loop, which writes it (awaiting the socket's
        drain when the client reads slowly). At most ``STREAM_AHEAD`` batches wait
        for the loop: the thread stops producing until the client catches up (back
        pressure; the query's time budget still runs, so a client that stops reading
        frees the thread and the snapshot once it is spent). On return ``outcome.streamed``
        is None and ``outcome.tag`` set, unless the statement could not be streamed
        (nothing was sent then but the RowDescription; ``_whole`` runs it).

        Raises:
            PgError: the query's error (after the rows before it), or a cancel.
        """
        streamed = outcome.streamed
        assert streamed is not None
        if describe:
            self._put(messages.row_description(outcome.columns or (), outcome.oids, formats))
        write = results.writer_for(tuple(outcome.oids), formats)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        room = threading.Semaphore(STREAM_AHEAD)
        stopped = threading.Event()

        time_s = self.budget.effective_time_s

        def produce() -> int | None:  # on a database thread
            try:
                deadline = time.monotonic() + time_s
                found = streamed.batches()
                if found is None:
                    return None
                count = 0
                for batch in found[1]:
                    if stopped.is_set() or self.cancelled:
                        break
                    data = write(batch)
                    count += len(batch)
                    while not room.acquire(timeout=0.05):
                        if stopped.is_set():
                            return count
                        if time.monotonic() > deadline:  # a client that stopped reading
                            raise QueryCancelled(
                                f"the query ran longer than {time_s:g} s (its time budget) "
                                f"while the client read its rows; {count:,} rows were sent"
                            )
                    loop.call_soon_threadsafe(queue.put_nowait, data)
                return count
            finally:
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, None)
                except RuntimeError:  # the loop closed: nobody waits
                    pass

        self.running = True
        future = loop.run_in_executor(self._database().executor, produce)
        try:
            while (data := await queue.get()) is not None:
                room.release()
                self._put(data)
                if queue.empty() or self.out_bytes > 1 << 20:
                    # Written as soon as nothing else is ready (the client starts on the
                    # first rows); the drain is awaited when the socket is full: back
                    # pressure.
                    await self._flush()
            try:
                count = await future
            except CosmictronError as exc:
                raise sqlstate_of(exc, streamed.text) from None
        finally:
            self.running = False
            stopped.set()
            future.add_done_callback(_quiet)
        if self.cancelled:
            raise PgError(QUERY_CANCELED, "canceling statement due to user request")
        if count is not None:
            outcome.streamed = None
            outcome.tag = f"SELECT {count}"

    def _queue_rows(
        self,
        outcome: Outcome,
        formats: tuple[int, ...],
        portal: Portal | None,
        limit: int,
        describe: bool,
    ) -> Iterator[None]:
        """``_send``'s messages, queued; yields whenever over 1 MiB is queued, for
        the caller to flush."""
        if outcome.empty:
            self._put(messages.EMPTY_QUERY)
            return
        rows = outcome.rows
        if outcome.columns is not None:
            if describe:
                self._put(messages.row_description(outcome.columns, outcome.oids, formats))
            write = results.writer_for(tuple(outcome.oids), formats)
            start = portal.sent if portal is not None else 0
            end = len(rows) if limit <= 0 else min(len(rows), start + limit)
            step = results.BATCH_ROWS
            for at in range(start, end, step):
                if self.cancelled:
                    raise PgError(QUERY_CANCELED, "canceling statement due to user request")
                self._put(results.data_rows(rows[at : min(at + step, end)], write))
                if self.out_bytes > 1 << 20:
                    yield
            if portal is not None:
                portal.sent = end
                if end < len(rows):
                    self._put(messages.PORTAL_SUSPENDED)
                    return
        self._put(messages.command_complete(outcome.tag))

    async def _copy(self, statement: Statement) -> None:
        """``COPY (SELECT ...) TO STDOUT [WITH (FORMAT csv|text, HEADER, DELIMITER 'c')]``."""
        found = _COPY.match(statement.text)
        if found is None:
            raise PgError(
                FEATURE_NOT_SUPPORTED,
                "only COPY (SELECT ...) TO STDOUT is supported (COPY FROM and COPY of a "
                "table name are not; use COPY (SELECT * FROM t) TO STDOUT)",
            )
        options = found.group("options").lower()
        csv = "csv" in options
        header = "header" in options
        delimiter = "," if csv else "\t"
        quoted = re.search(r"delimiter\s+'(.)'", options)
        if quoted:
            delimiter = quoted.group(1)
        inner = self._parse(found.group("query"), ())
        if inner.route not in ("engine", "catalog"):
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY takes a SELECT query")
        outcome = await self._whole(await self._run(inner, {}))
        if outcome.columns is None:
            raise PgError(FEATURE_NOT_SUPPORTED, "COPY takes a query that returns rows")
        self._put(messages.copy_out_response(len(outcome.columns)))
        if header:
            header_line = results.copy_lines([tuple(outcome.columns)], csv, delimiter)
            self._put(messages.copy_data(header_line))
        rows = outcome.rows
        step = results.BATCH_ROWS
        for at in range(0, len(rows), step):
            if self.cancelled:
                raise PgError(QUERY_CANCELED, "canceling statement due to user request")
            self._put(messages.copy_data(results.copy_lines(rows[at : at + step], csv, delimiter)))
            if self.out_bytes > 1 << 20:
                await self._flush()
        self._put(messages.COPY_DONE)
        self._put(messages.command_complete(f"COPY {len(rows)}"))
