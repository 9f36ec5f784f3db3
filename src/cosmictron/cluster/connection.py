"""``NatsConnection``: nats-py's asyncio client on a dedicated thread, usable from any thread.

The host is threaded (a writer lock, group commit, a thread per blocking call) and nats-py
is asyncio, so the client gets an event loop on a thread of its own; other threads hand it
coroutines with :meth:`NatsConnection.run` (a ``concurrent.futures.Future`` they wait on)
or callbacks with :meth:`NatsConnection.call_soon` (no waiting at all: the commit path's
publish). The commit thread never blocks on the loop except where it waits for an ack.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from cosmictron.errors import ClusterUnavailable, ConfigError
from cosmictron.nats_client import connect_nats

T = TypeVar("T")

CONNECT_TIMEOUT_S = 5.0
"""How long ``connect`` tries the URLs before it reports NATS unreachable."""

REQUEST_TIMEOUT_S = 5.0
"""How long one JetStream API request (stream info, create, KV) waits for its answer."""


def parse_urls(spec: str) -> list[str]:
    """``nats://a:4222,nats://b:4222`` -> the list; every entry must be a ``nats://`` URL.

    Raises:
        ConfigError: empty, or an entry is not ``nats://HOST:PORT``.
    """
    urls = [part.strip() for part in spec.split(",") if part.strip()]
    if not urls:
        raise ConfigError("--cluster needs at least one NATS URL (nats://HOST:PORT)")
    for url in urls:
        if not url.startswith(("nats://", "tls://")) or ":" not in url.split("://", 1)[1]:
            raise ConfigError(f"--cluster: {url!r} is not a NATS URL (nats://HOST:PORT)")
    return urls


class NatsConnection:
    """One NATS connection (and its JetStream context) on its own event-loop thread.

    Args:
        urls: the NATS servers (any of them will do; the client fails over between them).
        name: the client name the servers show (the node id).
    """

    def __init__(self, urls: list[str], name: str = "cosmictron") -> None:
        self.urls = urls
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._run_loop, name=f"cosmictron-nats-{name}", daemon=True
        )
        self.nc: Any = None
        self.js: Any = None
        self._closed = False
        self.out_of_touch_at = 0.0
        """``time.monotonic()`` of the last request that found no quorum to answer it (no
        responders, a timeout, JetStream's 503): what this node watched of the cluster
        before then may have changed unseen (``Lease.try_acquire``)."""

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def connect(self, timeout: float = CONNECT_TIMEOUT_S) -> NatsConnection:
        """Start the loop thread and connect.

        Raises:
            ClusterUnavailable: no server answered within ``timeout`` (names the URLs).
        """
        self._thread.start()
        try:
            self.run(self._connect(), timeout + 1.0)
        except (ClusterUnavailable, concurrent.futures.TimeoutError, OSError) as exc:
            self.close()
            raise ClusterUnavailable(
                f"cannot reach NATS at {','.join(self.urls)} (no server answered in {timeout:.0f}s)"
            ) from exc
        return self

    async def _connect(self) -> None:
        async def quiet(_exc: Exception) -> None:
            """Reconnects are expected (a server restarts); the log stays readable."""

        try:
            self.nc = await asyncio.wait_for(
                connect_nats(
                    servers=self.urls,
                    name=self.name,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.25,
                    connect_timeout=1,
                    error_cb=quiet,
                ),
                CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError) as exc:
            raise ClusterUnavailable(f"cannot reach NATS at {','.join(self.urls)}") from exc
        self.js = self.nc.jetstream(timeout=REQUEST_TIMEOUT_S)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coroutine`` on the loop and wait for its result (from another thread)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self.out_of_touch_at = time.monotonic()
            raise
        except Exception as exc:
            if out_of_touch(exc):
                self.out_of_touch_at = time.monotonic()
            raise

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start ``coroutine`` on the loop; the caller may wait on the future or not."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def call_soon(self, callback: Callable[..., Any], *args: Any) -> None:
        """Run ``callback(*args)`` on the loop, in call order, without waiting."""
        self.loop.call_soon_threadsafe(callback, *args)

    def close(self) -> None:
        """Drain and close the connection and stop the loop thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.nc is not None and self._thread.is_alive():
            try:
                self.run(self.nc.close(), 5.0)
            except Exception:  # closing a broken connection: nothing to keep
                pass
        if self._thread.is_alive():
            try:  # a connect given up on is still running: end it before the loop goes
                self.run(_cancel_other_tasks(), 5.0)
            except Exception:
                pass
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
        if not self._thread.is_alive():
            self.loop.close()


def out_of_touch(exc: BaseException) -> bool:
    """Whether ``exc`` says no quorum answered (rather than that the request was refused)."""
    from nats.js.errors import ServiceUnavailableError

    return isinstance(exc, (TimeoutError, ServiceUnavailableError)) or no_responder(exc)


def no_responder(exc: BaseException) -> bool:
    """Whether ``exc`` says nobody took the request: a request's ``NoRespondersError``, or
    the ``NoStreamResponseError`` that nats-py raises for a publish to a stream (a KV
    write) instead, which is not a subclass of it."""
    from nats.errors import NoRespondersError
    from nats.js.errors import NoStreamResponseError

    return isinstance(exc, (NoRespondersError, NoStreamResponseError))


async def _cancel_other_tasks() -> None:
    """Cancel every task on this loop but the caller and wait for them to end, so closing
    the loop destroys no pending task (which asyncio reports on stderr)."""
    tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


BUCKET_LEADER_WAIT_S = 10.0
"""How long a newly created KV bucket is given to elect its stream's leader."""


async def kv_bucket(js: Any, name: str, replicas: int) -> Any:
    """The KV bucket ``name``, created (history 1, file storage) when missing
    (``found_or_made``)."""
    from nats.js.api import KeyValueConfig, StorageType
    from nats.js.errors import BucketNotFoundError

    bucket = await found_or_made(
        js,
        lambda: js.key_value(name),
        lambda: js.create_key_value(
            KeyValueConfig(bucket=name, history=1, replicas=replicas, storage=StorageType.FILE)
        ),
        BucketNotFoundError,
        f"KV_{name}",
    )
    return SteadyBucket(bucket)


async def found_or_made(
    js: Any,
    find: Callable[[], Awaitable[T]],
    make: Callable[[], Awaitable[T]],
    missing: type[Exception],
    stream: str,
) -> T:
    """What ``find`` finds (a KV bucket, an object store), else what ``make`` makes,
    once the stream behind it (``stream``) can take writes.

    Creating a replicated store returns before its stream has elected a leader, and a
    write in that moment finds no responder (``NoStreamResponseError``): a node that
    created the bucket and wrote at once failed its first lease or catalogue write at
    random. So a store this call creates is returned only once its stream has a leader
    (or after ``BUCKET_LEADER_WAIT_S``: the write then fails as any write without a
    quorum does, and the caller's retry covers it).

    A create can be refused while JetStream settles: a 503 before the meta group is
    ready, a 400 while another creator's create of the same stream is in flight, a 400
    "no suitable peers for placement" while a peer that missed its heartbeats under
    load counts as offline (CI saw each fail a node's start or a catch-up). A create or
    a lookup can also go unanswered (CI: a file-storage create on a loaded machine, 5 s
    without an answer) while the stream is made all the same, which the next lookup
    finds. So each is tried again until ``BUCKET_LEADER_WAIT_S`` has passed; a refusal
    or a silence that lasts is raised.
    """
    from nats.js.errors import APIError

    loop = asyncio.get_running_loop()
    deadline = loop.time() + BUCKET_LEADER_WAIT_S
    made_here = False  # a create of ours was taken or went unanswered
    while True:
        try:
            found = await find()
            break
        except missing:
            pass
        except TimeoutError:  # the lookup went unanswered: ask again
            if loop.time() >= deadline:
                raise
            continue
        try:
            found = await make()
            made_here = True
            break
        except (APIError, TimeoutError) as exc:
            made_here = made_here or isinstance(exc, TimeoutError)
            if loop.time() >= deadline:
                raise
            await asyncio.sleep(0.1)
    if made_here:
        await stream_led(js, stream)
    return found


async def stream_subjects(js: Any, stream: str, prefix: str) -> list[str]:
    """The subjects under ``prefix`` that hold a message in ``stream``, less the prefix
    (sorted): a KV bucket's keys, an object store's encoded object names.

    Not nats-py's ``KeyValue.keys()`` or ``ObjectStore.list()``: they list through a
    push watcher and take the consumer's "nothing pending" with nothing received yet as
    an empty store, but the server may have pushed every entry already while the
    callback has not run (a loaded machine). ``keys()`` then raised ``NoKeysError`` for
    a bucket full of keys (CI: a node's ``GET /v1/cluster`` listed no databases), and
    each listing made a consumer, a request that can time out on its own under load. A
    stream info request is answered by the stream's leader from one state: every
    subject holding a message is in it, a write acknowledged before is seen. A deleted
    entry keeps its marker message there: the caller's read of each skips those.
    """
    info = await js.stream_info(stream, subjects_filter=f"{prefix}>")
    return sorted(subject[len(prefix) :] for subject in info.state.subjects or {})


async def bucket_values(js: Any, kv: Any, bucket: str) -> dict[str, bytes]:
    """Every key of the KV ``bucket`` that holds a value now, with its value
    (``stream_subjects``; a key deleted or purged, or deleted after the listing, is
    left out)."""
    from nats.js.errors import KeyDeletedError, KeyNotFoundError

    out = {}
    for key in await stream_subjects(js, f"KV_{bucket}", f"$KV.{bucket}."):
        try:
            out[key] = (await kv.get(key)).value or b""
        except (KeyNotFoundError, KeyDeletedError):
            continue
    return out


INTEREST_WAIT_S = 2.0
"""How long a KV write that found no responder is tried again (``SteadyBucket``)."""


async def once_heard(write: Callable[[], Awaitable[T]]) -> T:
    """``write()``, tried again for ``INTEREST_WAIT_S`` while it finds no responder (see
    ``SteadyBucket``: the server this connection talks to may not know yet that a new
    stream listens on the subjects). A write that found no responder was stored
    nowhere; one that still finds none is raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + INTEREST_WAIT_S
    while True:
        try:
            return await write()
        except Exception as exc:
            if not no_responder(exc) or loop.time() >= deadline:
                raise
            await asyncio.sleep(0.05)


class SteadyBucket:
    """A KV bucket whose writes are tried again for ``INTEREST_WAIT_S`` when they find no
    responder. A stream's leader can be elected before the server this connection talks
    to has heard, over the cluster's routes, that the stream listens on the bucket's
    subjects: a first write then found no responder at random (CI, a fresh cluster's
    first lease). A write that found no responder was stored nowhere, so trying it again
    is safe; one that still finds none is raised (no quorum: the caller's error path).
    Reads and everything else go to the bucket unchanged."""

    def __init__(self, bucket: Any) -> None:
        self._bucket = bucket

    def __getattr__(self, name: str) -> Any:
        return getattr(self._bucket, name)

    async def _steady(self, write: Callable[[], Awaitable[T]]) -> T:
        return await once_heard(write)

    async def put(self, key: str, value: bytes) -> int:
        return await self._steady(lambda: self._bucket.put(key, value))

    async def create(self, key: str, value: bytes) -> int:
        return await self._steady(lambda: self._bucket.create(key, value))

    async def update(self, key: str, value: bytes, last: int | None = None) -> int:
        return await self._steady(lambda: self._bucket.update(key, value, last=last))

    async def purge(self, key: str) -> bool:
        return await self._steady(lambda: self._bucket.purge(key))

    async def delete(self, key: str) -> bool:
        return await self._steady(lambda: self._bucket.delete(key))


async def stream_led(js: Any, stream: str) -> None:
    """Return once the replicated ``stream`` has a leader (at most ``BUCKET_LEADER_WAIT_S``).

    A stream just created answers nothing until its group has elected one (a publish
    finds no responder, an info request times out); a bucket's creator waits here so
    that its first write, and other nodes' first reads, do not fail at random.
    """
    deadline = asyncio.get_running_loop().time() + BUCKET_LEADER_WAIT_S
    while asyncio.get_running_loop().time() < deadline:
        try:
            info = await js.stream_info(stream)
            if info.cluster is None or info.cluster.leader:
                return
        except Exception:  # no answer yet: the stream's group is still forming
            pass
        await asyncio.sleep(0.05)
