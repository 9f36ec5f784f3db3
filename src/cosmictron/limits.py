"""Every bound Cosmictron enforces, in one place, each named with its unit last.

A limit exists so that no queue, buffer or input grows without bound; each has a test
that crosses it. Durability sizes that users tune live in ``DurabilityConfig`` instead.
"""

module_log_lines_max = 10_000
"""Module log lines kept in memory per database (older lines are dropped)."""

reducer_name_bytes_max = 256
"""Longest reducer or table name accepted from a caller."""
