"""Subscribers who opt in verify the stream as it arrives, with the public key alone.

A real server (signing = "checkpoint"), a real SDK client on each protocol
(v1.msgpack and v1.json), real reducer calls: every update the client receives must come
with its seq and leaf hash and be proven a leaf of a signed checkpoint, each checkpoint
consistent with the one before. Then the raw JSON messages are replayed into the
verifier with one thing changed at a time: each change is refused, naming the check.
"""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cosmictron.client import connect
from cosmictron.client.ledger import LedgerVerificationError, LedgerVerifier
from tests.ledger.test_tamper import MODULE
from tests.server.conftest import Server, start_server, stop_server


@pytest.fixture
def server(tmp_path: Path) -> Any:
    data = tmp_path / "server-data"
    server = start_server(
        data, env={"COSMICTRON_SIGNING": "checkpoint", "COSMICTRON_FSYNC_POLICY": "never"}
    )
    try:
        _, token = server.deployer()
        assert server.deploy("audited", MODULE, token).status == 201
        yield server, token
    finally:
        stop_server(server)


def public_key(server: Server) -> str:
    latest = server.request("GET", "/v1/database/audited/audit/checkpoint")
    assert latest.status == 200, latest
    return str(latest.body["keys"][0])


async def until(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("protocol", ["msgpack", "json"])
def test_an_sdk_client_verifies_a_live_stream_against_the_public_key(
    server: tuple[Server, str], protocol: str
) -> None:
    srv, token = server

    async def main() -> None:
        client = await connect(
            "audited",
            "SELECT * FROM item",
            server=srv.url,
            token=token,
            protocol=protocol,
            ledger_key=public_key(srv),
        )
        try:
            assert client.ledger is not None
            for batch in range(2):
                for i in range(15):
                    await client.call("add", f"{protocol} {batch} {i}")
                await client.wait_caught_up()
                # The idle log is checkpointed within checkpoint_interval_ms (1 s).
                target = client.tx_offset or 0
                await until(lambda t=target: client.ledger.size >= t and not client.ledger.pending)
            assert client.ledger_failure is None
            assert client.ledger.checkpoints >= 2  # the second proven consistent with the first
            assert len(client.ledger.verified_seqs) == 30
            assert client.ledger.verified_seqs == sorted(client.ledger.verified_seqs)
        finally:
            await client.close()

    asyncio.run(main())


def test_a_wrong_key_fails_the_stream(server: tuple[Server, str]) -> None:
    srv, token = server
    renamed = "cosmictron/0000+" + public_key(srv).split("+", 1)[1]
    with pytest.raises(LedgerVerificationError, match="bad_key"):
        LedgerVerifier.for_key(renamed)  # the key id names the key: a renamed one is refused

    async def main() -> None:
        from cosmictron.ledger.signing import SigningKey

        forger = SigningKey.generate("cosmictron/forger").verifier.to_text()
        client = await connect(
            "audited", "SELECT * FROM item", server=srv.url, token=token, ledger_key=forger
        )
        errors: list[Exception] = []
        client.on_error(errors.append)
        try:
            await client.call("add", "checked by the wrong key")
            await until(lambda: client.ledger_failure is not None)
            assert client.ledger_failure.reason == "unsigned"
            assert errors and errors[0] is client.ledger_failure
        finally:
            await client.close()

    asyncio.run(main())


def test_each_changed_message_is_refused(server: tuple[Server, str]) -> None:
    """Raw v1.json frames: the opt-in fields as documented, then one change at a time."""
    srv, token = server
    key = public_key(srv)

    async def collect() -> list[tuple[str, dict[str, Any]]]:
        url = srv.url.replace("http", "ws") + "/v1/database/audited/subscribe"
        async with aiohttp.ClientSession() as http:
            ws = await http.ws_connect(
                url, protocols=("v1.json.cosmictron",), headers={"Authorization": f"Bearer {token}"}
            )
            await ws.receive()  # IdentityToken
            subscribe = {"request_id": 1, "query_id": 1, "query_strings": ["SELECT * FROM item"]}
            await ws.send_str(json.dumps({"Subscribe": {**subscribe, "ledger": True}}))
            messages: list[tuple[str, dict[str, Any]]] = []
            for round_ in range(2):
                for i in range(4):
                    call = {"request_id": 10 + i, "reducer": "add", "args": [f"raw {round_} {i}"]}
                    await ws.send_str(json.dumps({"CallReducer": call}))
                checkpoints = 0
                while checkpoints < 1:
                    ((kind, body),) = json.loads((await ws.receive(timeout=20)).data).items()
                    messages.append((kind, body))
                    # Not a repeat (an update that arrived after its checkpoint: same size).
                    checkpoints += kind == "LedgerCheckpoint" and body["old_size"] != body["size"]
            await ws.close()
            return messages

    messages = asyncio.run(collect())
    stream = [(k, b) for k, b in messages if k in ("TransactionUpdate", "LedgerCheckpoint")]
    updates = [b for k, b in stream if k == "TransactionUpdate"]
    assert updates and all(set(b["ledger"]) == {"seq", "leaf_hash"} for b in updates)
    assert all(b["ledger"]["seq"] == b["tx_offset"] for b in updates)

    def replay(changed: list[tuple[str, dict[str, Any]]]) -> LedgerVerifier:
        verifier = LedgerVerifier.for_key(key)
        for kind, body in changed:
            (verifier.on_update if kind == "TransactionUpdate" else verifier.on_checkpoint)(body)
        return verifier

    fresh = [
        i
        for i, (k, b) in enumerate(stream)
        if k == "LedgerCheckpoint" and b["old_size"] != b["size"]
    ]
    assert len(fresh) == 2
    assert replay(stream).checkpoints >= 2  # and the repeats, if any

    def refused(position: int, change: Any, reason: str) -> None:
        changed = copy.deepcopy(stream)
        change(changed[position][1])
        with pytest.raises(LedgerVerificationError) as caught:
            replay(changed)
        assert caught.value.reason == reason, caught.value

    first_update = next(i for i, (k, _) in enumerate(stream) if k == "TransactionUpdate")
    second = fresh[1]
    assert stream[second][1]["consistency"] and stream[second][1]["inclusion"]

    def flip(text: str) -> str:
        return ("0" if text[0] != "0" else "1") + text[1:]

    def flip_leaf(body: dict[str, Any]) -> None:
        body["ledger"]["leaf_hash"] = flip(body["ledger"]["leaf_hash"])

    def flip_consistency(body: dict[str, Any]) -> None:
        body["consistency"][0] = flip(body["consistency"][0])

    def lengthen_inclusion(body: dict[str, Any]) -> None:
        body["inclusion"][0]["proof"].append("00" * 32)

    def change_note(body: dict[str, Any]) -> None:
        body["note"] = body["note"].replace("\n\n", "\nextra\n\n", 1)

    refused(first_update, flip_leaf, "not_included")
    refused(first_update, lambda body: body.pop("ledger"), "missing_leaf")
    refused(second, change_note, "bad_signature")
    refused(second, flip_consistency, "inconsistent")
    refused(second, lambda body: body.update(consistency=None), "no_consistency")
    refused(second, lengthen_inclusion, "not_included")
