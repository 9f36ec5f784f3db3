"""The threads procedures run on, and the deadline a call's caller waits until.

``ProcedureRunner`` is state the core holds (``core.procedures``: at most
``limits.procedure_threads_max`` threads per database, made on first use);
``ProcedureCall`` is what ``Database.start_procedure`` returns; ``Deadline`` is shared
by a call and its caller. None of them knows databases: ``procedures.py`` says what a
procedure is, how timeouts behave and runs the calls.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from cosmictron import limits
from cosmictron.errors import ProcedureTimedOut

T = TypeVar("T")


class Deadline:
    """When a procedure call's caller stops waiting; shared by the caller and the call."""

    def __init__(self, procedure: str, timeout_s: float) -> None:
        self.procedure = procedure
        self.timeout_s = timeout_s
        self._at = time.monotonic() + timeout_s
        self._expired = threading.Event()

    def remaining_s(self) -> float:
        return max(0.0, self._at - time.monotonic())

    def expire(self) -> ProcedureTimedOut:
        """Mark the call timed out (no more ``with_tx``); the error for its caller."""
        self._expired.set()
        return ProcedureTimedOut(self.procedure, self.timeout_s)

    def check(self) -> None:
        """Raise ``ProcedureTimedOut`` once the deadline has passed.

        Raises:
            ProcedureTimedOut: too late to start anything that changes data.
        """
        if self._expired.is_set() or time.monotonic() >= self._at:
            raise self.expire()


@dataclass(frozen=True)
class ProcedureCall:
    """A submitted procedure call: ``result()`` blocks, ``await wait()`` does not.

    Both give up at the deadline with ``ProcedureTimedOut``; the outcome's ``tx_offset``
    is the offset of the last transaction the procedure committed (0 if none).
    """

    procedure: str
    future: Future[Any]
    deadline: Deadline

    def result(self) -> Any:
        try:
            return self.future.result(timeout=self.deadline.remaining_s())
        except concurrent.futures.TimeoutError:
            self.future.cancel()  # still queued: it never starts
            raise self.deadline.expire() from None

    async def wait(self) -> Any:
        """Wait on the event loop: no thread is held while the procedure runs."""
        try:
            return await asyncio.wait_for(
                asyncio.wrap_future(self.future), self.deadline.remaining_s()
            )
        except TimeoutError:
            raise self.deadline.expire() from None


class ProcedureRunner:
    """The threads one database's procedures run on."""

    def __init__(self, name: str, threads: int = limits.procedure_threads_max) -> None:
        self._name = name
        self._threads = threads
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def submit(self, function: Callable[[], T]) -> Future[T]:
        with self._lock:
            if self._executor is None:  # most databases never call a procedure
                self._executor = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name)
            return self._executor.submit(function)

    def close(self) -> None:
        """Cancel queued calls; running ones finish on their own (their with_tx refuses)."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
