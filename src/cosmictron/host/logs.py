"""Module logs: what a module writes with ``logging``, captured per database.

A module logs with ``logging.getLogger(__name__)``. Loading a module attaches one
``ModuleLogHandler`` to that logger; the handler hands each record to the database whose
reducer is running in this context (``CURRENT_DB``), so two databases running the same
module keep separate logs. Reducer failures are logged here too: a failed reducer leaves
no trace in the data, only its log line. Lines are kept in a bounded ring in memory;
the server layer persists and rotates them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass

from cosmictron.limits import module_log_lines_max
from cosmictron.module import CURRENT_DB


@dataclass(frozen=True, slots=True)
class LogLine:
    ts_us: int
    level: str
    message: str
    reducer: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "ts_us": self.ts_us,
            "level": self.level,
            "message": self.message,
            "reducer": self.reducer,
        }


class ModuleLog:
    """The bounded log of one database."""

    def __init__(self, lines_max: int = module_log_lines_max) -> None:
        self._lines: deque[LogLine] = deque(maxlen=lines_max)
        self._lock = threading.Lock()

    def append(self, level: str, message: str, reducer: str | None = None) -> None:
        with self._lock:
            self._lines.append(LogLine(time.time_ns() // 1000, level, message, reducer))

    def lines(self, num_lines: int | None = None) -> list[LogLine]:
        with self._lock:
            lines = list(self._lines)
        return lines if num_lines is None else lines[-num_lines:]


class ModuleLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        database = CURRENT_DB.get(None)
        if database is None:
            return
        try:
            message = record.getMessage()
        except Exception:  # a bad format string in the module must not fail its reducer
            message = str(record.msg)
        database.log.append(record.levelname, message, database.current_reducer)


_HANDLER = ModuleLogHandler()


def capture_module_logger(logger_name: str) -> None:
    """Route ``logging.getLogger(logger_name)`` into the per-database logs."""
    logger = logging.getLogger(logger_name)
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
