"""RFC 3161 anchoring of checkpoints, against the real ``openssl ts`` TSA (conftest.py).

A database with ``anchor_tsa_urls`` sends its latest checkpoint to each TSA on a thread
of its own and stores every checked token as an anchor record; ``verify`` checks each
token (and ``openssl ts -verify`` accepts each one too). A TSA that is down never blocks
a commit; in strict mode, commits are refused once anchoring is overdue and resume when
the TSA answers again. Close stops the thread even while a TSA hangs.
"""

from __future__ import annotations

import base64
import http.server
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cosmictron import Database, DurabilityConfig
from cosmictron.errors import ConfigError, DurabilityError
from cosmictron.ledger.anchor import parse_anchor_body, read_side_anchors, token_response
from cosmictron.ledger.errors import AnchoringOverdue
from cosmictron.ledger.logread import LogReader
from cosmictron.ledger.record_format import ANCHOR_KIND, BODY, CHECKPOINT_KIND, KIND
from cosmictron.ledger.tsa import load_certificates
from cosmictron.ledger.verifier import verify

from .conftest import TSA_POLICY, LocalTsa

MODULE = """
from cosmictron import table, reducer, ReducerContext, field

@table(name="item", public=True)
class Item:
    id: int = field(primary_key=True, auto_inc=True)
    text: str = ""

@reducer
def add(ctx: ReducerContext, text: str) -> int:
    return Item.insert(Item(text=text)).id
"""


def anchoring_config(local_tsa: LocalTsa, urls: list[str], **overrides: Any) -> DurabilityConfig:
    fields = {
        **vars(DurabilityConfig.from_profile("development")),
        "signing": "checkpoint",
        "checkpoint_interval_ms": 3_600_000,
        "anchor_tsa_urls": tuple(urls),
        "anchor_trust_roots": str(local_tsa.path("ca.pem")),
        "anchor_interval_ms": 3_600_000,
        **overrides,
    }
    return DurabilityConfig(**fields)


def open_db(path: Path, config: DurabilityConfig) -> Database:
    module = path.parent / "app.py"
    module.write_text(MODULE)
    return Database.open(path, module=str(module), durability=config)


def roots(local_tsa: LocalTsa) -> list[Any]:
    return load_certificates(local_tsa.path("ca.pem").read_bytes())


def records(data: Path) -> list[list[Any]]:
    import msgpack

    return [msgpack.unpackb(r.payload, raw=False) for r in LogReader(str(data))]


def openssl_verifies(local_tsa: LocalTsa, work: Path, note: str, token: bytes) -> bool:
    """``openssl ts -verify`` alone: the bare token, and the ``.tsr`` bundle form."""
    (work / "note.txt").write_bytes(note.encode())
    (work / "token.der").write_bytes(token)
    (work / "token.tsr").write_bytes(token_response(token))
    ca = str(local_tsa.path("ca.pem"))
    bare = local_tsa.openssl(
        "ts", "-verify", "-data", str(work / "note.txt"), "-token_in",
        "-in", str(work / "token.der"), "-CAfile", ca,
    )  # fmt: skip
    wrapped = local_tsa.openssl(
        "ts", "-verify", "-data", str(work / "note.txt"), "-in", str(work / "token.tsr"),
        "-CAfile", ca,
    )  # fmt: skip
    return all(r.returncode == 0 and "Verification: OK" in r.stdout for r in (bare, wrapped))


def wait_for(predicate: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


class SwitchableTsa:
    """A TSA URL the test turns down (503), up (forwards to the real TSA) or slow."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.mode = "up"
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                outer.requests += 1
                if outer.mode == "slow":
                    time.sleep(3)
                if outer.mode != "up":
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                forwarded = urllib.request.Request(
                    outer.target, data=body, headers={"Content-Type": self.headers["Content-Type"]}
                )
                with urllib.request.urlopen(forwarded, timeout=10) as reply:
                    answer = reply.read()
                    content_type = reply.headers["Content-Type"]
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def switchable(local_tsa: LocalTsa) -> Iterator[SwitchableTsa]:
    tsa = SwitchableTsa(local_tsa.url)
    yield tsa
    tsa.close()


def test_a_checkpoint_is_anchored_checked_stored_and_verifies_with_openssl(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = anchoring_config(local_tsa, [local_tsa.url], anchor_policy=TSA_POLICY)
    db = open_db(data, config)
    for i in range(5):
        db.call("add", f"n {i}")
    seqs = db.anchor_now()
    assert len(seqs) == 1
    assert db.anchor_now() == [], "nothing new since: no second anchor"
    db.call("add", "after the anchor")
    assert len(db.anchor_now()) == 1, "a new record: the next round anchors again"
    db.close()

    logged = records(data)
    anchors = [f for f in logged if f[KIND] == ANCHOR_KIND]
    assert anchors[0][2] == seqs[0]
    notes = {f[2]: f[BODY][1] for f in logged if f[KIND] == CHECKPOINT_KIND}
    for fields in anchors:
        anchor = parse_anchor_body(fields[BODY])
        assert anchor.tsa == local_tsa.url
        assert openssl_verifies(local_tsa, tmp_path, notes[anchor.checkpoint_seq], anchor.token)
    side = read_side_anchors(data)
    assert [e["seq"] for e in side] == [a[2] for a in anchors]
    assert base64.b64decode(side[0]["token"]) == parse_anchor_body(anchors[0][BODY]).token

    result = verify(data, tsa_roots=roots(local_tsa), tsa_policy=TSA_POLICY)
    assert result.ok, result.lines()
    assert result.anchors == 2 and result.anchors_rooted
    assert result.lines() == [
        f"ok: {result.records} records, {result.checkpoints} checkpoints, 2 anchors verified"
    ]
    unrooted = verify(data)
    assert unrooted.ok and not unrooted.anchors_rooted
    assert "TSA chains not checked" in unrooted.lines()[0]


def test_every_tsa_is_asked_and_only_checked_tokens_are_kept(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    urls = [local_tsa.url, local_tsa.down_url, local_tsa.other_url, local_tsa.garbage_url]
    db = open_db(data, anchoring_config(local_tsa, urls))
    db.call("add", "x")
    seqs = db.anchor_now()
    anchorer = db.core.persistence.anchorer
    assert anchorer is not None
    assert len(seqs) == 1, "the trusted TSA's token only"
    assert anchorer.stats.tsa_unavailable == 1, "the TSA that is down"
    assert anchorer.stats.tsa_invalid == 2, "the untrusted TSA and the garbage answer"
    db.close()
    assert verify(data, tsa_roots=roots(local_tsa)).ok


def test_the_thread_anchors_at_the_interval_and_the_lag_falls_to_zero(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    db = open_db(
        tmp_path / "data", anchoring_config(local_tsa, [local_tsa.url], anchor_interval_ms=200)
    )
    anchorer = db.core.persistence.anchorer
    assert anchorer is not None
    for i in range(3):
        db.call("add", f"n {i}")
    wait_for(lambda: anchorer.stats.anchors_written >= 1 and anchorer.lag() == (0.0, 0))
    db.close()
    assert not any(t.name == "cosmictron-anchoring" for t in threading.enumerate())
    assert verify(tmp_path / "data", tsa_roots=roots(local_tsa)).ok


def test_a_tsa_outage_never_blocks_commits_and_the_lag_shows_it(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    db = open_db(
        tmp_path / "data",
        anchoring_config(local_tsa, [local_tsa.down_url], anchor_interval_ms=100),
    )
    anchorer = db.core.persistence.anchorer
    assert anchorer is not None
    db.call("add", "first")
    wait_for(lambda: anchorer.stats.tsa_unavailable >= 2)
    for i in range(20):
        db.call("add", f"n {i}")  # no refusal: not strict
    seconds, count = anchorer.lag()
    assert seconds > 0.1 and count >= 21
    assert anchorer.stats.anchors_written == 0
    db.close()


def test_strict_mode_refuses_commits_while_overdue_and_resumes(
    local_tsa: LocalTsa, switchable: SwitchableTsa, tmp_path: Path
) -> None:
    switchable.mode = "down"
    config = anchoring_config(
        local_tsa,
        [switchable.url],
        anchor_interval_ms=100,
        anchor_strict=True,
        anchor_max_lag_ms=300,
    )
    db = open_db(tmp_path / "data", config)
    db.call("add", "before the outage shows")
    with pytest.raises(AnchoringOverdue, match="anchoring is overdue") as refused:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            db.call("add", "during the outage")
            time.sleep(0.05)
    assert refused.value.code == "anchoring_overdue" and refused.value.http_status == 503
    assert db.sql("SELECT text FROM item WHERE text = 'before the outage shows'")
    switchable.mode = "up"
    deadline = time.monotonic() + 20
    while True:
        try:
            db.call("add", "after the outage")
            break
        except AnchoringOverdue:
            assert time.monotonic() < deadline, "commits never resumed"
            time.sleep(0.1)
    db.close()
    assert verify(tmp_path / "data", tsa_roots=roots(local_tsa)).ok


def test_close_stops_anchoring_while_a_tsa_hangs(
    local_tsa: LocalTsa, switchable: SwitchableTsa, tmp_path: Path
) -> None:
    switchable.mode = "slow"
    db = open_db(
        tmp_path / "data", anchoring_config(local_tsa, [switchable.url], anchor_interval_ms=100)
    )
    db.call("add", "x")
    wait_for(lambda: switchable.requests >= 1)
    started = time.monotonic()
    db.close()
    assert time.monotonic() - started < 2.5, "close waited for the TSA"
    time.sleep(3.5)  # the abandoned request ends; nothing may be appended after close
    result = verify(tmp_path / "data", tsa_roots=roots(local_tsa))
    assert result.ok and result.anchors == 0, result.lines()


def test_anchoring_settings_are_checked(local_tsa: LocalTsa, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="without anchor_trust_roots"):
        anchoring_config(local_tsa, [local_tsa.url], anchor_trust_roots=None)
    with pytest.raises(ConfigError, match="signing is off"):
        anchoring_config(local_tsa, [local_tsa.url], signing="off")
    with pytest.raises(ConfigError, match="not an http"):
        anchoring_config(local_tsa, ["ftp://tsa"])
    with pytest.raises(ConfigError, match="anchor_strict needs"):
        anchoring_config(local_tsa, [], anchor_strict=True)
    environ = {
        "COSMICTRON_SIGNING": "checkpoint",
        "COSMICTRON_ANCHOR_TSA_URLS": f"{local_tsa.url}, {local_tsa.other_url}",
        "COSMICTRON_ANCHOR_TRUST_ROOTS": str(local_tsa.path("ca.pem")),
        "COSMICTRON_ANCHOR_INTERVAL_MS": "5000",
        "COSMICTRON_ANCHOR_STRICT": "true",
        "COSMICTRON_ANCHOR_MAX_LAG_MS": "60000",
    }
    resolved = DurabilityConfig.resolve(environ=environ)
    assert resolved.anchor_tsa_urls == (local_tsa.url, local_tsa.other_url)
    assert (resolved.anchor_interval_ms, resolved.anchor_max_lag_ms) == (5000, 60000)
    assert resolved.anchor_strict is True
    toml = tmp_path / "config.toml"
    toml.write_text(
        f'signing = "checkpoint"\nanchor_tsa_urls = ["{local_tsa.url}"]\n'
        f'anchor_trust_roots = "{local_tsa.path("ca.pem")}"\n'
    )
    assert DurabilityConfig.resolve(environ={}, config_file=toml).anchor_tsa_urls == (
        local_tsa.url,
    )
    (tmp_path / "empty.pem").write_text("")
    with pytest.raises(ConfigError, match="no PEM certificates"):
        open_db(
            tmp_path / "data",
            anchoring_config(
                local_tsa, [local_tsa.url], anchor_trust_roots=str(tmp_path / "empty.pem")
            ),
        )
    db = open_db(tmp_path / "plain", anchoring_config(local_tsa, []))
    with pytest.raises(DurabilityError, match="anchoring is off"):
        db.anchor_now()
    db.close()


def test_a_reopened_database_anchors_what_was_not_anchored_and_nothing_twice(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    config = anchoring_config(local_tsa, [local_tsa.url])
    db = open_db(data, config)
    db.call("add", "first")
    assert len(db.anchor_now()) == 1
    db.close()  # its closing checkpoint covers the anchor record only
    db = open_db(data, config)
    anchorer = db.core.persistence.anchorer
    assert anchorer is not None and anchorer.lag() == (0.0, 0)
    assert db.anchor_now() == [], "an anchor record alone is nothing new to anchor"
    db.call("add", "second")
    assert anchorer.lag()[1] > 0
    assert len(db.anchor_now()) == 1
    db.call("add", "third, left for the next open")
    db.close()
    db = open_db(data, config)
    anchorer = db.core.persistence.anchorer
    assert anchorer is not None and anchorer.lag()[1] > 0, "the third record is not anchored"
    assert len(db.anchor_now()) == 1
    db.close()
    result = verify(data, tsa_roots=roots(local_tsa))
    assert result.ok and result.anchors == 3, result.lines()


WRITER = """
import sys
from cosmictron import Database, DurabilityConfig
fields = {**vars(DurabilityConfig.from_profile("development")), "signing": "checkpoint",
          "checkpoint_interval_ms": 50, "fsync_policy": "periodic", "fsync_interval_ms": 20,
          "anchor_tsa_urls": (sys.argv[3],), "anchor_trust_roots": sys.argv[4],
          "anchor_interval_ms": 50}
db = Database.open(sys.argv[1], module=sys.argv[2], durability=DurabilityConfig(**fields))
anchorer = db.core.persistence.anchorer
i = 0
while True:
    db.call("add", f"n {i}")
    i += 1
    if anchorer.stats.anchors_written >= 3 and i % 50 == 0:
        print("ready", flush=True)
"""


def test_sigkill_while_anchoring_leaves_a_log_that_verifies_and_reopens(
    local_tsa: LocalTsa, tmp_path: Path
) -> None:
    """The anchors side file is written only once the log is synced past its records, so
    a crash never leaves it ahead of the log (which would read as a truncated log)."""
    import os
    import signal
    import subprocess
    import sys

    (tmp_path / "app.py").write_text(MODULE)
    (tmp_path / "writer.py").write_text(WRITER)
    data = tmp_path / "data"
    writer = subprocess.Popen(
        [sys.executable, str(tmp_path / "writer.py"), str(data), str(tmp_path / "app.py"),
         local_tsa.url, str(local_tsa.path("ca.pem"))],
        stdout=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == b"ready"
    time.sleep(0.3)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    writer.stdout.close()
    result = verify(data, tsa_roots=roots(local_tsa))
    assert result.ok and result.anchors >= 3, result.lines()
    assert len(read_side_anchors(data)) <= result.anchors
    db = open_db(data, anchoring_config(local_tsa, [local_tsa.url]))
    db.call("add", "after the crash")
    assert len(db.anchor_now()) == 1
    db.close()
    result = verify(data, tsa_roots=roots(local_tsa))
    assert result.ok, result.lines()
