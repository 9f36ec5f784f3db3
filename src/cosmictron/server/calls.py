"""Reducer calls of one database, run in batches by one thread: one fsync per batch.

The benchmark showed where a call's time went when each call took its own trip: a
thread-pool hop in, the reducer, an fsync wait (shared by at most the callers that
happened to overlap), a hop back. ``CallWorker`` runs a database's reducer calls on one
dedicated thread instead. Calls queue from the event loop; the thread takes everything
queued, runs the calls one after another (each its own transaction, committed but not
yet waited for), waits once for the last one to be durable (the group commit covers the
whole batch), then resolves all their futures in one hand-off per event loop. Under load
batches grow by themselves, so the cost of the fsync and of the thread hops is shared by
many calls; a lone call still goes through at once.

A caller on the event loop gets its result either as a future (``submit``: HTTP) or as a
callback run on the loop in the same hand-off (``submit_then``: a WebSocket client, which
then queues the reply at once instead of waking a task per call; docs/benchmarks.md,
"Where a server call's time goes"). A callback may come with an ``after``, run once per
hand-off after all of its calls' callbacks: a client then writes the replies of a whole
batch in one go.

While a batch's sync runs, the next batch need not wait for it: when calls are already
queued behind a batch (or an earlier batch is still being synced), the batch goes to a
second thread (``_DurableWaiter``), which waits for its sync and hands it off, in the
order batches ran, while the call thread runs the next batch; that batch's sync then
covers what ran meanwhile (group commit, as with concurrent in-process callers). A lone
call still waits on the call thread itself: no extra hop on the path of one client.
Nothing is acknowledged earlier than before: every result is handed off only after the
sync that covers its batch.

A lone call (a batch of one, nothing queued behind it) whose caller gave a ``direct``
(``submit_then``: a WebSocket client) is offered its outcome on this thread as soon as
its sync returned, before the hand-off: the client may write its reply from here
(``WebSocketClient._reply_now``), so the reply does not wait for the hop to the loop.

The thread sleeps on a lock of its own that the loop releases only when the thread said
it is going to sleep, so a call queued while the thread is busy costs one append under a
plain lock, and a wake-up one release (a ``threading.Condition`` costs several Python
frames and a new lock on each wait).

The order of calls is the order they were submitted. A failed call is one that raised;
it leaves nothing behind and does not affect the others in its batch. If the sync
fails, every call in the batch fails with that ``DurabilityError``: none of them was
acknowledged, exactly as a single call would behave.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from asyncio import get_running_loop
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cosmictron.errors import CosmictronError, InternalError
from cosmictron.host import CallOutcome, Database
from cosmictron.values import ConnectionId, Identity

logger = logging.getLogger(__name__)

BATCH_CALLS_MAX = 256
"""Calls one batch takes at most, so a flood cannot delay replies without bound."""


_Item = TypeVar("_Item")

CallDone = Callable[[CallOutcome | None, BaseException | None], None]
"""``(outcome, None)`` once a call is durable, ``(None, error)`` if it failed; on the loop."""

ReplyNow = Callable[[CallOutcome], bool]
"""Called with a call's outcome once it is durable, on the thread that waited for the
sync, before the hand-off to the loop: True if it wrote the caller's reply itself (the
hand-off's ``then`` still runs, for the caller's bookkeeping)."""


@dataclass(slots=True)
class _Call:
    reducer: str
    args: Sequence[Any]
    kwargs: Mapping[str, Any]
    sender: Identity
    connection_id: ConnectionId | None
    future: asyncio.Future[CallOutcome] | None
    loop: asyncio.AbstractEventLoop
    then: CallDone | None = None
    after: Callable[[], None] | None = None
    direct: ReplyNow | None = None


class _QueueThread(Generic[_Item]):
    """A thread that takes what is queued for it and sleeps on a lock of its own when
    there is nothing (see the module docstring): ``_take`` picks the next piece of work
    from the queue (under the mutex), ``_work`` does it (outside)."""

    def __init__(self, name: str) -> None:
        self._queue: deque[_Item] = deque()
        self._mutex = threading.Lock()
        """Guards the queue, ``_sleeping`` and ``_stopping``; never held across work."""
        self._wake = threading.Lock()
        """Held while nobody woke the thread; released once per sleep, by the waker."""
        self._wake.acquire()
        self._sleeping = False
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _wake_locked(self) -> None:
        """Wake the thread if it sleeps (else it takes the queue when done); hold the mutex."""
        if self._sleeping:
            self._sleeping = False
            self._wake.release()

    def close(self) -> None:
        """Finish what is queued, then stop the thread."""
        with self._mutex:
            self._stopping = True
            self._wake_locked()
        self._thread.join()

    def _run(self) -> None:
        queue = self._queue
        while True:
            with self._mutex:
                if queue:
                    work: Any = self._take(queue)
                else:
                    self._idle()
                    if self._stopping:
                        return
                    self._sleeping = True
                    work = None
            if work is not None:
                self._work(work)
            else:
                self._wake.acquire()  # until ``_wake_locked`` (or close) releases it

    def _take(self, queue: deque[_Item]) -> Any:
        raise NotImplementedError

    def _work(self, work: Any) -> None:
        raise NotImplementedError

    def _idle(self) -> None:
        """The queue is empty (under the mutex), before the thread sleeps or stops."""


class CallWorker(_QueueThread[_Call]):
    """The thread that runs one database's reducer calls (see the module docstring)."""

    def __init__(self, db: Database, name: str) -> None:
        super().__init__(f"calls-{name}")
        self.db = db
        self._waiter = _DurableWaiter(db, name)
        self._thread.start()

    def submit(
        self,
        reducer: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        sender: Identity,
        connection_id: ConnectionId | None = None,
    ) -> asyncio.Future[CallOutcome]:
        """Queue a call; the future resolves once it is durable (or fails). Loop only."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[CallOutcome] = loop.create_future()
        self._queue_call(_Call(reducer, args, kwargs, sender, connection_id, future, loop))
        return future

    def submit_then(
        self,
        reducer: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        sender: Identity,
        connection_id: ConnectionId | None,
        then: CallDone,
        after: Callable[[], None] | None = None,
        direct: ReplyNow | None = None,
    ) -> None:
        """Queue a call; ``then`` runs on this loop once it is durable (or failed), and
        ``after`` once per hand-off, after the ``then`` of every call it resolves.
        ``direct``, if given, is offered the outcome of a call that succeeded as soon as
        it is durable, off the loop (``ReplyNow``)."""
        call = _Call(
            reducer,
            args,
            kwargs,
            sender,
            connection_id,
            None,
            get_running_loop(),
            then,
            after,
            direct,
        )
        with self._mutex:  # ``_queue_call``, written out: this is every WebSocket call
            if self._stopping:
                raise InternalError("the database is closing; try again")
            self._queue.append(call)
            if self._sleeping:
                self._sleeping = False
                self._wake.release()

    def _queue_call(self, call: _Call) -> None:
        with self._mutex:
            if self._stopping:
                raise InternalError("the database is closing; try again")
            self._queue.append(call)
            self._wake_locked()

    @property
    def overlapped_batches(self) -> int:
        """Batches whose sync was waited for while the next batch ran (tests)."""
        return self._waiter.batches

    def close(self) -> None:
        """Finish the queued calls, then stop the threads."""
        super().close()
        self._waiter.close()

    def _take(self, queue: deque[_Call]) -> list[_Call]:
        if len(queue) <= BATCH_CALLS_MAX:
            batch = list(queue)
            queue.clear()
            return batch
        return [queue.popleft() for _ in range(BATCH_CALLS_MAX)]

    def _work(self, work: list[_Call]) -> None:
        self._run_batch(work)

    def _run_batch(self, batch: list[_Call]) -> None:
        results: list[tuple[_Call, CallOutcome | None, BaseException | None]] = []
        last = 0
        execute = self.db.execute_reducer
        for call in batch:
            try:
                args, kwargs = call.args, call.kwargs
                outcome = execute(
                    call.reducer,
                    args if type(args) is list else list(args),  # made for this call
                    kwargs if type(kwargs) is dict else dict(kwargs),
                    sender=call.sender,
                    connection_id=call.connection_id,
                    durable=False,
                )
            except CosmictronError as exc:
                results.append((call, None, exc))
            except Exception as exc:  # a bug: never leave a caller waiting
                logger.exception("call of %r failed unexpectedly", call.reducer)
                results.append((call, None, InternalError(f"{type(exc).__name__}: {exc}")))
            else:
                results.append((call, outcome, None))
                if outcome.tx_offset > last:
                    last = outcome.tx_offset
        waiter = self._waiter
        if waiter.busy or (last and self._queue):
            # Calls are waiting, or an earlier batch's sync is still running: that thread
            # waits for this batch's sync and hands it off (after the earlier ones) while
            # this one runs the next batch.
            waiter.put(results, last)
            return
        # A lone call (nothing queued behind it, the batch its own) may have its reply
        # written by this thread once durable: the hop to the loop is then off its path.
        _settle(self.db, results, last, lone=len(results) == 1)


def _settle(db: Database, results: list[Any], last: int, lone: bool = False) -> None:
    """Wait until ``last`` is durable, then hand every result to its loop (every call
    of the batch failing with the ``DurabilityError`` if the sync failed); a ``lone``
    call's outcome is first offered to its ``direct``."""
    if last:
        try:
            db.wait_durable(last)
        except CosmictronError as exc:
            # Nothing in the batch was acknowledged: every committed call fails too.
            results = [(call, None, error or exc) for call, _, error in results]
        else:
            if lone:
                _reply_now(results[0])
    if not results:
        return
    loop = results[0][0].loop
    for call, _, _ in results:
        if call.loop is not loop:
            break
    else:  # the usual case: one event loop
        _hand_off(loop, results)
        return
    by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
    for result in results:
        by_loop.setdefault(result[0].loop, []).append(result)
    for loop, resolved in by_loop.items():
        _hand_off(loop, resolved)


def _reply_now(result: tuple[_Call, CallOutcome | None, BaseException | None]) -> None:
    """Offer a durable outcome to its caller's ``direct``, so that the reply need not
    wait for the hop to the loop.

    Only for a lone call: in a batch of several, each reply written here cost more
    instructions than the loop's one pass over the batch, and the batches got smaller
    (docs/benchmarks.md, issue 11 srv7)."""
    call, outcome, error = result
    if call.direct is not None and error is None and outcome is not None:
        try:
            call.direct(outcome)
        except Exception:  # a bug in the caller's callback: the loop's way still works
            logger.exception("the direct reply of %r failed", call.reducer)


def _hand_off(loop: asyncio.AbstractEventLoop, results: list[Any]) -> None:
    try:
        loop.call_soon_threadsafe(_resolve, results)
    except RuntimeError:  # the loop closed: the server is stopping
        pass


class _DurableWaiter(_QueueThread[tuple[list[Any], int]]):
    """The second thread of a ``CallWorker``: waits for a batch's sync and hands the batch
    off, while the call thread already runs the next batch (see the module docstring).

    Batches are settled in the order they were put, so their results reach the loop in
    the order their calls ran. ``busy`` (a batch queued or being settled) tells the call
    thread that its next batch must come here too, behind them.
    """

    def __init__(self, db: Database, name: str) -> None:
        super().__init__(f"durable-{name}")
        self.db = db
        self._settling = False
        self.batches = 0
        """Batches put here (their sync overlapped the next batch): for tests."""
        self._thread.start()

    @property
    def busy(self) -> bool:
        return self._settling or bool(self._queue)

    def put(self, results: list[Any], last: int) -> None:
        self.batches += 1
        with self._mutex:
            self._queue.append((results, last))
            self._settling = True
            self._wake_locked()

    def _take(self, queue: deque[tuple[list[Any], int]]) -> tuple[list[Any], int]:
        return queue.popleft()

    def _work(self, work: tuple[list[Any], int]) -> None:
        _settle(self.db, *work)

    def _idle(self) -> None:
        self._settling = False


def _resolve(results: list[tuple[_Call, CallOutcome | None, BaseException | None]]) -> None:
    afters: dict[Callable[[], None], None] = {}  # each once, in order
    for call, outcome, error in results:
        if call.then is not None:
            try:
                call.then(outcome, error)
            except Exception:  # a bug in the caller's callback: the others still resolve
                logger.exception("the result callback of %r failed", call.reducer)
            if call.after is not None:
                afters[call.after] = None
            continue
        assert call.future is not None
        if call.future.done():  # the caller went away
            continue
        if error is not None:
            call.future.set_exception(error)
        else:
            assert outcome is not None
            call.future.set_result(outcome)
    for after in afters:
        try:
            after()
        except Exception:  # a bug in the caller's callback: the others still run
            logger.exception("the after-batch callback %r failed", after)
