"""docs/reference/cli.md is the CLI's --help output; this fails when they drift apart.

Regenerate with: .venv/bin/python tests/cli/test_reference.py > docs/reference/cli.md
"""

from pathlib import Path

from click.testing import CliRunner

from cosmictron.cli.main import cli

REFERENCE = Path(__file__).parent.parent.parent / "docs" / "reference" / "cli.md"


def render() -> str:
    runner = CliRunner()
    parts = [
        "# CLI reference\n",
        "Generated from `cosmictron-cli --help`; `tests/cli/test_reference.py` fails when the",
        "two differ. Every command exits with status 1 and prints one line on an error.\n",
    ]
    commands = [[], *[[name] for name in sorted(cli.commands)]]
    for command in commands:
        title = " ".join(["cosmictron-cli", *command])
        help_text = runner.invoke(
            cli, [*command, "--help"], prog_name="cosmictron-cli", terminal_width=80
        ).output
        parts += [f"## `{title}`\n", "```text", help_text.rstrip(), "```\n"]
    return "\n".join(parts)


def test_reference_matches_help():
    assert REFERENCE.read_text() == render(), "regenerate docs/reference/cli.md (see docstring)"


def test_every_command_has_help_with_an_example():
    for name, command in cli.commands.items():
        assert command.help and "Example:" in command.help, name


if __name__ == "__main__":
    print(render(), end="")
