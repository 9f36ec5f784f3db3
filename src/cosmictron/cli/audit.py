"""``export-audit``: write a self-contained audit bundle of a database's ledger.

From a data directory on this machine, the bundle is made from its files directly;
from a database on a server (owner only), from a verified backup of it (its log) and
``GET /v1/database/{name}/audit/anchors`` (the TSA trust roots the server is configured
with). The bundle's layout and checks are ``ledger/bundle.py``'s; ``cosmictron-cli
verify BUNDLE`` checks it offline, and its tokens verify with ``openssl ts -verify``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from cosmictron.cli.client import ServerError, quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.verify import is_data_dir
from cosmictron.durability.archive import extract_archive
from cosmictron.durability.config import DurabilityConfig
from cosmictron.errors import ConfigError, InvalidRequest
from cosmictron.ledger.bundle import ExportSummary, export_bundle


@click.command("export-audit")
@click.argument("target")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--tsa-root",
    "tsa_root",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The TSA trust root(s) to put in the bundle (PEM); default: the database's own.",
)
@server_command
def export_audit(context: CommandContext, target: str, out: Path, tsa_root: Path | None) -> None:
    """Write an audit bundle of a data directory or of DATABASE on the server to OUT.

    OUT (a new directory) holds the log, every signed checkpoint, every RFC 3161 token
    (.tsr), the public keys, the TSA certificates and a README for the auditor, who
    checks it offline with `cosmictron-cli verify OUT` or `openssl ts -verify`.
    Exporting from a server needs the database's owner.

    Example: cosmictron-cli export-audit quickstart ./audit-bundle
    """
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidRequest(f"{str(out)!r} exists and is not an empty directory")
    roots = tsa_root.read_text(encoding="ascii") if tsa_root is not None else None
    if is_data_dir(target):
        config = _configured(target)
        summary = export_bundle(
            target,
            out,
            roots or _configured_roots_pem(config),
            config.log_archive_dir if config is not None else None,
        )
    else:
        summary = _from_server(context, target, out, roots)
    _report(context, summary)


def _configured(data_dir: str) -> DurabilityConfig | None:
    """The data directory's settings (its config.toml and the environment), if valid."""
    config_file = os.path.join(data_dir, "config.toml")
    try:
        return DurabilityConfig.resolve(
            environ=os.environ, config_file=config_file if os.path.exists(config_file) else None
        )
    except ConfigError:
        return None


def _configured_roots_pem(config: DurabilityConfig | None) -> str | None:
    if config is None or config.anchor_trust_roots is None:
        return None
    return Path(config.anchor_trust_roots).read_text(encoding="ascii")


def _from_server(
    context: CommandContext, database: str, out: Path, roots: str | None
) -> ExportSummary:
    try:
        anchors: dict[str, Any] = context.client.request(
            "GET", f"/v1/database/{quote(database)}/audit/anchors"
        )
    except ServerError as exc:
        if exc.code != "ledger_off":
            raise
        anchors = {}  # a hash chain only: the bundle still holds (and verifies) the log
    with tempfile.TemporaryDirectory(prefix="cosmictron-audit-") as staging:
        archive = Path(staging) / "backup.tar"
        with (
            context.client.open_download(f"/v1/database/{quote(database)}/backup") as (
                _,
                chunks,
            ),
            open(archive, "wb") as file,
        ):
            for chunk in chunks:
                file.write(chunk)
        data_dir = Path(staging) / "data"
        with open(archive, "rb") as source:
            extract_archive(source, str(data_dir))
        return export_bundle(data_dir, out, roots or anchors.get("trust_roots"))


def _report(context: CommandContext, summary: ExportSummary) -> None:
    def human(console: object) -> None:
        click.echo(
            f"Audit bundle written to {summary.path}: {summary.records} records, "
            f"{summary.checkpoints} checkpoints, {summary.anchors} anchors, "
            f"{summary.keys} public keys"
            + ("" if summary.trust_roots else " (no TSA trust root: none is configured)")
        )
        if summary.archived_through:
            click.echo(
                f"Records 1..{summary.archived_through} were archived and are not in the "
                "bundle (their segments are not in the archive directory); it verifies "
                "from ledger/archived.json, and its README says so"
            )
        click.echo(f"Check it with: cosmictron-cli verify {summary.path}")

    context.output.document(summary.to_document(), human)
