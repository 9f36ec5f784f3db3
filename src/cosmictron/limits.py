"""Every bound Cosmictron enforces, in one place, each named with its unit last.

A limit exists so that no queue, buffer or input grows without bound; each has a test
that crosses it. Durability sizes that users tune live in ``DurabilityConfig`` instead.
"""

import os

module_log_lines_max = 10_000
"""Module log lines kept in memory per database (older lines are dropped)."""

module_log_file_bytes_max = 8 * 1024 * 1024
"""A module log file is rotated (``module.log`` -> ``module.log.1`` ...) past this size."""

module_log_files_max = 4
"""Rotated module log files kept besides the current one."""

log_follow_queue_lines_max = 10_000
"""Lines queued for one ``logs?follow=true`` client; past it lines are dropped and counted."""

identifier_bytes_max = 255
"""Longest table, column or reducer name, declared by a module or sent by a caller
(ASCII only, so bytes and characters are one; ``cosmictron.names``)."""

sql_text_bytes_max = 64 * 1024
"""Longest SQL statement accepted, in UTF-8 bytes (longer text is a ``SqlError``)."""

query_rows_max = 100_000
"""Most rows one SQL query may return; ``Database.sql(..., rows_max=)`` overrides it."""

sql_statements_cached_max = 512
"""Prepared SQL statements kept for reuse (least recently used out first; 0: none kept)."""

verified_tokens_cached_max = 4096
"""Tokens the server holds as verified (identity and expiry), so a client sending the same
token with every request pays the Ed25519 check once (least recently used out first;
0: none kept; ``server/auth.py``)."""

client_calls_in_flight_max = 64
"""Reducer calls one WebSocket client may have in flight (pipelined); past it the server
stops reading that client's messages until the oldest call finishes."""

client_queue_messages_max = 4096
"""Messages queued for one WebSocket client before it is disconnected (close 1008).

The commit path only appends to this queue; a client that reads slower than the database
commits is cut off rather than buffered without bound. The server process reads the
environment variable ``COSMICTRON_CLIENT_QUEUE_MESSAGES_MAX`` to override it (tests use a
small value)."""

client_message_bytes_max = 1024 * 1024
"""Largest WebSocket message a client may send, in bytes (larger: close 1009)."""

client_subscriptions_max = 1024
"""Live subscriptions (query ids) one WebSocket client may hold at once."""

resume_window_transactions_max = 1024
"""Recent transactions each database keeps in memory so a reconnecting client can resume."""

resume_window_rows_max = 100_000
"""Changed rows the resume window may hold in all; older transactions leave it first."""

procedure_timeout_s_default = 30.0
"""How long a procedure call may run before its caller gets ``ProcedureTimedOut``
(``@procedure(timeout_s=...)`` overrides it per procedure)."""

procedure_threads_max = 8
"""Procedure calls one database runs at once, on threads of their own, so procedures
waiting on slow I/O never take the threads reducer calls run on; more calls queue."""

bulk_insert_body_bytes_max = 1024 * 1024 * 1024
"""Largest body of ``POST .../bulk_insert/{table}`` (1 GiB), streamed, never held whole.

The server process reads ``COSMICTRON_BULK_INSERT_BODY_BYTES_MAX`` to override it (tests
use a small value). Every other route keeps the 64 MiB ``REQUEST_BYTES_MAX``."""

bulk_insert_keys_max = 100_000
"""Idempotency keys of keyed bulk loads each database remembers (``host/imports.py``)."""

# -- Query budgets and rate limits (docs/guide/security.md) ---------------------------
#
# The server process reads ``COSMICTRON_<NAME>`` (the name in capitals) to override
# any of the values below (``server/throttle.py``); tests use small ones.

query_time_s_max = 10.0
"""Wall-clock seconds one SQL query (or a subscription's initial evaluation) may run;
past it the query is stopped with ``QueryCancelled``. ``Database.sql(..., timeout_s=)``
overrides it for an embedded call."""

query_rows_examined_max = 50_000_000
"""Rows one query may examine: rows scanned plus row pairs a join compares. Counted while
it runs, so a cartesian product returning one row is stopped too (``QueryTooCostly``).
``Database.sql(..., rows_examined_max=)`` overrides it for an embedded call."""

query_anonymous_time_s_max = 2.0
"""``query_time_s_max`` for a caller without a token (server only)."""

query_anonymous_rows_examined_max = 5_000_000
"""``query_rows_examined_max`` for a caller without a token (server only)."""

query_anonymous_rows_max = 10_000
"""``query_rows_max`` for a caller without a token (server only)."""

subscription_locked_time_s_max = 0.5
"""Seconds a subscription's initial evaluation may hold the writer lock. It first runs
on a snapshot, off the lock; only when its tables changed meanwhile
``subscription_snapshot_attempts_max`` times does it run under the lock, for at most
this long (the smaller of this and its time budget), so it never stalls commits longer."""

subscription_snapshot_attempts_max = 3
"""Times a subscription's initial rows are evaluated on a fresh snapshot because its
tables changed while they were evaluated, before it is evaluated under the lock."""

rate_calls_per_s = 50_000.0
"""Reducer and procedure calls one identity may make per second, on average (token
bucket refilled at this rate; the server answers 429 past it)."""

rate_calls_burst = 50_000
"""Calls one identity may make at once before ``rate_calls_per_s`` applies."""

rate_queries_per_s = 2_000.0
"""SQL queries (HTTP ``/sql``, WebSocket ``OneOffQuery``) one identity may send per second."""

rate_queries_burst = 4_000
"""Queries one identity may send at once before ``rate_queries_per_s`` applies."""

rate_subscriptions_per_s = 1_000.0
"""WebSocket ``Subscribe`` requests one identity may send per second."""

rate_subscriptions_burst = 2_000
"""Subscribe requests one identity may send at once before the rate applies."""

rate_connections_per_s = 1_000.0
"""WebSocket connections one identity may open per second."""

rate_connections_burst = 1_000
"""Connections one identity may open at once before the rate applies."""

rate_anonymous_calls_per_s = 50_000.0
"""``rate_calls_per_s`` for callers without a token, pooled per remote address. As high
as an identity's by default: WebSocket clients without a token (the benchmarks, SDK
scripts) pipeline tens of thousands of calls per second from one address, and calls
queue behind the one writer anyway. Lower it on a server open to the internet."""

rate_anonymous_calls_burst = 50_000
"""``rate_calls_burst`` for callers without a token, per remote address."""

rate_anonymous_queries_per_s = 200.0
"""``rate_queries_per_s`` for callers without a token, pooled per remote address."""

rate_anonymous_queries_burst = 400
"""``rate_queries_burst`` for callers without a token, per remote address."""

rate_anonymous_subscriptions_per_s = 200.0
"""``rate_subscriptions_per_s`` for callers without a token, per remote address."""

rate_anonymous_subscriptions_burst = 400
"""``rate_subscriptions_burst`` for callers without a token, per remote address."""

rate_anonymous_connections_per_s = 100.0
"""``rate_connections_per_s`` for callers without a token, per remote address."""

rate_anonymous_connections_burst = 200
"""``rate_connections_burst`` for callers without a token, per remote address."""

rate_buckets_max = 100_000
"""Token buckets (identities and addresses) the server tracks per kind of request; the
least recently used is forgotten past it (a forgotten bucket starts full again)."""

query_switch_interval_s = 0.001
"""The server's ``sys.setswitchinterval``: how long a thread (a long query) may hold the
interpreter before a waiting thread (a reducer call, the event loop) gets it. CPython's
default of 5 ms makes each of a call's hand-offs wait behind a running query for that
long; 1 ms keeps a call's latency near its own cost while a query runs."""

# -- row-level security (sec-rls) ---------------------------------------------------------

visibility_filter_reads_max = 256
"""Most table reads one table's visibility filters may expand to, counting every hop
of their joins (each joined table is read through its own filters, which may join
further). Filters multiply along a chain, so without this bound a module could make
every non-owner's plan exponentially large; a module over it is refused when it loads."""

# -- input limits: what a client may send (issue 10, "bad input never gets a 500") ----------

json_depth_max = 64
"""Deepest nesting of arrays and objects accepted in JSON from a client (call arguments,
SQL parameters, WebSocket messages, NDJSON rows, a backup's manifest). Deeper input is an
``InvalidRequest`` (400, code ``too_deep``) found without recursing, before it is decoded:
Python's decoder and everything that walks a value afterwards recurse."""

# -- bodies sized to their route, strict JSON, outbound byte budgets (issue 21, bound-edge) --

call_body_bytes_max = 1024 * 1024
"""Largest body of ``POST .../call/{reducer}`` (the arguments as JSON; 413 past it, read
no further). Decoded Python objects take up to ~25 times their JSON text, so this bounds
one call's memory to tens of MiB. The server process reads
``COSMICTRON_CALL_BODY_BYTES_MAX``."""

sql_body_bytes_max = 2 * 1024 * 1024
"""Largest body of ``POST .../sql`` (413 past it, read no further): room for the SQL text
(at most ``sql_text_bytes_max``) and JSON parameters weighing ``sql_params_bytes_max``,
which are checked once decoded. The server process reads
``COSMICTRON_SQL_BODY_BYTES_MAX``."""

json_inline_bytes_max = 64 * 1024
"""JSON bodies and WebSocket messages up to this size are decoded on the event loop (well
under a millisecond); larger ones, and replies that may be large, are decoded or encoded
on a worker thread, so no request holds the loop (and every database) for long."""

bulk_line_bytes_max = 16 * 1024 * 1024
"""Longest line of a bulk load (one NDJSON row, or one physical CSV line), in UTF-8
bytes: a line is read no further than this, so a body of one endless line cannot be
held whole (400 naming the line). The server process reads
``COSMICTRON_BULK_LINE_BYTES_MAX``."""

log_follow_queue_bytes_max = 8 * 1024 * 1024
"""Bytes of log lines queued for one ``logs?follow=true`` client (beside
``log_follow_queue_lines_max``); past it the response is ended (its chunked body is
cut without the final chunk) and its queue freed. The server process reads
``COSMICTRON_LOG_FOLLOW_QUEUE_BYTES_MAX``."""

export_chunk_bytes_max = 1024 * 1024
"""Bytes of encoded rows an export hands to the socket at a time (and at most
``EXPORT_CHUNK_ROWS`` rows); each write waits for the socket to drain, so a client that
never reads holds one chunk of the server's memory, not the table."""

stream_write_stall_s_max = 60.0
"""Seconds one write of a streamed reply (an export, a followed log, a backup chunk) may
wait for a client that does not read before the connection is closed and its memory
returned. The server process reads ``COSMICTRON_STREAM_WRITE_STALL_S_MAX``."""

restore_upload_bytes_max = 16 * 1024 * 1024 * 1024
"""Largest backup archive ``PUT .../restore`` accepts (16 GiB): a declared larger
``Content-Length`` is refused before reading, a chunked upload as soon as it passes the
limit (413). The server process reads ``COSMICTRON_RESTORE_UPLOAD_BYTES_MAX``."""

client_queue_bytes_max = 64 * 1024 * 1024
"""Bytes of messages queued for one WebSocket client (beside ``client_queue_messages_max``)
before it is disconnected with close code 1008: a client that asks for large results and
does not read them is cut off instead of growing the server. The server process reads
``COSMICTRON_CLIENT_QUEUE_BYTES_MAX``."""


# -- connections: time limits and caps (issue 21, bound-conn; server/connections.py) ----------
#
# The server process reads ``COSMICTRON_<NAME>`` (the name in capitals) to override each
# value below, once at start; tests use small ones. docs/reference/limits.md lists them.

http_head_s_max = 10.0
"""Seconds a client may take to send a request's head (request line and headers), from
its first byte. A client that sends headers byte by byte (slowloris) gets ``408`` with
code ``request_timeout`` and is disconnected."""

http_body_s_max = 30.0
"""Seconds a request's body may take to arrive, from its head, before the allowance of
``http_body_rate_bytes_per_s_min`` is added: the body must be whole by
``http_body_s_max + bytes received / http_body_rate_bytes_per_s_min``. A body sent too
slowly gets ``408 request_timeout`` and the connection is closed."""

http_body_rate_bytes_per_s_min = 1024
"""The slowest average rate a body may arrive at once ``http_body_s_max`` is spent: each
this many bytes received extends the body's deadline by one second (Apache's
``mod_reqtimeout`` MinRate rule), so a large upload over a fast link is never cut off."""

http_keepalive_idle_s_max = 75.0
"""Seconds an HTTP connection may stay open without a request: after it opens, and after
each response. Then the server closes it (no response: nothing was asked). Longer than
common clients' own keep-alive (aiohttp's 15 s) so a client never reuses a connection
the server is closing."""

websocket_ping_interval_s = 30.0
"""Seconds a WebSocket client may send nothing before the server pings it. A client that
sends anything (a request, a pong) is alive; one that only listens answers pings."""

websocket_pong_timeout_s = 15.0
"""Seconds a pinged WebSocket client has to send something (its pong) before the server
closes the connection with close code 4408 (the client is presumed dead)."""

connections_max = 0
"""Open client connections (HTTP and WebSocket) the server accepts in all; past it a new
connection is answered ``503 too_many_connections`` with ``Retry-After`` and closed. 0:
derived from the process's file-descriptor limit (``RLIMIT_NOFILE``): the soft limit,
minus the descriptors open when the server starts listening, minus
``connection_fd_reserve_files``. A non-zero value is still capped by that."""

connections_per_address_max = 256
"""Open connections one remote address (the TCP peer) may hold; past it new connections
from that address are refused like those over ``connections_max``."""

connection_fd_reserve_files = 256
"""File descriptors kept free of client connections: when every connection allowed is
open, the databases can still open log segments and snapshots, deploys can still create
files, and refused connections can still be answered."""

connections_refused_lingering_max = 64
"""Refused connections answered at once: each gets its ``503`` and is held open up to
``connection_refusal_linger_s_max`` so the client reads the answer before the close.
Past it, further connections over a cap are reset without an answer."""

connection_refusal_linger_s_max = 2.0
"""Seconds a refused connection is held after its ``503`` while the client reads it."""

rate_identities_per_s = 10.0
"""Identities (``POST /v1/identity``) one remote address may create per second: each
identity has rate buckets of its own, so minting them must not be free."""

rate_identities_burst = 100
"""Identities one remote address may create at once before ``rate_identities_per_s``."""


def from_environment(name: str, default: int) -> int:
    """A limit's value: ``default``, or the integer in environment variable ``name``.

    The server reads its overridable limits through this, once per use, so a test can
    start a server with a small value.
    """
    text = os.environ.get(name)
    return int(text) if text else default


cluster_snapshot_records = from_environment("COSMICTRON_CLUSTER_SNAPSHOT_RECORDS", 10_000)
"""Cluster mode: records a database's stream grows past its newest shipped snapshot before
its leader ships a new one to the object store and trims the stream below it (with the
ledger on, only below what it archived); 0: only on demand (``cluster/snapshots.py``)."""


# -- byte and depth budgets of SQL (issue 21, bound-sql; docs/guide/security.md) -------
#
# A query's cost in rows is bounded above; these bound its cost in bytes: what one value
# it builds, its result and its sorts and hash tables may weigh. Sizes are estimated the
# same way everywhere (``query/sizes.py``): a str or bytes value weighs its length, a
# number or other scalar 8, a list or nested value the sum of its items plus 8. The
# server process reads ``COSMICTRON_<NAME>`` to override any of them
# (``server/throttle.py``).

sql_value_bytes_max = 4 * 1024 * 1024
"""Largest str or bytes value one query may build (``a || b``): the length of the result
is computed from its operands before it is allocated, and past this the query is refused
with ``QueryTooCostly`` (``resource_exhausted``). Stored values are not limited by it."""

sql_anonymous_value_bytes_max = 1024 * 1024
"""``sql_value_bytes_max`` for a caller without a token (server only)."""

query_result_bytes_max = 64 * 1024 * 1024
"""Estimated bytes of the rows one query returns, counted as each row is produced; past
it the query is stopped with ``QueryTooCostly`` (``resource_exhausted``)."""

query_anonymous_result_bytes_max = 16 * 1024 * 1024
"""``query_result_bytes_max`` for a caller without a token (server only)."""

query_held_bytes_max = 64 * 1024 * 1024
"""Estimated bytes one query's sorts, DISTINCT sets, groups and join tables may hold at
once; past it the query is stopped with ``QueryTooCostly`` (``resource_exhausted``). Rows
a join table holds are counted at a fixed cost each (their values are the snapshot's,
not copies); rows and values the query built are counted at their size."""

query_anonymous_held_bytes_max = 16 * 1024 * 1024
"""``query_held_bytes_max`` for a caller without a token (server only)."""

sql_params_count_max = 256
"""Most parameters one SQL request may carry (HTTP ``/sql``, the PostgreSQL wire,
``Database.sql``); more is an ``InvalidRequest`` (400, ``invalid_request``)."""

sql_params_bytes_max = 1024 * 1024
"""Estimated bytes of all the parameters of one SQL request, names included; more is a
``TooLarge`` (413, ``too_large``). SQL parameters are small: bulk data goes through
reducers or ``bulk_insert``."""

sql_statements_cached_bytes_max = 32 * 1024 * 1024
"""Estimated bytes the statement cache may hold (its texts and plans, beside
``sql_statements_cached_max`` entries); least recently used statements leave first."""

sql_depth_max = 32
"""Deepest nesting of parentheses, subqueries, CASE and prefix operators (NOT, -) in one
SQL statement, counted on its tokens before it is parsed: the parser recurses about twenty
frames per level. Deeper is a ``TooDeep`` (400, ``too_deep``)."""

sql_expression_depth_max = 200
"""Deepest expression tree of one SQL statement once parsed (a chain of 500 ``AND`` or
``||`` is 500 deep), measured without recursing, before it is bound and compiled (both
recurse once per level). Deeper is a ``TooDeep`` (400, ``too_deep``)."""

msgpack_depth_max = 128
"""Deepest nesting of arrays and maps in a msgpack document read from outside the
process (a restored archive's snapshot and log records); deeper is refused before
anything walks it (``BackupDamaged`` naming the member, for an archive). Twice
``json_depth_max``: a log record carries call arguments (JSON, at most that deep) a few
levels down."""

# The Python client SDK (``cosmictron.client``) bounds what it holds on the caller's side.

sdk_requests_in_flight_max = 1024
"""Requests (reducer calls, one-off queries, subscribes) one SDK ``Client`` may await
replies to at once (``client/in_flight.py``); past it the next request waits, unsent,
until a reply frees a slot, so the table of replies in flight stays bounded."""

# Subscriptions to queries that are re-evaluated rather than maintained by deltas
# (subqueries, compounds, aggregates, column lists; subscription/reevaluated.py).

subscription_reevaluation_rows_max = 1_000_000
"""Rows one re-evaluation of a re-evaluated subscription query may examine (scans, index
lookups, join pairs, its subqueries' rows included). Such a query runs again, under the
writer lock, after each transaction that changes a table it reads; past this bound its
subscriptions end with a ``SubscriptionError`` naming the limit, instead of stalling
every writer."""

# Sandboxed guest modules (WASM; JavaScript later): ``module/guest.py`` and its engines.

guest_call_fuel_max = 1_000_000_000
"""Fuel one guest reducer call may burn (wasmtime: about one unit per WebAssembly
instruction; an endless loop reaches it in about four seconds on the 2-core development
machine); past it the call traps, is rolled back and fails with ``GuestOutOfFuel``. Host
work (the operations) burns none."""

guest_memory_bytes_max = 256 * 1024 * 1024
"""Linear memory one guest instance may grow to; a ``memory.grow`` past it fails (Rust's
allocator then aborts), the call fails with ``GuestOutOfMemory`` and is rolled back, and
the instance is replaced."""

guest_random_values_max = 4096
"""64-bit random values one ``random`` operation may ask for (more is an ABI error)."""

guest_message_bytes_max = 64 * 1024
"""Longest log line or failure message a guest may hand the host; longer is cut."""

# JavaScript guest modules (``module/js.py``: V8 through mini-racer, QuickJS).

js_call_seconds_max = 1.0
"""Time one JavaScript reducer call may run, all its runs together (within a run QuickJS
counts the process's CPU time, checked by its interrupt handler; V8 wall-clock); past it the call is
interrupted, rolled back and fails with ``GuestOutOfFuel``, and the context is replaced.
Environment: ``COSMICTRON_JS_CALL_SECONDS_MAX``."""

js_heap_bytes_max = 256 * 1024 * 1024
"""Heap one JavaScript context may use (QuickJS: the runtime's memory limit; V8: the
isolate's hard limit); past it the call fails with ``GuestOutOfMemory``, is rolled back,
and the context is replaced. Environment: ``COSMICTRON_JS_HEAP_BYTES_MAX``."""

js_stack_bytes_max = 1024 * 1024
"""Stack one QuickJS call may use; deeper recursion throws a ``RangeError`` in the guest
(the call fails as a trap unless the module catches it). V8 keeps its own limit."""

js_host_round_trips_max = 1000
"""Host round trips (batches with a read) one JavaScript reducer call may make; each runs
the reducer again from the start (module/js.py), so past it the call fails with
``GuestAbiError``."""


# -- agent layer (issue 14, agents-core; cosmictron.agents) -----------------------------
#
# Fixed here; a database sets its own lease and attempt defaults within these bounds with
# the ``configure_agents`` reducer (docs/guide/agents.md).

agent_handoff_depth_max = 8
"""Delegations (``request_handoff(mode="delegate")``) open at once in one thread: a
deeper one is refused with ``HandoffLoop``."""

agent_handoffs_per_thread_max = 256
"""Hand-offs one thread may make in all; past it ``request_handoff`` is refused with
``HandoffLoop`` (agents passing a thread back and forth without end)."""

tool_call_lease_s_max = 3600.0
"""Longest lease a worker may take on a tool call (``claim_tool_call``,
``heartbeat_tool_call``), and the longest sweep interval and default lease."""

tool_call_attempts_max = 100
"""Most attempts a tool call may be given before the sweep fails it."""


# -- semantic memory (issue 14, agents-memory; cosmictron.agents.memory) ----------------

memory_exact_search_max = from_environment("COSMICTRON_MEMORY_EXACT_SEARCH_MAX", 20_000)
"""Stored vectors up to which ``recall`` scores every one exactly (numpy); past it an
approximate HNSW index (``hnswlib``, the ``memory`` extra) proposes the candidates.
Without hnswlib installed, search stays exact at any size. bench/memory.py measures the
trade at 10k and 100k."""

memory_recall_k_max = 1000
"""Most results one ``recall`` may ask for (``k``); more is refused with ``AgentError``."""


# -- MCP (issue 14, agents-mcp; server/mcp_route.py) -------------------------------------

mcp_body_bytes_max = sql_body_bytes_max + 64 * 1024
"""Largest body of ``POST .../mcp`` (one JSON-RPC message; 413 past it, read no further):
room for the largest SQL body and the JSON-RPC envelope around it. A ``call_reducer``
tool call's arguments are then held to ``call_body_bytes_max`` as the call route's body
is. The server process reads ``COSMICTRON_MCP_BODY_BYTES_MAX``."""

# --- The PostgreSQL port (issue 22, server/pgwire/) ---

pg_startup_bytes_max = 10_000
"""Largest startup packet a PostgreSQL client may send (PostgreSQL's own cap); over it
the connection is closed with FATAL 08P01."""

pg_message_bytes_max = 4 * 1024 * 1024
"""Largest protocol message after startup (a query text with its parameters); over it
the connection is closed with FATAL 08P01 before the message is read."""

pg_auth_s_max = 10.0
"""Seconds a PostgreSQL connection has to finish startup and send its password."""

pg_idle_s_max = 3600.0
"""Seconds a PostgreSQL connection may wait between two messages before it is closed
(FATAL 57P05)."""

pg_statements_prepared_max = 1000
"""Named prepared statements one PostgreSQL session may hold (53400 past it)."""

pg_portals_max = 100
"""Open portals one PostgreSQL session may hold (53400 past it)."""

pg_block_statements_max = 1000
"""Writes one transaction block may hold before COMMIT (53400 past it): each write is
run again with those before it, so the cost grows with their square."""

# -- recursive CTEs (issue 12, sql-more; query/recursive.py) ------------------------------

sql_recursive_rows_max = 1_000_000
"""Rows one ``WITH RECURSIVE`` CTE may produce (its initial rows and every row its
recursive step adds, before an outer ``LIMIT`` stops asking): past it the query is
stopped with ``QueryTooCostly`` (``resource_exhausted``) naming the CTE and this limit.
A recursion that never ends (``SELECT x + 1 FROM c`` without a bound) meets this before
it meets the time budget. Embedded: set ``cosmictron.limits.sql_recursive_rows_max``."""

# -- cross-database calls (issue 19, cluster-remote; host/remote.py) ----------------------

remote_calls_per_tx_max = 1000
"""``ctx.call_remote`` calls one transaction may record: past it the call raises
``InvalidRequest`` and, unless the reducer catches it, the transaction rolls back. Each
call is an outbox entry the relay must deliver; a loop that records millions would fill
memory before its first delivery."""

remote_call_attempts_max = 5
"""Deliveries of one ``ctx.call_remote`` that may fail (the target reducer raised, the
target database or reducer does not exist, the arguments do not bind) before the relay
gives up: the outbox entry is then marked failed with the last error, logged in the
caller's module log, and never delivered again."""

remote_call_retry_s = 0.2
"""Seconds the relay waits after a failed delivery before the next attempt; the wait
doubles with each further failure (0.2, 0.4, 0.8, 1.6 s with the defaults)."""

remote_calls_failed_kept_max = 1000
"""Failed ``ctx.call_remote`` entries a database keeps (``Database.remote_calls()``) after
giving up on them; past it the oldest is forgotten (its error stays in the module log)."""
