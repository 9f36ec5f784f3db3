"""The saved settings: a default server, and one identity token per server.

Both the CLI and the SDK read this file, so a program can connect as the identity
``cosmictron-cli identity new`` saved; it lives in ``client/`` because ``cli`` may import
``client`` and not the other way round (tests/test_layers.py).

The file is ``cli.toml`` in ``$COSMICTRON_CONFIG_DIR`` (for tests and sandboxes), else
``$XDG_CONFIG_HOME/cosmictron``, else ``~/.config/cosmictron``::

    # cosmictron-cli settings: the default server and an identity per server.
    default_server = "http://127.0.0.1:3000"

    [servers."http://127.0.0.1:3000"]
    identity = "fd4d640f…"
    token = "eyJhbGciOiJFZERTQSJ9…"

Tokens are secrets: the file is written with mode 0600 (its directory 0700), through a
temporary file and a rename, so a crash never leaves half a file. Tokens are keyed by
the normalised server URL (``normalise_server_url``) because a token is only
valid on the server that issued it.

Which server a command talks to follows the project's one precedence rule
(``cosmictron.config.resolve_levels``): ``--server`` > ``COSMICTRON_SERVER`` > the saved
``default_server`` > ``http://127.0.0.1:3000``.
"""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from cosmictron.config import resolve_levels
from cosmictron.errors import ConfigError

FILE_NAME = "cli.toml"

DEFAULT_SERVER = "http://127.0.0.1:3000"


def normalise_server_url(url: str) -> str:
    """``url`` without a trailing slash, after checking it is an http(s) server address.

    Tokens are saved per server URL, so the same server must always be spelled the same.

    Raises:
        ValueError: not an ``http://`` or ``https://`` URL with a host and no path.

    >>> normalise_server_url("http://127.0.0.1:3000/")
    'http://127.0.0.1:3000'
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"expected a URL like {DEFAULT_SERVER}, got {url!r}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"expected a server address without a path, got {url!r}")
    try:
        parts.port  # noqa: B018 - parsing the port validates it
    except ValueError:
        raise ValueError(f"the port in {url!r} is not a number from 0 to 65535") from None
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class SavedIdentity:
    """An identity the server issued, and the token that proves it."""

    identity: str
    token: str


@dataclass
class Settings:
    """The contents of ``cli.toml``; ``load`` and ``save`` move it to and from disk."""

    path: Path
    default_server: str | None = None
    identities: dict[str, SavedIdentity] = field(default_factory=dict)

    @classmethod
    def load(cls) -> Settings:
        """Read the settings file; a missing file is empty settings.

        Raises:
            ConfigError: the file is not valid TOML or not in the format above.
        """
        path = config_dir() / FILE_NAME
        try:
            text = path.read_text()
        except FileNotFoundError:
            return cls(path)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
            default = data.get("default_server")
            identities = {
                url: SavedIdentity(str(entry["identity"]), str(entry["token"]))
                for url, entry in data.get("servers", {}).items()
            }
        except (tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(
                f"{path} is not a valid cosmictron-cli settings file: {exc}"
            ) from None
        return cls(path, str(default) if default is not None else None, identities)

    def save(self) -> None:
        """Write the file atomically with mode 0600 (it holds tokens)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".cli-", text=True)
        try:
            with os.fdopen(descriptor, "w") as file:  # mkstemp creates it 0600
                file.write(self.render())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def render(self) -> str:
        """The TOML text; strings are JSON-quoted, which is valid TOML for any string."""
        lines = ["# cosmictron-cli settings: the default server and an identity per server."]
        lines.append("# Written by cosmictron-cli; the tokens are secrets (keep this file 0600).")
        if self.default_server is not None:
            lines.append(f"default_server = {json.dumps(self.default_server)}")
        for url, saved in sorted(self.identities.items()):
            lines += ["", f"[servers.{json.dumps(url)}]"]
            lines.append(f"identity = {json.dumps(saved.identity)}")
            lines.append(f"token = {json.dumps(saved.token)}")
        return "\n".join(lines) + "\n"

    def server_url(self, flag: str | None, environment: str | None) -> str:
        """The server a command talks to, by the precedence in the module docstring."""
        levels = [
            ("--server", {"server": flag}),
            ("COSMICTRON_SERVER", {"server": environment or None}),
            (str(self.path), {"server": self.default_server}),
        ]
        profiles = {"default": {"server": DEFAULT_SERVER}}
        return str(resolve_levels(levels, profiles, "default")["server"])


def config_dir() -> Path:
    """Where ``cli.toml`` lives (see the module docstring for the order)."""
    explicit = os.environ.get("COSMICTRON_CONFIG_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "cosmictron"
