"""A TSA that accepts the connection and never answers: the request gives up after
``anchor_tsa_timeout_ms``, the next round comes ``anchor_retry_ms`` later, commits are
never held up and the anchor lag grows; in strict mode commits are refused with an error
that says the TSA did not answer."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cosmictron import DurabilityConfig
from cosmictron.errors import ConfigError
from cosmictron.ledger.errors import AnchoringOverdue

from .conftest import LocalTsa
from .test_anchoring import MODULE, anchoring_config, open_db, wait_for


class SilentTsa:
    """A listening socket that accepts every connection, reads nothing, answers nothing."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.1)  # to see ``stopping``: a close does not wake accept
        self.url = f"http://127.0.0.1:{self.server.getsockname()[1]}/"
        self.accepted: list[float] = []
        """When each connection came (monotonic): one per anchoring attempt."""
        self.held: list[socket.socket] = []
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(time.monotonic())
            self.held.append(conn)

    def close(self) -> None:
        self.stopping = True
        self.thread.join()
        self.server.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def silent_tsa() -> Iterator[SilentTsa]:
    tsa = SilentTsa()
    yield tsa
    tsa.close()


def test_a_silent_tsa_times_out_is_retried_and_never_blocks_commits(
    local_tsa: LocalTsa, silent_tsa: SilentTsa, tmp_path: Path
) -> None:
    interval_s = 5.0
    db = open_db(
        tmp_path / "data",
        anchoring_config(
            local_tsa,
            [silent_tsa.url],
            anchor_interval_ms=int(interval_s * 1000),
            anchor_tsa_timeout_ms=300,
            anchor_retry_ms=100,
        ),
    )
    anchorer = db.core.persistence.anchorer
    assert anchorer is not None
    db.call("add", "first")
    first_lag = anchorer.lag()
    committed = 1
    # Commits go on while anchoring requests hang, time out and are retried.
    while len(silent_tsa.accepted) < 4 or anchorer.stats.tsa_unavailable < 3:
        db.call("add", f"during the outage {committed}")
        committed += 1
        time.sleep(0.02)
        assert committed < 5000, "anchoring never retried"
    assert len(db.sql("SELECT text FROM item")) == committed
    assert "did not answer within 0.3 s" in (anchorer.stats.last_error or "")
    # Retried after anchor_retry_ms, not a whole anchor_interval_ms later.
    gaps = [b - a for a, b in zip(silent_tsa.accepted[1:], silent_tsa.accepted[2:], strict=False)]
    assert gaps and max(gaps) < interval_s, gaps
    seconds, records = anchorer.lag()
    assert records > first_lag[1] and seconds > first_lag[0]
    assert anchorer.stats.anchors_written == 0
    db.close()


def test_strict_mode_refuses_commits_naming_the_silent_tsa(
    local_tsa: LocalTsa, silent_tsa: SilentTsa, tmp_path: Path
) -> None:
    db = open_db(
        tmp_path / "data",
        anchoring_config(
            local_tsa,
            [silent_tsa.url],
            anchor_interval_ms=200,
            anchor_tsa_timeout_ms=200,
            anchor_retry_ms=100,
            anchor_strict=True,
            anchor_max_lag_ms=500,
        ),
    )
    anchorer = db.core.persistence.anchorer
    assert anchorer is not None
    db.call("add", "before the outage shows")
    wait_for(lambda: anchorer.stats.tsa_unavailable >= 1)
    with pytest.raises(AnchoringOverdue, match="anchoring is overdue") as refused:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            db.call("add", "during the outage")
            time.sleep(0.05)
    assert "did not answer within 0.2 s" in str(refused.value)
    assert refused.value.http_status == 503
    # A deploy (a module record in the log) is refused the same way, nothing changed.
    updated = MODULE + "\n@reducer\ndef extra(ctx: ReducerContext) -> None:\n    pass\n"
    with pytest.raises(AnchoringOverdue, match="deploy refused: anchoring is overdue"):
        db.update_module(updated.encode(), filename="app.py")
    assert "extra" not in db.core.module.reducers
    db.close()


def test_timeout_and_retry_come_from_env_and_config_toml(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    base = {
        "COSMICTRON_SIGNING": "checkpoint",
        "COSMICTRON_ANCHOR_TSA_URLS": local_tsa.url,
        "COSMICTRON_ANCHOR_TRUST_ROOTS": str(local_tsa.path("ca.pem")),
    }
    default = DurabilityConfig.resolve(environ=base)
    assert (default.anchor_tsa_timeout_ms, default.anchor_retry_ms) == (10_000, 5_000)
    environ = {
        **base,
        "COSMICTRON_ANCHOR_TSA_TIMEOUT_MS": "2500",
        "COSMICTRON_ANCHOR_RETRY_MS": "750",
    }
    resolved = DurabilityConfig.resolve(environ=environ)
    assert (resolved.anchor_tsa_timeout_ms, resolved.anchor_retry_ms) == (2500, 750)
    toml = tmp_path / "config.toml"
    toml.write_text("anchor_tsa_timeout_ms = 4000\nanchor_retry_ms = 1000\n")
    from_file = DurabilityConfig.resolve(environ=base, config_file=toml)
    assert (from_file.anchor_tsa_timeout_ms, from_file.anchor_retry_ms) == (4000, 1000)
    with pytest.raises(ConfigError, match="anchor_tsa_timeout_ms must be a positive integer"):
        DurabilityConfig.resolve(environ={**base, "COSMICTRON_ANCHOR_TSA_TIMEOUT_MS": "0"})
    with pytest.raises(ConfigError, match="anchor_retry_ms must be a positive integer"):
        anchoring_config(local_tsa, [local_tsa.url], anchor_retry_ms=-1)
