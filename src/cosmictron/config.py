"""One precedence rule for every setting: flag > environment > config.toml > profile default.

Each layer that has settings (durability today; server and memory limits later) describes
them as plain key/value mappings, one per *level*, and calls :func:`resolve_levels`. Keeping
the rule here, in a root module that imports no layer, means every setting in Cosmictron
answers "which value wins?" the same way.

The rule, from lowest to highest level (profile default, config.toml, environment, flag):

1. The *profile* is itself a setting, chosen by the same precedence; when nothing names
   one, ``default_profile`` is used.
2. A profile expands into values for every field at the level that named it. An explicit
   field at a level beats the profile's values from that level and all lower ones, and
   loses to a profile named at a higher level. For example ``--profile development`` on the
   command line beats ``fsync_policy = "always"`` in config.toml, while
   ``COSMICTRON_FSYNC_POLICY=always`` beats ``profile = "development"`` in config.toml.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from typing import Any

from cosmictron.errors import ConfigError

PROFILE_KEY = "profile"
"""The key that names a profile at any level."""

LEVEL_NAMES = ("flag", "environment", "config file", "profile default")
"""Level names, highest precedence first; used in error messages."""


def resolve_levels(
    levels: Iterable[tuple[str, Mapping[str, Any]]],
    profiles: Mapping[str, Mapping[str, Any]],
    default_profile: str,
) -> dict[str, Any]:
    """Merge settings from several levels by the precedence rule in the module docstring.

    Args:
        levels: ``(source, values)`` pairs, highest precedence first. ``source`` names the
            level in error messages (``"flag"``, ``"COSMICTRON_PERFORMANCE_PROFILE"``, a
            file path). ``values`` may contain :data:`PROFILE_KEY` and field names; ``None``
            values count as absent, so unset command-line options can be passed as is.
        profiles: every profile's complete set of field values, by profile name.
        default_profile: the profile used when no level names one.

    Returns:
        The merged field values (without :data:`PROFILE_KEY`).

    Raises:
        ConfigError: a level names a profile that is not in ``profiles``.

    >>> profiles = {"fast": {"sync": "never"}, "safe": {"sync": "always"}}
    >>> resolve_levels([("flag", {}), ("file", {"sync": "never"})], profiles, "safe")
    {'sync': 'never'}
    >>> levels = [("flag", {"profile": "safe"}), ("file", {"sync": "never"})]
    >>> resolve_levels(levels, profiles, "fast")
    {'sync': 'always'}
    """
    merged = dict(_profile_values(profiles, default_profile, "the default profile"))
    for source, values in reversed(list(levels)):
        profile = values.get(PROFILE_KEY)
        if profile is not None:
            merged.update(_profile_values(profiles, profile, source))
        for key, value in values.items():
            if key != PROFILE_KEY and value is not None:
                merged[key] = value
    return merged


def _profile_values(
    profiles: Mapping[str, Mapping[str, Any]], name: str, source: str
) -> Mapping[str, Any]:
    try:
        return profiles[name]
    except (KeyError, TypeError):
        valid = ", ".join(profiles)
        raise ConfigError(
            f"unknown profile {name!r} (from {source}); valid profiles: {valid}"
        ) from None


def read_config_file(path: str | os.PathLike[str], allowed_keys: Iterable[str]) -> dict[str, Any]:
    """Read a config.toml, refusing keys we do not know so a typo is never silently ignored.

    A file that does not exist reads as empty: callers pass the conventional location
    (``<data_dir>/config.toml``) whether or not the user created one.

    Args:
        path: the TOML file.
        allowed_keys: every top-level key the caller understands, including ``profile``.

    Returns:
        The file's top-level table.

    Raises:
        ConfigError: the file is not valid TOML or has a key not in ``allowed_keys``.
    """
    try:
        with open(path, "rb") as file:
            values = tomllib.load(file)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{os.fspath(path)} is not valid TOML: {exc}") from None
    allowed = sorted(allowed_keys)
    for key in values:
        if key not in allowed:
            raise ConfigError(
                f"unknown key {key!r} in {os.fspath(path)}; valid keys: {', '.join(allowed)}"
            )
    return values


def read_environment(environ: Mapping[str, str], names: Mapping[str, str]) -> dict[str, str]:
    """Pick the settings named by environment variables; empty variables count as unset.

    Args:
        environ: usually ``os.environ``.
        names: environment variable name -> setting key.

    Returns:
        setting key -> the variable's value, for each variable that is set and non-empty.
    """
    return {key: environ[name] for name, key in names.items() if environ.get(name)}
