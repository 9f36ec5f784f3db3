"""Both WebSocket subprotocols against a real server: every message kind round-trips on
``v1.json.cosmictron`` and ``v1.msgpack.cosmictron`` alike, bad frames get the same
specific errors, and the bounds (frame size, depth, frame type) hold on both.

The only difference allowed is the one the reference names: msgpack carries bytes as
``bin`` (JSON: hex) and an integer past 64 bits as extension type 1 (JSON: a number).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import Iterator
from typing import Any

import aiohttp
import msgpack
import pytest

from cosmictron import bounded_msgpack
from tests.server.conftest import Server, fresh_database, strict_loads

JSON = "v1.json.cosmictron"
MSGPACK = "v1.msgpack.cosmictron"

MODULE = """
from cosmictron import *

@table(public=True)
class Blob:
    id: int = field(primary_key=True, auto_inc=True)
    data: bytes = b""
    big: u128 = 0
    label: str = ""

@reducer
def put(ctx: ReducerContext, data: bytes, big: u128, label: str) -> bytes:
    if label == "fail":
        raise ValueError("no label may say fail")
    ctx.db.blob.insert(Blob(data=data, big=big, label=label))
    return data
"""

BIG = 2**100 + 7
DATA = b"\x00\xffcosmic\x80"


class Peer:
    """One WebSocket connection speaking ``protocol``; messages as Python dicts."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, protocol: str) -> None:
        self.ws = ws
        self.protocol = protocol
        self.next_id = 0

    @property
    def binary(self) -> bool:
        return self.protocol == MSGPACK

    def data(self, value: bytes) -> Any:
        """How ``value`` (a bytes argument or cell) travels on this protocol."""
        return value if self.binary else value.hex()

    async def send_raw(self, message: Any) -> None:
        if self.binary:
            await self.ws.send_bytes(msgpack.packb(message, default=_big_int))
        else:
            await self.ws.send_str(json.dumps(message))

    async def send(self, kind: str, **fields: Any) -> int:
        self.next_id += 1
        await self.send_raw({kind: {"request_id": self.next_id, **fields}})
        return self.next_id

    async def receive(self) -> tuple[str, Any]:
        frame = await self.ws.receive(timeout=30)
        if self.binary:
            assert frame.type is aiohttp.WSMsgType.BINARY, (frame.type, frame.data)
            message = bounded_msgpack.loads(frame.data, "a reply")
        else:
            assert frame.type is aiohttp.WSMsgType.TEXT, (frame.type, frame.data)
            message = strict_loads(frame.data)
        ((kind, body),) = message.items()
        return kind, body

    async def expect(self, kind: str) -> Any:
        got, body = await self.receive()
        assert got == kind, (got, body)
        return body


def _big_int(value: Any) -> Any:
    raise TypeError(f"cannot pack {value!r}")


def args_for(peer: Peer, label: str) -> list[Any]:
    """``put``'s arguments; msgpack's big integer goes as extension type 1."""
    big: Any = bounded_msgpack.form(BIG) if peer.binary else BIG
    return [peer.data(DATA), big, label]


def run(server: Server, protocol: str, scenario: Any) -> None:
    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            url = f"{server.url}/v1/database/blobs/subscribe"
            ws = await http.ws_connect(url, protocols=(protocol,), max_msg_size=0)
            assert ws.protocol == protocol
            await scenario(Peer(ws, protocol))
            await ws.close()

    asyncio.run(main())


@pytest.fixture
def blobs(module_server: Server) -> Iterator[Server]:
    """The module's one server with a new ``blobs`` database for this test."""
    with fresh_database(module_server, "blobs", MODULE):
        yield module_server


@pytest.mark.parametrize("protocol", [JSON, MSGPACK])
def test_every_message_kind_round_trips(blobs: Server, protocol: str) -> None:
    async def scenario(peer: Peer) -> None:
        hello = await peer.expect("IdentityToken")
        assert len(hello["identity"]) == 64 and hello["token"]
        request = await peer.send("Subscribe", query_id=7, query_strings=["SELECT * FROM blob"])
        applied = await peer.expect("SubscribeApplied")
        assert applied["request_id"] == request and applied["query_id"] == 7
        assert applied["tables"] == [{"table_name": "blob", "rows": []}]

        request = await peer.send("CallReducer", reducer="put", args=args_for(peer, "a"))
        update = await peer.expect("TransactionUpdate")
        # msgpack carries the big integer natively; JSON as a decimal string (past 2**53).
        big = BIG if peer.binary else str(BIG)
        row = {"id": 1, "data": peer.data(DATA), "big": big, "label": "a"}
        assert update["tables"] == [{"table_name": "blob", "inserts": [row], "deletes": []}]
        result = await peer.expect("ReducerResult")
        assert result == {
            "request_id": request,
            "status": "committed",
            "return_value": peer.data(DATA),
            "error": None,
            "tx_offset": update["tx_offset"],
        }
        # Arguments by name too.
        named = dict(zip(("data", "big", "label"), args_for(peer, "b"), strict=True))
        request = await peer.send("CallReducer", reducer="put", args=named)
        await peer.expect("TransactionUpdate")
        assert (await peer.expect("ReducerResult"))["status"] == "committed"

        request = await peer.send("CallReducer", reducer="put", args=args_for(peer, "fail"))
        failed = await peer.expect("ReducerResult")
        assert failed["request_id"] == request and failed["status"] == "failed"
        assert "no label may say fail" in failed["error"] and failed["error_code"]

        request = await peer.send("OneOffQuery", query_string="SELECT * FROM blob WHERE id = 1")
        answer = await peer.expect("OneOffQueryResult")
        assert answer["request_id"] == request
        assert answer["tables"][0]["rows"] == [row]

        request = await peer.send("Unsubscribe", query_id=7)
        assert await peer.expect("UnsubscribeApplied") == {"request_id": request, "query_id": 7}

        request = await peer.send("Unsubscribe", query_id=7)
        error = await peer.expect("SubscriptionError")
        assert error["request_id"] == request and "no subscription" in error["error"]

    run(blobs, protocol, scenario)


def test_http_sees_what_msgpack_wrote(blobs: Server) -> None:
    """A msgpack client's bytes and big integer are the same values over HTTP."""

    async def scenario(peer: Peer) -> None:
        await peer.expect("IdentityToken")
        await peer.send("CallReducer", reducer="put", args=args_for(peer, "m"))
        assert (await peer.expect("ReducerResult"))["status"] == "committed"

    run(blobs, MSGPACK, scenario)
    reply = blobs.request("POST", "/v1/database/blobs/sql", "SELECT data, big FROM blob")
    assert reply.body["rows"] == [{"data": DATA.hex(), "big": str(BIG)}]


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


TOO_DEEP = {"CallReducer": {"request_id": 1, "args": _nested(65)}}
BAD_FRAMES = {
    # name: (JSON text, msgpack bytes): the same mistake in each encoding
    "not decodable": ("{not json", b"\xc1"),
    "truncated": ('{"Subscribe": {', b"\x81\xa9Subscribe\x82"),
    "trailing": ('{"Subscribe": {}} x', msgpack.packb({"Subscribe": {}}) + b"\x01"),
    "not a one-key map": ("[1, 2]", msgpack.packb([1, 2])),
    "unknown kind": (
        '{"Publish": {"request_id": 1}}',
        msgpack.packb({"Publish": {"request_id": 1}}),
    ),
    "too deep": (json.dumps(TOO_DEEP), msgpack.packb(TOO_DEEP)),
}


@pytest.mark.parametrize("name", sorted(BAD_FRAMES))
def test_bad_frames_get_the_same_error_on_both(blobs: Server, name: str) -> None:
    """A frame that is no request gets a ``SubscriptionError`` with null ids and a message
    naming the mistake, on either protocol; the connection stays usable."""
    text, data = BAD_FRAMES[name]
    errors: dict[str, dict[str, Any]] = {}

    for protocol in (JSON, MSGPACK):

        async def scenario(peer: Peer, protocol: str = protocol) -> None:
            await peer.expect("IdentityToken")
            if peer.binary:
                await peer.ws.send_bytes(data)
            else:
                await peer.ws.send_str(text)
            errors[protocol] = await peer.expect("SubscriptionError")
            request = await peer.send("OneOffQuery", query_string="SELECT COUNT(*) FROM blob")
            assert (await peer.expect("OneOffQueryResult"))["request_id"] == request

        run(blobs, protocol, scenario)
    for error in errors.values():
        assert error["request_id"] is None and error["query_id"] is None
    wording = {
        "not decodable": ("not valid JSON", "not valid msgpack"),
        "truncated": ("not valid JSON", "not valid msgpack"),
        "trailing": ("not valid JSON", "not valid msgpack"),
        "not a one-key map": ("a JSON object with one key", "a msgpack map with one key"),
        "unknown kind": ("unknown message kind 'Publish'",) * 2,
        "too deep": ("more than 64 deep",) * 2,
    }[name]
    assert wording[0] in errors[JSON]["error"], errors[JSON]
    assert wording[1] in errors[MSGPACK]["error"], errors[MSGPACK]


@pytest.mark.parametrize("protocol", [JSON, MSGPACK])
def test_bad_fields_get_the_reply_of_their_kind(blobs: Server, protocol: str) -> None:
    async def scenario(peer: Peer) -> None:
        await peer.expect("IdentityToken")
        await peer.send_raw({"CallReducer": {"request_id": 4}})
        failed = await peer.expect("ReducerResult")
        assert failed["request_id"] == 4 and failed["error_code"] == "protocol_error"
        assert "'reducer' is missing" in failed["error"]
        await peer.send_raw({"OneOffQuery": {"request_id": 5, "query_string": 1}})
        answer = await peer.expect("OneOffQueryResult")
        assert answer["error_code"] == "protocol_error" and "must be a string" in answer["error"]
        await peer.send_raw({"CallReducer": {"request_id": 6, "reducer": "put", "args": [1]}})
        wrong = await peer.expect("ReducerResult")
        assert wrong["request_id"] == 6 and wrong["status"] == "failed"

    run(blobs, protocol, scenario)


@pytest.mark.parametrize("protocol", [JSON, MSGPACK])
def test_frame_type_and_size_bounds(blobs: Server, protocol: str) -> None:
    async def scenario(peer: Peer) -> None:
        await peer.expect("IdentityToken")
        wrong = b"\x80" if not peer.binary else None
        if wrong is not None:
            await peer.ws.send_bytes(wrong)  # binary on JSON
        else:
            await peer.ws.send_str("{}")  # text on msgpack
        closing = await peer.ws.receive(timeout=15)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1003

    run(blobs, protocol, scenario)

    async def too_big(peer: Peer) -> None:
        await peer.expect("IdentityToken")
        # The server closes (1009) once a frame's header announces more than the limit,
        # without reading the rest; its socket, closed with unread bytes, resets the
        # connection. Whether the client's send finished by then depended on how much
        # of the 2 MiB the kernel took at once (less under load): a small send buffer
        # makes the send always overlap the close. The close frame arrives either way.
        peer.ws.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        with contextlib.suppress(ConnectionError):
            if peer.binary:
                await peer.ws.send_bytes(b"\x00" * (2 * 1024 * 1024))
            else:
                await peer.ws.send_str("x" * (2 * 1024 * 1024))
        closing = await peer.ws.receive(timeout=15)
        assert closing.type is aiohttp.WSMsgType.CLOSE and closing.data == 1009

    run(blobs, protocol, too_big)


def test_a_client_offering_both_gets_its_first_choice(blobs: Server) -> None:
    async def main() -> tuple[list[str | None], int, str]:
        chosen = []
        async with aiohttp.ClientSession() as http:
            url = f"{blobs.url}/v1/database/blobs/subscribe"
            for offer in ((MSGPACK, JSON), (JSON, MSGPACK), ("v2.bsatn", MSGPACK)):
                ws = await http.ws_connect(url, protocols=offer)
                chosen.append(ws.protocol)
                await ws.close()
            headers = {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Protocol": "v2.bsatn",
            }
            async with http.get(url, headers=headers) as reply:
                body = await reply.json()
                return chosen, reply.status, body["error"]["message"]

    chosen, status, message = asyncio.run(main())
    assert chosen == [MSGPACK, JSON, MSGPACK]
    assert status == 400 and JSON in message and MSGPACK in message
