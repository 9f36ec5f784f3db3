"""``generate``: typed client code from a database's schema (the code is ``client/codegen.py``)."""

from __future__ import annotations

from pathlib import Path

import click

from cosmictron.cli import nametypes
from cosmictron.cli.client import quote
from cosmictron.cli.context import CommandContext, server_command
from cosmictron.cli.files import force_option, is_stdio, refuse_overwrite
from cosmictron.client.codegen import generate_python
from cosmictron.client.codegen_ts import generate_typescript
from cosmictron.client.schema import DatabaseSchema


@click.command("generate")
@click.argument("database", type=nametypes.DATABASE)
@click.option(
    "--lang",
    type=click.Choice(["python", "typescript"]),
    default="python",
    show_default=True,
    help="Language of the generated code.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path, allow_dash=True),
    default=None,
    help="File to write; - or nothing for standard output.",
)
@force_option
@server_command
def generate(
    context: CommandContext, database: str, lang: str, out: Path | None, force: bool
) -> None:
    """Write typed row classes and reducer stubs for DATABASE's schema.

    Python: each table becomes a dataclass (pass ROW_TYPES to the SDK's connect so its
    cache holds them); each reducer becomes an async function and a blocking `_sync` one
    that call it through a client with typed arguments. TypeScript: each table becomes an
    interface, and `connect` gives a client of the npm package `cosmictron` whose tables
    and reducer calls are typed.

    Example: cosmictron-cli generate --lang python chat --out chat_client.py
    """
    if out is not None:
        refuse_overwrite(out, force)
    document = context.client.request("GET", f"/v1/database/{quote(database)}/schema")
    generator = generate_typescript if lang == "typescript" else generate_python
    source = generator(DatabaseSchema.from_json(document), context.url)
    to_stdout = out is None or is_stdio(out)
    if to_stdout and not context.output.json_mode:
        click.echo(source, nl=False)
        return
    summary: dict[str, object] = {"database": database, "lang": lang}
    if to_stdout:  # --json: the code travels inside the document
        summary["source"] = source
    else:
        assert out is not None
        out.write_text(source)
        summary.update(out=str(out), lines=len(source.splitlines()))
    context.output.document(
        summary,
        lambda _: context.output.note(f"Wrote {out} ({summary['lines']} lines) for {lang}."),
    )
