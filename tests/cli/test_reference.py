"""docs/reference/cli.md is the CLI's --help output; this fails when they drift apart.

Regenerate with: .venv/bin/python tests/cli/test_reference.py > docs/reference/cli.md
"""

from pathlib import Path

import click
from click.testing import CliRunner

from cosmictron.cli.main import cli

REFERENCE = Path(__file__).parent.parent.parent / "docs" / "reference" / "cli.md"


def render() -> str:
    runner = CliRunner()
    parts = [
        "# CLI reference\n",
        "Generated from `cosmictron-cli --help`; `tests/cli/test_reference.py` fails when the",
        "two differ. Every error is one line on stderr and a non-zero exit status: 1 the",
        "request failed, 2 usage, 3 cannot connect, 4 a bug in the CLI, 130 interrupted",
        "(see [Using the CLI](../guide/cli.md#exit-codes)).\n",
    ]
    commands = [[], *[path for _, path in every_command()]]
    for command in commands:
        title = " ".join(["cosmictron-cli", *command])
        help_text = runner.invoke(
            cli, [*command, "--help"], prog_name="cosmictron-cli", terminal_width=80
        ).output
        parts += [f"## `{title}`\n", "```text", help_text.rstrip(), "```\n"]
    return "\n".join(parts)


def every_command() -> list[tuple[click.Command, list[str]]]:
    """Every command and subcommand (``identity new``), with its path of names."""
    found = []
    for name, command in commands_of(cli):
        found.append((command, [name]))
        if isinstance(command, click.Group):
            found += [(sub, [name, sub_name]) for sub_name, sub in commands_of(command)]
    return sorted(found, key=lambda pair: pair[1])


def commands_of(group: click.Group) -> list[tuple[str, click.Command]]:
    """A group's commands as click finds them (``cli`` imports each on first lookup)."""
    context = click.Context(group)
    found = [(name, group.get_command(context, name)) for name in group.list_commands(context)]
    return [(name, command) for name, command in found if command is not None]


def test_reference_matches_help():
    assert REFERENCE.read_text() == render(), "regenerate docs/reference/cli.md (see docstring)"


def test_every_command_has_help_with_an_example():
    for command, path in every_command():
        assert command.help and "Example:" in command.help, path


if __name__ == "__main__":
    print(render(), end="")
