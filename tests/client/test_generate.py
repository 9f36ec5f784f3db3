"""``cosmictron-cli generate --lang python``: the file imports, its rows fill the cache, its
stubs call the reducers with typed arguments and return typed values."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import sys
import typing
from pathlib import Path
from types import ModuleType

from cosmictron.client import connect, connect_sync
from cosmictron.values import Identity, Timestamp
from tests.client.conftest import QUERIES, Server
from tests.server.conftest import CLI


def generated(app: Server, out: Path) -> ModuleType:
    command = [CLI, "generate", "--lang", "python", "shop", "--out", str(out), "--server", app.url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    spec = importlib.util.spec_from_file_location("shop_client", out)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses and get_type_hints look the module up by name, as after an import.
    sys.modules["shop_client"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_rows_and_stubs(app: Server, tmp_path: Path) -> None:
    shop = generated(app, tmp_path / "shop_client.py")
    hints = typing.get_type_hints(shop.Item)
    assert hints["id"] is int and hints["owner"] is Identity and hints["at"] is Timestamp
    assert hints["note"] == str | None and hints["blob"] is bytes
    assert set(shop.ROW_TYPES) == {"item", "log", "seat"}
    assert typing.get_type_hints(shop.put)["return"] is int

    async def scenario() -> None:
        async with await connect(
            "shop", *QUERIES, server=app.url, row_types=shop.ROW_TYPES
        ) as client:
            assert await shop.put(client, 1, "one", 3) == 3
            assert await shop.log(client, "a", 1) is None
            item = client.table("item").find(1)
            assert isinstance(item, shop.Item) and item.owner == client.identity
            assert item == shop.Item(1, "one", 3, item.owner, item.at, b"\x03", None)
            assert list(client.table("log").iter()) == [shop.Log("a", 1)]
            assert isinstance(await shop.stamp(client), Timestamp)

    asyncio.run(scenario())
    with connect_sync("shop", "SELECT * FROM seat", server=app.url) as sync_client:
        shop.sit_sync(sync_client, "red", 2, "ann")
        assert sync_client.table("seat").find("red", 2).who == "ann"


def test_generate_to_standard_output(app: Server) -> None:
    command = [CLI, "generate", "shop", "--server", app.url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "class Seat:" in result.stdout
    missing = subprocess.run(
        [*command[:2], "nowhere", *command[3:]], capture_output=True, text=True
    )
    assert missing.returncode == 1 and "nowhere" in missing.stderr


def test_generate_typescript_types_every_column_as_the_sdk_decodes_it(app: Server) -> None:
    """The TypeScript bindings (their type-check by ``tsc`` and their use against a server
    are in sdk/typescript/test/generate.test.ts, run by scripts/test)."""
    command = [CLI, "generate", "--lang", "typescript", "shop", "--server", app.url]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    source = result.stdout
    assert 'import { connect as connectTo } from "cosmictron";' in source
    assert "export interface Item {\n  id: bigint;" in source  # an i64 is a bigint
    assert "  blob: Uint8Array;\n  note: string | null;\n}" in source
    assert (
        "  item: Item;" in source and "export type DbClient = Client<Tables, Reducers>;" in source
    )
    assert "  put: { args: [id: bigint, name: string, qty: bigint]; returns: bigint };" in source
