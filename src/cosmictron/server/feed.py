"""One database's stream of changes to its WebSocket clients (its ``Subscriber``s).

The engine's ``SubscriptionManager`` computes every subscription's update, synchronously,
under the writer lock, in the thread that commits. A ``DatabaseFeed`` is the thread-safe
seam between that and the event loop; it never blocks the writer. It only queues,
orders and delivers: what an update holds, how several merge into one
(``subscription.merge_updates``) and what a subscription saw of a past transaction
(``subscription.replay``) are the subscription layer's.

* Each subscriber's subscription's ``on_update`` only appends ``(subscriber, update)`` to
  ``_batch``. The feed's commit listener runs after the manager (the host tells the
  live queries of a commit first, then the listeners), so when it runs the batch holds
  every update of that transaction; it hands the whole batch to the loop in one
  ``call_soon_threadsafe``. Handles run in the order they were scheduled, and
  everything here is scheduled under the writer lock, so the loop sees transactions
  in commit order and each one whole: a client's updates of one transaction are
  merged into one ``TransactionUpdate`` (bag sum per table), never split across two.
* ``subscribe`` runs ``Database.subscribe`` (initial rows evaluated off the lock, under
  the client's query budget), which schedules ``SubscribeApplied`` (``_applied``) in the
  critical section of the writer lock that registers the subscription: no update of a
  later transaction can be scheduled before it, so there is no gap and no overlap.
* The commit listener also keeps the *resume window*: the last
  ``limits.resume_window_transactions_max`` transactions' changes (at most
  ``resume_window_rows_max`` rows). A client that subscribes again with
  ``since_tx_offset`` gets the updates it missed, recomputed from the window through its
  queries, or all rows when the window no longer reaches back that far.
* ``DurableWatermark`` tells the loop when an offset is durable; sessions hold each
  message until its offset is (confirmed reads).
* Each subscriber has a ``Codec`` (JSON or msgpack, ``protocol.py``): an update is
  converted and encoded once per codec among its subscribers, not once per subscriber.

One module, a little over 400 lines, because the batch, the resume window and the
watermark share one lock and one order of delivery; split, each would need the others'
insides.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

from cosmictron import limits
from cosmictron.datastore import Datastore, TableChange
from cosmictron.errors import (
    ClusterUnavailable,
    CosmictronError,
    NotFinite,
    NotLeader,
    SubscriptionError,
)
from cosmictron.query.budget import QueryBudget
from cosmictron.server.ledger_feed import LedgerFollowers
from cosmictron.server.protocol import JSON, Codec, QueryId, RequestId, subscription_error
from cosmictron.server.registry import HostedDatabase
from cosmictron.server.wire import row_to_json
from cosmictron.subscription import Subscription, merge_updates, replay, replayable
from cosmictron.subscription.result_shape import QueryResultName
from cosmictron.values import Identity, Timestamp

logger = logging.getLogger(__name__)

LARGE_UPDATE_ROWS = 1000
"""Rows from which a ``TransactionUpdate`` is converted and encoded on the writer's
thread rather than the event loop (``DatabaseFeed._encode_large``)."""


class Subscriber(Protocol):
    """What the feed needs of a WebSocket connection that subscribes (docs/glossary.md);
    ``deliver`` runs on the loop only."""

    identity: Identity
    closed: bool
    codec: Codec

    def deliver(self, message: dict[str, Any] | str | bytes, offset: int) -> None: ...

    def drop(self, code: int, reason: str) -> None: ...


@dataclass
class _Update:
    subscriber: Subscriber
    update: dict[str, Any]
    schema: Any  # the module schema the rows were made under (a hot-swap may follow)
    text: str | bytes | None = None  # a large update's encoding, made on the writer's thread
    leaf: bytes | None = None  # the record's leaf hash, for a subscriber of the ledger


@dataclass
class _Message:
    subscriber: Subscriber
    message: dict[str, Any] | str | bytes
    offset: int


class ResumeWindow:
    """The recent transactions' changes, oldest first; guarded by the writer lock.

    ``covered_from`` is the offset after which the window holds every transaction: a
    subscriber that saw everything up to ``since >= covered_from`` can be told exactly what
    it missed.
    """

    def __init__(self, covered_from: int, transactions_max: int, rows_max: int) -> None:
        self.covered_from = covered_from
        self.transactions_max = transactions_max
        self.rows_max = rows_max
        self.entries: deque[tuple[int, Timestamp, list[TableChange], int]] = deque()
        self.row_count = 0

    def append(self, offset: int, timestamp: Timestamp, changes: list[TableChange]) -> None:
        rows = 0
        for change in changes:  # a loop, not sum(...): this runs on every commit
            rows += len(change.inserts) + len(change.deletes)
        self.entries.append((offset, timestamp, changes, rows))
        self.row_count += rows
        while self.entries and (
            len(self.entries) > self.transactions_max or self.row_count > self.rows_max
        ):
            dropped, _, _, dropped_rows = self.entries.popleft()
            self.row_count -= dropped_rows
            self.covered_from = dropped

    def after(self, since: int) -> list[tuple[int, Timestamp, list[TableChange], int]] | None:
        """The transactions after ``since``; None if some of them already left the window."""
        if since < self.covered_from:
            return None
        return [entry for entry in self.entries if entry[0] > since]


class DurableWatermark:
    """Waits, on the event loop, until an offset is durable under the fsync policy.

    Under ``always`` one task waits in a database thread (``Database.wait_durable``,
    which joins the group commit) for the highest offset anyone needs, then wakes every
    waiter it covers. Under ``periodic`` nothing signals a sync, so the task polls the
    durable offset every tenth of the interval. Under ``never`` the durable offset is the
    written one, so nothing ever waits.

    A waiter is a future (``wait_durable``) or a callback (``when_durable``: a client
    writes its queued messages from it, so a transaction's update reaches a hundred
    subscribers without waking a hundred tasks).
    """

    def __init__(self, hosted: HostedDatabase) -> None:
        self.hosted = hosted
        durability = hosted.db.durability
        self.policy = durability.fsync_policy
        self.poll_s = max(durability.fsync_interval_ms / 10_000, 0.001)
        self._waiters: list[tuple[int, asyncio.Future[None] | DurableCallback]] = []
        self._task: asyncio.Task[None] | None = None
        self.known = 0
        """The highest durable offset read so far: every offset at or below it is durable
        (the durable offset only grows), so a client checks it before asking the log."""

    @property
    def durable_offset(self) -> int:
        """The durable offset now (remembered in ``known``)."""
        durable = self.hosted.db.durable_offset
        if durable > self.known:
            self.known = durable
        return durable

    def reached(self, offset: int) -> bool:
        return offset <= self.hosted.db.durable_offset

    async def wait_durable(self, offset: int) -> None:
        """Return once ``offset`` is durable; raise ``DurabilityError`` if it never will be."""
        if self.reached(offset):
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wait(offset, future)
        await future

    def when_durable(self, offset: int, callback: DurableCallback) -> None:
        """Call ``callback(None)`` on the loop once ``offset`` is durable (at once if it
        is), or ``callback(error)`` if it never will be (a failed sync, a closed database)."""
        if self.reached(offset):
            callback(None)
            return
        self._wait(offset, callback)

    def _wait(self, offset: int, waiter: asyncio.Future[None] | DurableCallback) -> None:
        self._waiters.append((offset, waiter))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._pump())

    async def _pump(self) -> None:
        while self._waiters:
            target = max(offset for offset, _ in self._waiters)
            try:
                if self.policy == "always":
                    await self.hosted.run(self.hosted.db.wait_durable, target)
                else:
                    await asyncio.sleep(self.poll_s)
            except ClusterUnavailable as exc:
                if not isinstance(exc, NotLeader):
                    continue  # no quorum for now: the records stay queued, acked later
                waiters, self._waiters = self._waiters, []
                for _, waiter in waiters:
                    _settle(waiter, exc)
                return
            except (CosmictronError, RuntimeError) as exc:  # a failed sync; a closed database
                waiters, self._waiters = self._waiters, []
                for _, waiter in waiters:
                    _settle(waiter, exc)
                return
            durable = self.hosted.db.durable_offset
            waiting: list[tuple[int, asyncio.Future[None] | DurableCallback]] = []
            reached: list[tuple[int, asyncio.Future[None] | DurableCallback]] = []
            for entry in self._waiters:
                (waiting if entry[0] > durable else reached).append(entry)
            self._waiters = waiting
            for _, waiter in reached:
                _settle(waiter, None)


DurableCallback = Callable[[BaseException | None], None]
"""Called on the loop: None once the offset is durable, else why it never will be."""


def _settle(waiter: asyncio.Future[None] | DurableCallback, error: BaseException | None) -> None:
    if isinstance(waiter, asyncio.Future):
        if waiter.done():
            return
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)
        return
    try:
        waiter(error)
    except Exception:  # a bug in one waiter: the others are still told
        logger.exception("a durability callback failed")


class DatabaseFeed:
    """Delivers one database's subscriptions to its WebSocket clients (module docstring)."""

    def __init__(self, hosted: HostedDatabase, loop: asyncio.AbstractEventLoop) -> None:
        self.hosted = hosted
        self.loop = loop
        self.watermark = DurableWatermark(hosted)
        self._batch: list[_Update | _Message] = []
        # (id(update), protocol) -> its encoding, per hand-off
        self._large: dict[tuple[int, str], str | bytes | None] = {}
        self.window = ResumeWindow(0, limits.resume_window_transactions_max, 0)
        self.followers = LedgerFollowers()
        """Subscribers of the ledger's leaf hashes and checkpoints (``ledger_feed.py``)."""
        self.ledger_on = False
        self.stale: bool | None = None
        """Cluster mode: whether what this node serves of the database is stale, set under
        the writer lock (``server/staleness.py``), so each ``SubscribeApplied`` says it in
        its place among the ``Staleness`` messages; None in single-node mode (not said)."""
        self.stale_notice: dict[str, Any] | None = None
        """The ``Staleness`` its clients were last told while it says stale (None: current),
        for a client that connects meanwhile; on the loop (``server/staleness.py``)."""
        hosted.db.read(self._start)

    def _start(self, datastore: Datastore) -> None:
        # Under the writer lock: the window starts exactly where listening starts.
        self._reset_window(self.hosted.db.tx_offset)
        self.hosted.db.add_commit_listener(self._on_commit)
        self.ledger_on = self.hosted.db.add_checkpoint_listener(self._on_checkpoint)

    def _on_checkpoint(self, seq: int, note: str, tree: Any) -> None:
        """Under the writer lock, right after a checkpoint record: its followers' proofs."""
        if not self.followers:
            return
        for subscriber, message in self.followers.on_checkpoint(seq, note, tree):
            self._batch.append(_Message(subscriber, message, seq))
        self._hand_off()

    def _reset_window(self, covered_from: int) -> None:
        self._module = self.hosted.db.module
        self.window = ResumeWindow(
            covered_from, limits.resume_window_transactions_max, limits.resume_window_rows_max
        )

    def _forget_if_module_changed(self, covered_from: int) -> None:
        """After a module update the window's rows have the old tables' shape and the
        replay would run new queries over them: start it afresh (resumes from before the
        update get all rows). Under the writer lock."""
        if self.hosted.db.module is not self._module:
            self._reset_window(covered_from)

    # -- the writer's thread (all under the writer lock) ----------------------------------

    def _on_commit(self, offset: int, timestamp: Timestamp, changes: list[TableChange]) -> None:
        self._forget_if_module_changed(offset - 1)
        self.window.append(offset, timestamp, changes)
        self._hand_off()

    def _collect(self, subscriber: Subscriber, update: dict[str, Any]) -> None:
        if not subscriber.closed:
            schema = self.hosted.db.schema
            if getattr(subscriber, "ledger", False):
                seq = update["tx_offset"]
                leaf = self.hosted.db.ledger_leaf_hash(seq)
                late = None
                if leaf is not None:
                    late = self.followers.saw(subscriber, seq, leaf)
                self._batch.append(_Update(subscriber, update, schema, None, leaf))
                if late is not None:  # its checkpoint went out first: proven right after
                    checkpoint_seq = late["LedgerCheckpoint"]["seq"]
                    self._batch.append(_Message(subscriber, late, checkpoint_seq))
                return
            text = self._encode_large(update, schema, subscriber.codec)
            self._batch.append(_Update(subscriber, update, schema, text))

    def _encode_large(
        self, update: dict[str, Any], schema: Any, codec: Codec
    ) -> str | bytes | None:
        """A large update's ``TransactionUpdate`` encoding ("" when it has no rows), made
        once per update and codec here on the writer's thread: converting and encoding many
        rows on the event loop would stall every subscriber of every database. Small updates
        (the usual case) are left to the loop, off the commit path."""
        key = (id(update), codec.protocol)
        if key in self._large:
            return self._large[key]
        rows = sum(len(table["inserts"]) + len(table["deletes"]) for table in update["tables"])
        text: str | bytes | None = None
        if rows >= LARGE_UPDATE_ROWS:
            message = self._update_json(update, schema, codec)
            try:
                text = codec.encode(message) if message["TransactionUpdate"]["tables"] else ""
            except NotFinite:
                text = None  # the loop's path drops the subscriber with the reason
        self._large[key] = text
        return text

    def _ended(self, subscriber: Subscriber, query_id: QueryId, error: SubscriptionError) -> None:
        self._batch.append(_Message(subscriber, subscription_error(None, query_id, str(error)), 0))
        self._hand_off()

    def _hand_off(self) -> None:
        if not self._batch:
            return
        batch, self._batch = self._batch, []
        self._large.clear()
        try:
            self.loop.call_soon_threadsafe(self._deliver, batch)
        except RuntimeError:  # the loop is closed: the server is stopping
            pass

    def subscribe(
        self,
        subscriber: Subscriber,
        request_id: RequestId,
        query_id: QueryId,
        queries: Sequence[str],
        since: int | None,
        budget: QueryBudget | None = None,
    ) -> Subscription:
        """Subscribe ``subscriber`` and schedule its ``SubscribeApplied``; blocking.

        The initial rows are evaluated off the writer lock, under ``budget``; the
        ``SubscribeApplied`` is scheduled in the critical section that registers the
        subscription (``Database.subscribe``'s ``then``).

        Raises:
            SqlError, PermissionDenied: as ``Database.subscribe``.
            QueryCancelled, QueryTooCostly: the initial evaluation exceeded ``budget``.
        """
        return self.hosted.db.subscribe(
            queries,
            on_update=partial(self._collect, subscriber),
            sender=subscriber.identity,
            on_error=partial(self._ended, subscriber, query_id),
            budget=budget,
            then=partial(self._applied, subscriber, request_id, query_id, since),
        )

    def _applied(
        self,
        subscriber: Subscriber,
        request_id: RequestId,
        query_id: QueryId,
        since: int | None,
        subscription: Subscription,
        datastore: Datastore,
    ) -> None:
        """Schedule the ``SubscribeApplied`` (and a resume's missed updates); under the
        writer lock, right after the subscription was registered."""
        self._forget_if_module_changed(self.hosted.db.tx_offset)
        if getattr(subscriber, "ledger", False):
            self.followers.add(subscriber, getattr(subscriber, "ledger_from_size", None))
        offset = subscription.tx_offset
        applied: dict[str, Any] = {"request_id": request_id, "query_id": query_id}
        applied["tx_offset"] = offset
        if self.stale is not None:  # cluster mode: from a stale copy, or a current one
            applied["stale"] = self.stale
        missed = None
        if since is not None and since <= offset and replayable(subscription.queries):
            missed = self.window.after(since)
        codec = subscriber.codec
        if missed is None:
            applied["tables"] = [
                self._rows_json(table, codec) for table in subscription.initial["tables"]
            ]
            if since is not None:
                applied["resumed"] = False
            # Encoded here, on the database's thread: the initial rows may be many, and
            # encoding them on the event loop would stall every other subscriber.
            text = codec.encode({"SubscribeApplied": applied})
            self._batch.append(_Message(subscriber, text, offset))
        else:
            applied["tables"] = []
            applied["resumed"] = True
            applied["since_tx_offset"] = since
            self._batch.append(_Message(subscriber, {"SubscribeApplied": applied}, offset))
            for entry_offset, timestamp, changes, _ in missed:
                if entry_offset > offset:
                    break
                update = replay(subscription.queries, entry_offset, timestamp, changes, datastore)
                if update is not None:
                    message = self._update_json(update, None, codec)
                    message["TransactionUpdate"]["query_id"] = query_id
                    self._batch.append(_Message(subscriber, message, entry_offset))
        self._hand_off()

    # -- the event loop ---------------------------------------------------------------

    def _deliver(self, batch: list[_Update | _Message]) -> None:
        """Give each subscriber its messages, one merged ``TransactionUpdate`` per transaction.

        A batch normally holds one transaction's updates; merging by (subscriber, offset)
        keeps transactions apart even if a commit inside a callback ever mixed two.
        """
        merged: dict[tuple[Subscriber, int], list[_Update]] = {}
        for item in batch:
            if item.subscriber.closed:
                continue
            if isinstance(item, _Update):
                merged.setdefault((item.subscriber, item.update["tx_offset"]), []).append(item)
                continue
            for key in [key for key in merged if key[0] is item.subscriber]:
                self._send_updates(item.subscriber, merged.pop(key))
            item.subscriber.deliver(item.message, item.offset)
        encoded: dict[tuple[int, str], str | bytes] = {}
        for (subscriber, _), updates in merged.items():
            self._send_updates(subscriber, updates, encoded)

    def _send_updates(
        self,
        subscriber: Subscriber,
        updates: list[_Update],
        encoded: dict[tuple[int, str], str | bytes] | None = None,
    ) -> None:
        """Deliver one subscriber's updates of one transaction as one ``TransactionUpdate``.

        The subscription manager hands subscribers of the same queries the same update
        object, so a subscriber with one update gets the encoding made for the first
        subscriber with that object and codec (``encoded``, per batch): 100 subscribers of
        one query cost one conversion and one encoding per codec, not 100.
        """
        codec = subscriber.codec
        if getattr(subscriber, "ledger", False):
            self._send_with_leaf(subscriber, updates)
            return
        if len(updates) == 1:
            update = updates[0].update
            cached = updates[0].text
            if cached == "":  # made on the writer's thread: no rows for this subscriber
                return
            key = (id(update), codec.protocol)
            if cached is None and encoded is not None:
                cached = encoded.get(key)
            if cached is None:
                message = self._update_json(update, updates[0].schema, codec)
                if not message["TransactionUpdate"]["tables"]:
                    return
                try:
                    cached = codec.encode(message)
                except NotFinite as exc:  # never sent bare; the subscriber cannot have a gap
                    subscriber.drop(1011, str(exc))
                    return
                if encoded is not None:
                    encoded[key] = cached
            subscriber.deliver(cached, update["tx_offset"])
            return
        merged = merge_updates(
            [
                self._update_json(item.update, item.schema, codec)["TransactionUpdate"]
                for item in updates
            ],
            key=_json_key,
        )
        if merged["tables"]:  # else the subscriptions' changes cancelled out
            subscriber.deliver({"TransactionUpdate": merged}, merged["tx_offset"])

    def _send_with_leaf(self, subscriber: Subscriber, updates: list[_Update]) -> None:
        """A ledger subscriber's ``TransactionUpdate``: with ``ledger: {seq, leaf_hash}``,
        so encoded for this subscriber alone (the opt-in's cost is paid by who opts in)."""
        codec = subscriber.codec
        merged = merge_updates(
            [
                self._update_json(item.update, item.schema, codec)["TransactionUpdate"]
                for item in updates
            ],
            key=_json_key,
        )
        if not merged["tables"]:
            return
        leaf = updates[0].leaf
        if leaf is not None:
            merged["ledger"] = {"seq": merged["tx_offset"], "leaf_hash": leaf.hex()}
        subscriber.deliver({"TransactionUpdate": merged}, merged["tx_offset"])

    def _update_json(
        self, update: dict[str, Any], schema: Any = None, codec: Codec = JSON
    ) -> dict[str, Any]:
        tables = []
        for table in update["tables"]:
            convert = self._converter(table["table_name"], schema, codec)
            tables.append(
                {
                    "table_name": table["table_name"],
                    "inserts": [convert(row) for row in table["inserts"]],
                    "deletes": [convert(row) for row in table["deletes"]],
                }
            )
        return {
            "TransactionUpdate": {
                "tx_offset": update["tx_offset"],
                "timestamp": update["timestamp"].isoformat(),
                "tables": tables,
            }
        }

    def _rows_json(self, table: dict[str, Any], codec: Codec = JSON) -> dict[str, Any]:
        convert = self._converter(table["table_name"], None, codec)
        return {"table_name": table["table_name"], "rows": [convert(r) for r in table["rows"]]} | (
            {"columns": table["columns"]} if "columns" in table else {}
        )

    def _converter(
        self, table_name: str, schema: Any = None, codec: Codec = JSON
    ) -> Callable[[Sequence[Any]], dict[str, Any]]:
        form = codec.form
        if isinstance(table_name, QueryResultName):  # a query's own columns, not a table's
            names = table_name.column_names
            return lambda row: row_to_json(row, names, form)
        table = (schema or self.hosted.db.schema).table(table_name)
        names = [column.name for column in table.columns]
        return lambda row: row_to_json(row, names, form)


def _json_key(row: Any) -> str:
    """A row's identity in a merge: its JSON text (its values may be unhashable; msgpack
    forms may hold bytes, keyed by their repr)."""
    return json.dumps(row, sort_keys=True, default=repr)
