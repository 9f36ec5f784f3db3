"""Every bound Cosmictron enforces, in one place, each named with its unit last.

A limit exists so that no queue, buffer or input grows without bound; each has a test
that crosses it. Durability sizes that users tune live in ``DurabilityConfig`` instead.
"""

module_log_lines_max = 10_000
"""Module log lines kept in memory per database (older lines are dropped)."""

module_log_file_bytes_max = 8 * 1024 * 1024
"""A module log file is rotated (``module.log`` -> ``module.log.1`` ...) past this size."""

module_log_files_max = 4
"""Rotated module log files kept besides the current one."""

log_follow_queue_lines_max = 10_000
"""Lines queued for one ``logs?follow=true`` client; past it lines are dropped and counted."""

reducer_name_bytes_max = 256
"""Longest reducer or table name accepted from a caller."""

sql_text_bytes_max = 64 * 1024
"""Longest SQL statement accepted, in UTF-8 bytes (longer text is a ``SqlError``)."""

query_rows_max = 100_000
"""Most rows one SQL query may return; ``Database.sql(..., rows_max=)`` overrides it."""

sql_statements_cached_max = 512
"""Prepared SQL statements kept for reuse (least recently used out first; 0: none kept)."""

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

# -- row-level security (sec-rls) ---------------------------------------------------------

visibility_filter_reads_max = 256
"""Most table reads one table's visibility filters may expand to, counting every hop
of their joins (each joined table is read through its own filters, which may join
further). Filters multiply along a chain, so without this bound a module could make
every non-owner's plan exponentially large; a module over it is refused when it loads."""
