"""Module logs: what a module writes with ``logging``, captured per database and stored.

A module logs with ``logging.getLogger(__name__)``. Loading a module attaches one
``ModuleLogHandler`` to that logger; the handler hands each record to the database whose
reducer is running in this context (``CURRENT_DB``), so two databases running the same
module keep separate logs. Reducer failures are logged here too: a failed reducer leaves
no trace in the data, only its log line.

Lines are kept in a bounded ring in memory (for ``Database.logs`` and the server's
``logs`` route) and, when the database has a directory, appended as NDJSON to
``<data-dir>/logs/module.log``, rotated past ``limits.module_log_file_bytes_max`` into
``module.log.1`` … ``module.log.N`` (oldest dropped). Opening the database reads the
newest lines back, so logs survive a restart. Log files are written but not fsynced:
they are diagnostics, not data, and must not cost a reducer an fsync.

Followers (``follow``) are called with each new line, under the log's lock and in the
thread that logged it: they must only hand the line off (the server enqueues it).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from cosmictron import bounded_json, limits
from cosmictron.module import CURRENT_DB

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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


def level_rank(level: str) -> int:
    """Position of a level name in ``LEVELS`` (unknown names rank as INFO)."""
    upper = level.upper()
    return LEVELS.index(upper) if upper in LEVELS else 1


class ModuleLog:
    """The log of one database: a ring in memory, NDJSON files on disk, followers."""

    def __init__(
        self, directory: Path | None = None, lines_max: int = limits.module_log_lines_max
    ) -> None:
        self._lines: deque[LogLine] = deque(maxlen=lines_max)
        self._lock = threading.Lock()
        self._followers: list[Callable[[LogLine], None]] = []
        self._directory = directory
        self._file: IO[str] | None = None
        self._size = 0
        if directory is not None:
            self._read_back(directory)

    def append(self, level: str, message: str, reducer: str | None = None) -> None:
        line = LogLine(time.time_ns() // 1000, level, message, reducer)
        with self._lock:
            self._lines.append(line)
            if self._directory is not None:
                self._write(line)
            for follower in self._followers:
                follower(line)

    def lines(self, num_lines: int | None = None, level: str | None = None) -> list[LogLine]:
        """The newest ``num_lines`` lines at ``level`` or above, oldest first."""
        with self._lock:
            lines = list(self._lines)
        if level is not None:
            floor = level_rank(level)
            lines = [line for line in lines if level_rank(line.level) >= floor]
        return lines if num_lines is None else lines[-num_lines:] if num_lines else []

    def follow(self, follower: Callable[[LogLine], None]) -> Callable[[], None]:
        """Call ``follower(line)`` for every later line; returns a function that stops it."""
        with self._lock:
            self._followers.append(follower)

        def stop() -> None:
            with self._lock:
                if follower in self._followers:
                    self._followers.remove(follower)

        return stop

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    # -- files ---------------------------------------------------------------------------

    def _write(self, line: LogLine) -> None:
        assert self._directory is not None
        text = bounded_json.dumps(line.as_dict(), ensure_ascii=False) + "\n"
        try:
            if self._file is None:
                self._directory.mkdir(parents=True, exist_ok=True)
                path = self._directory / "module.log"
                torn = _ends_torn(path)
                self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115
                if torn:  # a crash cut the last line: start ours on a line of its own
                    self._file.write("\n")
                self._size = self._file.tell()
            if self._size + len(text) > limits.module_log_file_bytes_max and self._size:
                self._rotate()
            assert self._file is not None
            self._file.write(text)
            self._file.flush()
            self._size += len(text.encode())
        except OSError:
            # A full disk must not fail the reducer that logged; the line stays in memory.
            logging.getLogger(__name__).exception("cannot write the module log")

    def _rotate(self) -> None:
        assert self._directory is not None and self._file is not None
        self._file.close()
        base = self._directory / "module.log"
        oldest = Path(f"{base}.{limits.module_log_files_max}")
        oldest.unlink(missing_ok=True)
        for number in range(limits.module_log_files_max - 1, 0, -1):
            older = Path(f"{base}.{number}")
            if older.exists():
                os.replace(older, f"{base}.{number + 1}")
        if limits.module_log_files_max > 0:
            os.replace(base, f"{base}.1")
        else:
            base.unlink(missing_ok=True)
        self._file = open(base, "a", encoding="utf-8")  # noqa: SIM115
        self._size = 0

    def _read_back(self, directory: Path) -> None:
        base = directory / "module.log"
        files = [Path(f"{base}.{n}") for n in range(limits.module_log_files_max, 0, -1)]
        for path in [*files, base]:
            if not path.exists():
                continue
            with open(path, encoding="utf-8", errors="replace") as handle:
                for text in handle:
                    try:
                        item = json.loads(text)
                        self._lines.append(
                            LogLine(
                                int(item["ts_us"]),
                                str(item["level"]),
                                str(item["message"]),
                                item.get("reducer"),
                            )
                        )
                    except (ValueError, KeyError, TypeError):
                        continue  # a torn last line after a crash


def _ends_torn(path: Path) -> bool:
    """Whether a non-empty file's last byte is not a newline."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


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
