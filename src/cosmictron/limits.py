"""Every bound Cosmictron enforces, in one place, each named with its unit last.

A limit exists so that no queue, buffer or input grows without bound; each has a test
that crosses it. Durability sizes that users tune live in ``DurabilityConfig`` instead.
"""

module_log_lines_max = 10_000
"""Module log lines kept in memory per database (older lines are dropped)."""

reducer_name_bytes_max = 256
"""Longest reducer or table name accepted from a caller."""

sql_text_bytes_max = 64 * 1024
"""Longest SQL statement accepted, in UTF-8 bytes (longer text is a ``SqlError``)."""

query_rows_max = 100_000
"""Most rows one SQL query may return; ``Database.sql(..., rows_max=)`` overrides it."""

sql_statements_cached_max = 512
"""Prepared SQL statements kept for reuse (least recently used out first; 0: none kept)."""
