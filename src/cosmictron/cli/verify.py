"""``verify``: check a database's whole history with the ledger's verifier.

``cosmictron-cli verify DIR`` reads a data directory on this machine
(``cosmictron.ledger.verify``); ``cosmictron-cli verify BUNDLE`` checks an audit bundle
that ``export-audit`` wrote (``ledger/bundle.py``), offline; ``cosmictron-cli verify
DATABASE`` asks the server to run the same check on its copy
(``GET /v1/database/{name}/audit/verify``, owner only). Either way the output is one
line per problem, ``<code> at seq <n>: <detail>``, and the exit status is 1 when
anything is wrong, so scripts and cron jobs can rely on it.

RFC 3161 anchors are checked against ``--tsa-root`` (a PEM file of the TSA's CA
certificates); without it, a data directory's own configuration
(``anchor_trust_roots`` in its config.toml or ``COSMICTRON_ANCHOR_TRUST_ROOTS``), and a
bundle's ``tsa/trust-roots.pem``. With no root at all, every token is still checked but
its chain is not, and the ``ok`` line says so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from cosmictron.cli.client import quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.durability.anchorer import load_trust_roots
from cosmictron.durability.config import DurabilityConfig
from cosmictron.errors import ConfigError
from cosmictron.ledger.bundle import is_bundle, verify_bundle
from cosmictron.ledger.signing import VerifierKey
from cosmictron.ledger.verifier import ok_line, verify

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
        return [ok_line(document)]
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
@click.option(
    "--tsa-root",
    "tsa_root",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The TSA trust root(s), PEM: every RFC 3161 anchor must chain to one.",
)
@click.option(
    "--bundle",
    "bundle",
    is_flag=True,
    help="TARGET must be an audit bundle (export-audit); it is detected without this.",
)
@server_command
def verify_command(
    context: CommandContext,
    target: str,
    keys: tuple[str, ...],
    checkpoints: tuple[Path, ...],
    tsa_root: Path | None,
    bundle: bool,
) -> None:
    """Verify the whole history of a data directory or of DATABASE on the server.

    TARGET is a data directory on this machine (it holds log/), an audit bundle
    (export-audit), or a database name.
    Checks the hash chain, the Merkle tree against every signed checkpoint, every
    signature against its key's range, and that the log is not shorter than any
    checkpoint seen; every RFC 3161 anchor token (against --tsa-root), and that the log
    is not shorter than any anchor. Prints one line per problem (code, first bad
    sequence number, detail) and exits 1 when anything is wrong.

    Example: cosmictron-cli verify ./data/databases/quickstart
    """
    trusted = [_verifier_key(k) for k in keys] if keys else None
    roots = load_trust_roots(str(tsa_root)) if tsa_root is not None else None
    if is_bundle(target):
        result = verify_bundle(target, keys=trusted, tsa_roots=roots)
        _report(context, result.to_document(), result.lines())
        return
    if bundle:
        raise click.UsageError(f"{target!r} is not an audit bundle (no bundle.json)")
    if is_data_dir(target):
        notes = [p.read_text(encoding="utf-8") for p in checkpoints]
        policy = None
        if roots is None:
            roots, policy = _configured_roots(target)
        result = verify(target, keys=trusted, checkpoints=notes, tsa_roots=roots, tsa_policy=policy)
        _report(context, result.to_document(), result.lines())
        return
    if keys or checkpoints or tsa_root:
        raise click.UsageError(
            "--key, --checkpoint and --tsa-root apply to a data directory or a bundle only"
        )
    document = context.client.request("GET", f"/v1/database/{quote(target)}/audit/verify")
    _report(context, document, _lines(document))


def _configured_roots(data_dir: str) -> tuple[list[Any] | None, str | None]:
    """The data directory's own anchoring trust roots and policy, if it names them."""
    config_file = os.path.join(data_dir, "config.toml")
    try:
        config = DurabilityConfig.resolve(
            environ=os.environ, config_file=config_file if os.path.exists(config_file) else None
        )
    except ConfigError:
        return None, None
    if config.anchor_trust_roots is None:
        return None, None
    return load_trust_roots(config.anchor_trust_roots), config.anchor_policy


def _verifier_key(text: str) -> VerifierKey:
    if os.path.isfile(text):
        text = Path(text).read_text(encoding="utf-8")
    return VerifierKey.from_text(text)
