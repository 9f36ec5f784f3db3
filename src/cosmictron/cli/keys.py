"""``keys list|rotate|revoke <db>``: the ledger's signing keys, for the owner or the operator.

Each is one request to ``/v1/database/{name}/audit/keys`` (``server/audit_keys.py``).
Rotating writes one record signed by the old and the new key, after which only the new
key signs; revoking ends the range of a key that is no longer the one signing (one the
database was moved off with a new ``signing_key_path``, say). Both are records in the
log, so ``verify`` and auditors see them (docs/guide/ledger.md, "Keys").
"""

from __future__ import annotations

import click
from rich.console import Console

from cosmictron.cli import nametypes
from cosmictron.cli.client import quote
from cosmictron.cli.context import CommandContext, server_command


@click.group("keys")
def keys() -> None:
    """List, rotate and revoke a database's ledger signing keys (owner or operator).

    Example: cosmictron-cli keys list quickstart
    """


def _range(key: dict[str, object]) -> str:
    last = key["last"]
    return f"{key['first']}.." + ("" if last is None else str(last))


@keys.command("list")
@click.argument("database", type=nametypes.DATABASE)
@server_command
def list_keys(context: CommandContext, database: str) -> None:
    """List DATABASE's signing keys: fingerprint, the records each may sign, and status.

    Example: cosmictron-cli keys list quickstart
    """
    reply = context.client.request("GET", f"/v1/database/{quote(database)}/audit/keys")

    def human(console: Console) -> None:
        if not reply["keys"]:
            console.print(f"Database {database} keeps no ledger (signing = {reply['signing']}).")
            return
        for key in reply["keys"]:
            status = "current" if key["current"] else "active" if key["active"] else "retired"
            console.print(
                f"{key['fingerprint'][:16]}  seq {_range(key):<14} {status:<8} {key['key']}",
                highlight=False,
                soft_wrap=True,
            )

    context.output.document(reply, human)


@keys.command("rotate")
@click.argument("database", type=nametypes.DATABASE)
@server_command
def rotate_key(context: CommandContext, database: str) -> None:
    """Rotate DATABASE's signing key to a fresh one and print the new public key.

    One record, signed by the old and the new key, hands over; give the new public key
    to your auditors.

    Example: cosmictron-cli keys rotate quickstart
    """
    reply = context.client.request("POST", f"/v1/database/{quote(database)}/audit/keys/rotate")

    def human(console: Console) -> None:
        console.print(
            f"Rotated the signing key of {database} at seq {reply['seq']}; new key {reply['key']}",
            highlight=False,
            soft_wrap=True,
        )

    context.output.document(reply, human)


@keys.command("revoke")
@click.argument("database", type=nametypes.DATABASE)
@click.argument("fingerprint")
@server_command
def revoke_key(context: CommandContext, database: str, fingerprint: str) -> None:
    """Revoke the key with FINGERPRINT (hex, at least 8 digits, as `keys list` shows).

    The key signs nothing from the revocation record on. The key the database signs
    with now cannot be revoked: rotate it out instead.

    Example: cosmictron-cli keys revoke quickstart 3f9c2a17
    """
    path = f"/v1/database/{quote(database)}/audit/keys/{quote(fingerprint)}"
    reply = context.client.request("DELETE", path)

    def human(console: Console) -> None:
        console.print(
            f"Revoked key {reply['fingerprint'][:16]} of {database} at seq {reply['seq']}.",
            highlight=False,
        )

    context.output.document(reply, human)
