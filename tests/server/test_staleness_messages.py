"""Cluster mode's additions to the WebSocket messages, encoded and read back on both
subprotocols (issue 19, part 6; docs/reference/websocket.md): ``Staleness``, told to a
database's clients when what their node serves goes stale and when it is current again,
and a failed ``ReducerResult``'s ``retry_after_s``, what HTTP says as ``Retry-After``.

The server's codecs make the frames; the Python SDK's wire formats and reply handling
read them (no server needed: what a cluster makes of them is tests/cluster's
``test_stale_subscribers.py``).
"""

from __future__ import annotations

import json
import math

import msgpack
import pytest

from cosmictron.client import Client, DatabaseSchema
from cosmictron.client.replies import error_from_reply
from cosmictron.client.transport import WIRE_FORMATS
from cosmictron.errors import ClusterUnavailable, InvalidRequest, NotLeader, RateLimited
from cosmictron.server.forwarding import leader_error
from cosmictron.server.protocol import JSON, MSGPACK, Codec, reducer_result, staleness
from cosmictron.server.websocket_client import retry_after_of
from cosmictron.values import Timestamp

SINCE = Timestamp.parse("2026-12-07T09:00:00.25Z")
"""When a copy last heard from a quorum, in the tests (a quarter second past the minute)."""


def decoded(codec: Codec, message: dict[str, object]) -> object:
    """``message`` as its frame, decoded by the other side's plain decoder."""
    frame = codec.encode(message)
    if codec.binary:
        assert isinstance(frame, bytes)
        return msgpack.unpackb(frame, raw=False)
    assert isinstance(frame, str)
    return json.loads(frame)


def test_a_stale_notice_is_the_same_map_on_both_protocols() -> None:
    message = staleness(True, 41, SINCE.micros_since_epoch / 1e6)
    body = {"stale": True, "tx_offset": 41, "since": "2026-12-07T09:00:00.250000Z"}
    assert message == {"Staleness": body}
    assert JSON.encode(message) == json.dumps({"Staleness": body})
    for codec in (JSON, MSGPACK):
        assert decoded(codec, message) == {"Staleness": body}, codec.protocol


def test_a_current_notice_has_no_since() -> None:
    message = staleness(False, 57, None)
    for codec in (JSON, MSGPACK):
        assert decoded(codec, message) == {
            "Staleness": {"stale": False, "tx_offset": 57, "since": None}
        }


def _client() -> Client:
    schema = DatabaseSchema.from_json({"database": "app", "tables": [], "reducers": []})
    return Client("http://127.0.0.1:9", "app", schema, None)


@pytest.mark.parametrize("wire", ["json", "msgpack"])
def test_the_python_sdk_follows_the_notices_on_both_protocols(wire: str) -> None:
    client = _client()
    heard: list[tuple[bool, int, Timestamp | None]] = []
    client.on_staleness(lambda stale, offset, since: heard.append((stale, offset, since)))
    codec = JSON if wire == "json" else MSGPACK
    decode = WIRE_FORMATS[wire].decode
    since = SINCE.micros_since_epoch / 1e6
    for message in (
        staleness(True, 41, since),
        staleness(True, 41, since),  # said again (a reconnect): no second callback
        staleness(False, 41, None),
    ):
        ((kind, body),) = decode(codec.encode(message)).items()
        client._dispatch(kind, body)
        if body["stale"]:
            assert client.stale and client.stale_since == SINCE
    assert not client.stale and client.stale_since is None
    assert heard == [(True, 41, SINCE), (False, 41, None)]


def test_retry_after_is_said_by_the_errors_that_have_one() -> None:
    assert retry_after_of(ClusterUnavailable("no quorum", 2.0)) == 2.0
    assert retry_after_of(NotLeader("deposed", 1.0)) == 1.0
    assert retry_after_of(RateLimited("slow down", 0.25)) == 0.25
    assert retry_after_of(RateLimited("never", math.inf)) is None  # no finite hint
    assert retry_after_of(InvalidRequest("bad")) is None


@pytest.mark.parametrize("codec", [JSON, MSGPACK], ids=lambda codec: codec.protocol)
def test_a_failed_call_carries_its_retry_hint_to_the_sdk(codec: Codec) -> None:
    message = reducer_result(
        7, error="no quorum", error_code="cluster_unavailable", retry_after_s=2.0
    )
    (body,) = dict(decoded(codec, message)).values()  # type: ignore[call-overload]
    assert body["retry_after_s"] == 2.0 and body["error_code"] == "cluster_unavailable"
    error = error_from_reply(body["error_code"], body["error"], "add", None, body["retry_after_s"])
    assert isinstance(error, ClusterUnavailable) and error.retry_after_s == 2.0
    # Without a hint the field is absent, as it always was.
    assert (
        "retry_after_s"
        not in reducer_result(7, error="bad", error_code="invalid_request")["ReducerResult"]
    )


def test_a_leaders_refusal_keeps_its_retry_after() -> None:
    document = {"error": {"code": "cluster_unavailable", "message": "no ack in 10s"}}
    error = leader_error(document, 503, "2")
    assert error.code == "cluster_unavailable" and error.retry_after_s == 2.0
    assert retry_after_of(error) == 2.0
    assert retry_after_of(leader_error(document, 500)) is None
