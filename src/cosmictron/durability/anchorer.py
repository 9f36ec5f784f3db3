"""RFC 3161 anchoring: the latest signed checkpoint goes to the TSAs, on a thread of its own.

Every ``anchor_interval_ms`` the anchorer (docs/design/ledger.md, "Anchoring"):

1. under the writer lock, checkpoints the records written since the last checkpoint
   (an idle database would otherwise leave its last records unsigned until its next
   write) and picks the latest checkpoint that covers a record no anchor covers yet;
   nothing new, nothing sent;
2. with no lock held, asks each configured TSA to stamp ``SHA-256(note)``
   (``ledger/tsa.timestamp``: nonce, policy, signature, chain to the configured trust
   root, critical timeStamping EKU, ESSCertIDv2, all checked);
3. under the writer lock, appends one anchor record per token it got
   (``ledger/anchor.py``); once the log is synced past them, they go to the side file
   ``ledger/anchors`` too.

A TSA that cannot be reached, or does not answer within ``anchor_tsa_timeout_ms``
(``TsaUnavailable``), is retried ``anchor_retry_ms`` later (or at the next round, if
sooner); an
answer that does not check (``TimestampInvalid``) is logged as an error and counted,
never stored. Neither touches the commit path: commits never wait for a TSA.

**Strict mode** (``anchor_strict``): when the oldest record no anchor covers is older
than ``anchor_max_lag_ms``, the anchorer sets the persistence layer's
``commit_refusal``; the host then refuses every new transaction with
``AnchoringOverdue`` (503) before running it, until an anchor covers the backlog
(the anchorer keeps trying every ``anchor_retry_ms`` meanwhile). Records already
committed are never affected; reads go on.

The lag (``lag()``: seconds and records since the oldest unanchored record) is what
``/metrics`` shows as ``cosmictron_anchor_lag_seconds`` / ``_records``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cosmictron.durability.config import DurabilityConfig
from cosmictron.durability.ledger_writer import LedgerWriter, Unanchored
from cosmictron.errors import ConfigError
from cosmictron.ledger.anchor import (
    AnchorBody,
    anchor_body,
    side_entry,
    token_gen_time,
)
from cosmictron.ledger.errors import AnchoringOverdue, TimestampInvalid, TsaUnavailable
from cosmictron.ledger.record_format import ANCHOR_KIND

if TYPE_CHECKING:
    from cryptography import x509

logger = logging.getLogger(__name__)

TICK_S = 1.0
"""How often the lag (and strict mode's refusal) is brought up to date."""


@dataclass
class AnchorStatistics:
    """Counters for ``/metrics`` and tests."""

    anchors_written: int = 0
    tsa_unavailable: int = 0
    tsa_invalid: int = 0
    last_error: str | None = None
    last_anchor_seq: int = 0
    last_checkpoint_seq: int = 0


def load_trust_roots(path: str) -> list[x509.Certificate]:
    """The CA certificates in the PEM file ``path``.

    Raises:
        ConfigError: the file cannot be read or holds no certificate.
    """
    from cryptography import x509

    try:
        with open(path, "rb") as file:
            pem = file.read()
        roots = x509.load_pem_x509_certificates(pem)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"anchor_trust_roots {path!r}: no PEM certificates ({exc})") from None
    return roots


class Anchorer:
    """Anchors one database's checkpoints (see the module docstring).

    Args:
        config: the database's settings (the ``anchor_*`` fields).
        ledger: the ledger's write side.
        log: the commit log (``append``, ``last_time_us``, ``next_offset``).
        sync_now: syncs the log; returns the synced offset.
        checkpoint_now: appends a checkpoint if records follow the last one.
        set_refusal: sets (or clears, with None) the error every commit gets.
    """

    def __init__(
        self,
        config: DurabilityConfig,
        ledger: LedgerWriter,
        log: Any,
        sync_now: Callable[[], int],
        checkpoint_now: Callable[[], object],
        set_refusal: Callable[[Exception | None], None],
    ) -> None:
        assert config.anchor_trust_roots is not None, "checked by DurabilityConfig"
        self.urls = config.anchor_tsa_urls
        self.roots = load_trust_roots(config.anchor_trust_roots)
        self.policy = config.anchor_policy
        self.interval_s = config.anchor_interval_ms / 1000
        self.strict = config.anchor_strict
        self.max_lag_s = config.anchor_max_lag_ms / 1000
        self.timeout_s = config.anchor_tsa_timeout_ms / 1000
        self.retry_s = min(config.anchor_retry_ms / 1000, self.interval_s)
        self.last_round_failed = False
        """Whether the last round had a checkpoint to anchor and no TSA gave a token."""
        self.ledger = ledger
        self.log = log
        self.sync_now = sync_now
        self.checkpoint_now = checkpoint_now
        self.set_refusal = set_refusal
        self.stats = AnchorStatistics()
        self._state = threading.Lock()
        """Held while anchor records are appended and by ``stop``: once stopped, nothing
        more is appended, even by a round whose TSA request was still out."""
        self._stopped = False
        self._refusing = False
        self._round = threading.Lock()
        """One round at a time (the thread's, or ``anchor_now``'s)."""
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._writer_lock: AbstractContextManager[Any] | None = None

    # -- the thread --------------------------------------------------------------------

    def start(self, writer_lock: AbstractContextManager[Any]) -> None:
        """Start anchoring; ``writer_lock`` is the lock every ``append`` is made under."""
        self._writer_lock = writer_lock
        self._thread = threading.Thread(target=self._run, name="cosmictron-anchoring", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Stop: no anchor record is appended from now on. Waits ``timeout_s`` at most
        for the thread (a TSA request in flight is abandoned, not waited for)."""
        with self._state:
            self._stopped = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)
        self.set_refusal(None)

    def _run(self) -> None:
        tick = min(TICK_S, self.interval_s)
        next_round = time.monotonic() + self.interval_s
        while not self._stopped:
            self._wake.wait(tick)
            if self._stopped:
                return
            try:
                refusing = self._update_refusal()
                now = time.monotonic()
                if refusing:
                    next_round = min(next_round, now + self.retry_s)
                if now >= next_round:
                    self.anchor_once()
                    refusing = self._update_refusal()
                    retry = refusing or self.last_round_failed
                    delay = self.retry_s if retry else self.interval_s
                    next_round = time.monotonic() + delay
            except Exception:  # the thread must outlive any one bad round
                logger.exception("an anchoring round failed; the next round retries")

    # -- one round ---------------------------------------------------------------------

    def anchor_once(self) -> list[int]:
        """One round now (see the module docstring); the anchor records' seqs."""
        lock = self._writer_lock
        assert lock is not None, "start() first"
        with self._round:
            return self._round_locked(lock)

    def _round_locked(self, lock: AbstractContextManager[Any]) -> list[int]:
        with lock:
            if self._stopped:
                return []
            if self.ledger.since_seq:
                self.checkpoint_now()
            candidate = self.ledger.unanchored[-1] if self.ledger.unanchored else None
        if candidate is None:
            self.last_round_failed = False
            return []
        tokens = []
        for url in self.urls:
            try:
                token = _timestamp(url, candidate.note, self.roots, self.policy, self.timeout_s)
            except TsaUnavailable as exc:
                self.stats.tsa_unavailable += 1
                self.stats.last_error = str(exc)
                logger.warning("anchoring: %s (retried in %.1f s)", exc, self.retry_s)
                continue
            except TimestampInvalid as exc:
                self.stats.tsa_invalid += 1
                self.stats.last_error = f"TSA {url}: {exc}"
                logger.error("anchoring: TSA %s answered a token that does not check: %s", url, exc)
                continue
            tokens.append((url, token))
        self.last_round_failed = not tokens
        if not tokens:
            return []
        seqs = self._append(candidate, tokens)
        if seqs:
            synced = self.sync_now()
            with lock:
                self.ledger.write_side(synced)
        return seqs

    def _append(self, candidate: Unanchored, tokens: list[tuple[str, Any]]) -> list[int]:
        lock = self._writer_lock
        assert lock is not None
        ledger, log = self.ledger, self.log
        with lock, self._state:
            if self._stopped:
                return []
            since = (ledger.since_seq, ledger.since_us)
            seqs = []
            ledger.checkpointing = True  # an anchor record never makes a checkpoint due
            try:
                for url, token in tokens:
                    body = anchor_body(log.last_time_us, candidate.checkpoint_seq, token.der, url)
                    seq = log.append(ANCHOR_KIND, body)
                    seqs.append(seq)
                    ledger.anchor_written(
                        side_entry(
                            seq,
                            AnchorBody(body[0], candidate.checkpoint_seq, token.der, url),
                            candidate.checkpoint_seq - 1,
                            candidate.note,
                            token_gen_time(token.der),
                        )
                    )
            finally:
                ledger.checkpointing = False
                # Anchor records are not what anchoring waits for: they do not count as
                # records after the checkpoint.
                ledger.since_seq, ledger.since_us = since
            while (
                ledger.unanchored
                and ledger.unanchored[0].checkpoint_seq <= candidate.checkpoint_seq
            ):
                ledger.unanchored.popleft()
            self.stats.anchors_written += len(seqs)
            self.stats.last_anchor_seq = seqs[-1]
            self.stats.last_checkpoint_seq = candidate.checkpoint_seq
        return seqs

    # -- lag and strict mode -----------------------------------------------------------

    def lag(self) -> tuple[float, int]:
        """Seconds and records since the oldest record no anchor covers (0, 0: none)."""
        ledger = self.ledger
        oldest: tuple[int, int] | None = None
        try:  # read without the writer lock: the queue may empty meanwhile
            first = ledger.unanchored[0]
            oldest = (first.first_seq, first.first_us)
        except IndexError:
            pass
        if oldest is None and ledger.since_seq:
            oldest = (ledger.since_seq, ledger.since_us)
        if oldest is None:
            return 0.0, 0
        seq, us = oldest
        seconds = max(0.0, time.time() - us / 1_000_000)
        return seconds, max(0, self.log.next_offset - seq)

    @property
    def refusing(self) -> bool:
        """Whether strict mode refuses commits now."""
        return self._refusing

    def _update_refusal(self) -> bool:
        if not self.strict:
            return False
        seconds, records = self.lag()
        if seconds > self.max_lag_s and not self._stopped:
            self._refusing = True
            detail = f" (last error: {self.stats.last_error})" if self.stats.last_error else ""
            self.set_refusal(
                AnchoringOverdue(
                    f"anchoring is overdue: {records} records are {seconds:.0f} s old without "
                    f"an RFC 3161 anchor (anchor_max_lag_ms {int(self.max_lag_s * 1000)}, "
                    f"strict mode){detail}; commits resume once a TSA answers"
                )
            )
        else:
            self._refusing = False
            self.set_refusal(None)
        return self._refusing


def _timestamp(
    url: str, note: str, roots: list[x509.Certificate], policy: str | None, timeout_s: float
) -> Any:
    from cosmictron.ledger.tsa import timestamp

    return timestamp(url, note.encode("utf-8"), roots, policy=policy, timeout=timeout_s)


__all__ = ["AnchorStatistics", "Anchorer", "load_trust_roots"]
