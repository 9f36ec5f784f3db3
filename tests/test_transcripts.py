"""The documentation's CLI transcripts, run through the real CLI against a real server.

How a transcript is written. In README.md and every page under docs/, a fenced block
whose info string is ``console`` is a terminal session, and it is run:

```` ```console ````
``$ cosmictron-cli call chat send lobby "hello"``  (a command: the line starts with ``$ ``)
``return_value: 1``                                (its output, stdout and stderr as printed)
``[exit 1]``                                       (last output line: the exit status, when not 0)
```` ``` ````

- A command line ending in ``\\`` continues on the next line, as in a shell.
- A command ending in `` &`` runs in the background: the next command starts once it has
  printed its first line (a ``subscribe`` has subscribed by then). Its output is shown
  under it and compared when it ends: at ``$ wait`` (which waits for every background
  command, as the shell's does), or at the end of the page, where one still running is
  given up to 10 s to print what the page shows and is then stopped with Ctrl-C
  (SIGINT; its exit status is then not compared).
- ``cosmictron-cli start`` without ``--listen``, or with ``--listen 127.0.0.1:3000``,
  listens on a free port (the page reads as if it were 3000): the commands after it talk
  to that server (``$COSMICTRON_SERVER``), and ``localhost:3000`` / ``127.0.0.1:3000`` in
  them name it.
- A command that only sets a variable from a command's output, ``NAME=$(…)``, sets it
  for the commands after it, as a shell would (each command runs in a shell of its own,
  so this is how a page carries an identity or a token from one command to the next).
  It prints what the inner command wrote to stderr.
- ```` ```console copy=examples/quickstart/app.py ```` copies that repository file into
  the page's directory before the block runs (a page that says "``app.py`` is the
  quickstart module").
- ```` ```console link=scripts link=guest ```` links those repository directories into
  the page's directory before the block runs (a page whose commands run from a checkout,
  such as ``scripts/build-guests`` and the ``.wasm`` it writes under ``guest/``).
- ```` ```console default-durability ```` runs its commands without the development
  profile the session otherwise sets (below): for a page about the durability settings.
- Blank lines between a command's output and the next command are layout, not output.
- Any other block (```` ```sh ````, ```` ```text ````) is shown, not run: use those for
  what cannot run in a test (installing, a foreground ``start``).

Each page runs in a fresh temporary directory holding its ``python file=NAME`` blocks
(``tests/test_docs.py``), with its own CLI settings (``COSMICTRON_CONFIG_DIR``), the
``development`` durability profile, 100 columns and no colours, and the test's
interpreter first on ``PATH`` (``python`` and ``cosmictron-cli`` are the ones under
test). Output is compared after ``doc_blocks.normalise``: the server's port shown as
3000, the temporary directory as ``.``, trailing spaces cut; ``…`` in the page matches
any text (``tests/doc_blocks.py``). A difference fails with a diff and the command's page
line; ``COSMICTRON_UPDATE_DOCS=1`` writes the real output into the page.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.doc_blocks import (
    EXIT,
    HOW_TO_UPDATE,
    ROOT,
    UPDATE,
    PageEdits,
    blocks,
    difference,
    lines_match,
    normalise,
    pages,
    updated,
)
from tests.test_docs import marked_blocks

COMMAND_TIMEOUT_S = 60
GRACE_S = 10.0
FIRST_LINE_TIMEOUT_S = 30
SHOWN_PORT = "3000"
ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)=\$\((?P<command>.*)\)", re.S)

TRANSCRIPT_PAGES = [
    page for page in pages() if re.search(r"^```console\b", (ROOT / page).read_text(), re.M)
]


@dataclass
class Command:
    """One ``$`` command of a transcript and the output the page shows for it."""

    line: int  # page line of the ``$``
    text: str
    expected: list[str]
    exit_code: int
    background: bool
    span: tuple[int, int]  # where its output lies in the page (for COSMICTRON_UPDATE_DOCS)
    copies: list[str] = field(default_factory=list)  # repository files to copy in first
    default_durability: bool = False  # run without the session's durability profile
    links: list[str] = field(default_factory=list)  # repository directories to link in first


def commands(text: str) -> list[Command]:
    """Every command of every ``console`` block of a page, in page order."""
    found: list[Command] = []
    for block in blocks(text):
        if block.words[:1] != ["console"]:
            continue
        offset = block.start
        lines = block.body.splitlines(keepends=True)
        index = 0
        while index < len(lines):
            line = lines[index]
            if not line.startswith("$ "):
                raise AssertionError(
                    f"line {block.line + index}: a console block starts with a `$ ` command"
                )
            number = block.line + index
            command = line[2:].rstrip("\n")
            offset += len(line)
            index += 1
            while command.endswith("\\") and index < len(lines):
                command += "\n" + lines[index].rstrip("\n")
                offset += len(lines[index])
                index += 1
            start = offset
            output: list[str] = []
            end = offset  # after the last output line that is not blank
            while index < len(lines) and not lines[index].startswith("$ "):
                output.append(lines[index].rstrip("\n"))
                offset += len(lines[index])
                if output[-1].strip():
                    end = offset
                index += 1
            while output and not output[-1].strip():
                output.pop()  # blank lines between commands are layout
            exit_code = 0
            if output and (status := EXIT.match(output[-1])):
                exit_code = int(status["code"])
                output.pop()
            background = command.rstrip().endswith(" &")
            if background:
                command = command.rstrip()[:-2].rstrip()
            copies = [w.removeprefix("copy=") for w in block.words[1:] if w.startswith("copy=")]
            links = [w.removeprefix("link=") for w in block.words[1:] if w.startswith("link=")]
            found.append(
                Command(
                    number,
                    command,
                    output,
                    exit_code,
                    background,
                    (start, end),
                    copies,
                    "default-durability" in block.words,
                    links,
                )
            )
            block.words = [  # copied or linked once
                w for w in block.words if not w.startswith(("copy=", "link="))
            ]
    return found


class Background:
    """A command running in the background; its output is read on a thread."""

    def __init__(self, command: Command, process: subprocess.Popen[str]) -> None:
        self.command = command
        self.process = process
        self.lines: list[str] = []
        self.first_line = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self.first_line.set()
        self.first_line.set()

    def finish(self, interrupt: bool, shown: Callable[[str], bool] = lambda _: True) -> str:
        """Wait for the command to end; with ``interrupt``, end it with Ctrl-C once its
        output so far is what ``shown`` accepts (or after ``GRACE_S``)."""
        if interrupt:
            deadline = time.monotonic() + GRACE_S
            while self.process.poll() is None and time.monotonic() < deadline:
                if shown("".join(self.lines)):
                    break
                time.sleep(0.05)
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGINT)
        try:
            self.process.wait(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.reader.join(timeout=COMMAND_TIMEOUT_S)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return "".join(self.lines)


class Session:
    """One page's terminal: its directory, environment, server and background commands."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server_address: str | None = None  # host:port of the server a page started
        environment = {k: v for k, v in os.environ.items() if not k.startswith("COSMICTRON_")}
        inherited = [
            os.path.abspath(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p
        ]
        environment.update(
            PATH=os.pathsep.join([str(Path(sys.executable).parent), environment.get("PATH", "")]),
            PYTHONPATH=os.pathsep.join(inherited),
            PYTHONUNBUFFERED="1",
            COSMICTRON_CONFIG_DIR=str(directory / "config"),
            COSMICTRON_PERFORMANCE_PROFILE="development",
            COLUMNS="100",
            NO_COLOR="1",
            TERM="dumb",
        )
        self.environment = environment
        self.background: list[Background] = []

    def rewrite(self, command: str) -> str:
        if re.search(r"\bcosmictron-cli start\b", command):
            command = re.sub(
                rf"--listen (127\.0\.0\.1|localhost):{SHOWN_PORT}\b",
                "--listen 127.0.0.1:0",
                command,
            )
            if "--listen" not in command:
                command += " --listen 127.0.0.1:0"
        if self.server_address is not None:
            for shown in (f"localhost:{SHOWN_PORT}", f"127.0.0.1:{SHOWN_PORT}"):
                command = command.replace(shown, self.server_address)
        return command

    def replacements(self) -> list[tuple[str, str]]:
        found = [(str(self.directory), ".")]
        if self.server_address is not None:
            host = self.server_address.rsplit(":", 1)[0]
            found.append((self.server_address, f"{host}:{SHOWN_PORT}"))
        return found

    def run(self, command: Command) -> tuple[str, int] | None:
        """Run a foreground command (its output and status), or start a background one."""
        text = self.rewrite(command.text)
        environment = self.environment
        if command.default_durability:
            environment = {**environment}
            del environment["COSMICTRON_PERFORMANCE_PROFILE"]
        if command.background:
            process = subprocess.Popen(
                ["bash", "-c", text],
                cwd=self.directory,
                env=environment,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            running = Background(command, process)
            self.background.append(running)
            assert running.first_line.wait(FIRST_LINE_TIMEOUT_S), f"{text!r} printed nothing"
            listening = re.search(r"listening on http://(\S+)", "".join(running.lines[:1]))
            if listening and "cosmictron-cli start" in text:
                self.server_address = listening[1]
                self.environment["COSMICTRON_SERVER"] = f"http://{listening[1]}"
            return None
        if assignment := ASSIGNMENT.fullmatch(text.strip()):
            done = subprocess.run(
                ["bash", "-c", assignment["command"]],
                cwd=self.directory,
                env=environment,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT_S,
            )
            self.environment[assignment["name"]] = done.stdout.rstrip("\n")
            return done.stderr, done.returncode
        done = subprocess.run(
            ["bash", "-c", text],
            cwd=self.directory,
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
        )
        return done.stdout, done.returncode

    def finish_background(self, interrupt: bool) -> list[tuple[Command, str, int]]:
        finished = []
        for running in reversed(self.background):  # the server, started first, last

            def shown(output: str, expected: list[str] = running.command.expected) -> bool:
                return lines_match(expected, normalise(output, self.replacements()))

            output = running.finish(interrupt, shown)
            finished.append((running.command, output, running.process.returncode))
        self.background = []
        return finished


@pytest.mark.parametrize("page", TRANSCRIPT_PAGES)
def test_transcript(page: str, tmp_path: Path) -> None:
    text = (ROOT / page).read_text()
    files, _ = marked_blocks(text)
    for name, body in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(body)
    session = Session(tmp_path)
    edits = PageEdits(page)
    problems: list[str] = []

    def check(command: Command, output: str, status: int) -> None:
        actual = normalise(output, session.replacements())
        where = f"{page}:{command.line} `$ {command.text}`"
        if UPDATE:
            lines = updated(command.expected, actual)
            if status != 0:
                lines.append(f"[exit {status}]")
            if lines != command.expected or status != command.exit_code:
                edits.replace(*command.span, lines)
            return
        if not lines_match(command.expected, actual):
            problems.append(difference(where, command.expected, actual))
        if status != command.exit_code:
            problems.append(f"{where}: exit status {status}, the page shows {command.exit_code}")

    try:
        for command in commands(text):
            if command.text.strip() == "wait" and not command.background:
                for finished in session.finish_background(interrupt=False):
                    check(*finished)
                continue
            for path in command.copies:
                shutil.copy(ROOT / path, tmp_path / Path(path).name)
            for path in command.links:
                (tmp_path / Path(path).name).symlink_to(ROOT / path, target_is_directory=True)
            result = session.run(command)
            if result is not None:
                check(command, *result)
    finally:
        for command, output, status in session.finish_background(interrupt=True):
            # Stopped by the test: its status is then the interrupt's, not the page's.
            check(command, output, command.exit_code if status < 0 else status)
    if UPDATE:
        edits.write()
        return
    if problems:
        pytest.fail("\n\n".join(problems) + "\n\n" + HOW_TO_UPDATE, pytrace=False)


def test_transcript_format_is_parsed_as_documented() -> None:
    page = "text\n```console\n$ echo a \\\n  b\na b\n$ false\n[exit 1]\n$ sleep 1 &\n$ wait\n```\n"
    parsed = commands(page)
    assert [(c.text, c.expected, c.exit_code, c.background) for c in parsed] == [
        ("echo a \\\n  b", ["a b"], 0, False),
        ("false", [], 1, False),
        ("sleep 1", [], 0, True),
        ("wait", [], 0, False),
    ]
    start, end = parsed[0].span
    assert page[start:end] == "a b\n"
    assert page[slice(*parsed[1].span)] == "[exit 1]\n"


def test_wildcards_match_as_documented() -> None:
    assert lines_match(["id …", "done"], ["id 3f2a", "done"])
    assert not lines_match(["id …", "done"], ["id 3f2a", "undone"])
    assert lines_match(["a", "…", "z"], ["a", "z"])
    assert lines_match(["a", "…", "z"], ["a", "b", "c", "z"])
    assert not lines_match(["a", "…", "z"], ["a", "b"])
    # Updating keeps the lines that still match and takes the rest from the real output.
    assert updated(["id …", "old"], ["id 77", "new", "more"]) == ["id …", "new", "more"]
