"""``verify``: check a database's whole history with the ledger's verifier.

``cosmictron-cli verify DIR`` reads a data directory on this machine
(``cosmictron.ledger.verify``); ``cosmictron-cli verify DATABASE`` asks the server to run
the same check on its copy (``GET /v1/database/{name}/audit/verify``, owner only). Either
way the output is one line per problem, ``<code> at seq <n>: <detail>``, and the exit
status is 1 when anything is wrong, so scripts and cron jobs can rely on it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from cosmictron.cli.client import quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.ledger.signing import VerifierKey
from cosmictron.ledger.verifier import verify

EXIT_NOT_OK = 1


def is_data_dir(target: str) -> bool:
    """Whether ``target`` names a local data directory (it has a ``log/``)."""
    return os.path.isdir(os.path.join(target, "log"))


def _report(context: CommandContext, document: dict[str, Any], lines: list[str]) -> None:
    def human(console: object) -> None:
        for line in lines:
            click.echo(line)

    context.output.document(document, human)
    if not document["ok"]:
        sys.exit(EXIT_NOT_OK)


def _lines(document: dict[str, Any]) -> list[str]:
    if document["ok"]:
        return [
            f"ok: {document['records']} records, {document['checkpoints']} checkpoints verified"
        ]
    lines = [f"{p['code']} at seq {p['seq']}: {p['detail']}" for p in document["problems"]]
    if document.get("problems_dropped"):
        lines.append(f"... and {document['problems_dropped']} more problems")
    return lines


@click.command("verify")
@click.argument("target")
@click.option(
    "--key",
    "keys",
    multiple=True,
    help="A public key to trust (C2SP verifier key text, or a file holding one); repeatable.",
)
@click.option(
    "--checkpoint",
    "checkpoints",
    multiple=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="A signed checkpoint saved earlier; the log must contain it (rollback check).",
)
@server_command
def verify_command(
    context: CommandContext,
    target: str,
    keys: tuple[str, ...],
    checkpoints: tuple[Path, ...],
) -> None:
    """Verify the whole history of a data directory or of DATABASE on the server.

    TARGET is a data directory on this machine (it holds log/) or a database name.
    Checks the hash chain, the Merkle tree against every signed checkpoint, every
    signature against its key's range, and that the log is not shorter than any
    checkpoint seen. Prints one line per problem (code, first bad sequence number,
    detail) and exits 1 when anything is wrong.

    Example: cosmictron-cli verify ./data/databases/quickstart
    """
    if is_data_dir(target):
        trusted = [_verifier_key(k) for k in keys] if keys else None
        notes = [p.read_text(encoding="utf-8") for p in checkpoints]
        result = verify(target, keys=trusted, checkpoints=notes)
        _report(context, result.to_document(), result.lines())
        return
    if keys or checkpoints:
        raise click.UsageError("--key and --checkpoint apply to a data directory only")
    document = context.client.request("GET", f"/v1/database/{quote(target)}/audit/verify")
    _report(context, document, _lines(document))


def _verifier_key(text: str) -> VerifierKey:
    if os.path.isfile(text):
        text = Path(text).read_text(encoding="utf-8")
    return VerifierKey.from_text(text)
