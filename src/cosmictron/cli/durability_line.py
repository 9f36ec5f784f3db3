"""The line ``start`` prints about durability: how hard the server's databases sync.

A newcomer starting a server cannot otherwise see which fsync policy their data gets, or
that an environment variable left in a shell changed it. The line states the settings of
a database that has no ``config.toml`` of its own, and which level they came from, by the
one precedence rule (flag > environment > config.toml > profile default;
docs/guide/durability.md).
"""

from __future__ import annotations

from collections.abc import Mapping

from cosmictron.durability import DurabilityConfig

PROFILE_VARIABLE = "COSMICTRON_PERFORMANCE_PROFILE"
POLICY_VARIABLE = "COSMICTRON_FSYNC_POLICY"


def durability_line(profile: str | None, environ: Mapping[str, str]) -> str:
    """What ``start --profile PROFILE`` in ``environ`` gives its databases, in one line.

    Raises:
        ConfigError: an unknown profile or policy in the environment, named as the
            server itself would name it when opening a database.
    """
    flags = {"profile": profile} if profile else None
    policy = DurabilityConfig.resolve(flags=flags, environ=environ).fsync_policy
    if profile:
        return f"durability: the {profile} profile for every database (--profile): fsync {policy}"
    named = environ.get(PROFILE_VARIABLE, "").strip()
    if named:
        source = (
            f"{PROFILE_VARIABLE}, {POLICY_VARIABLE}"
            if environ.get(POLICY_VARIABLE)
            else PROFILE_VARIABLE
        )
        return f"durability: the {named} profile for every database ({source}): fsync {policy}"
    if environ.get(POLICY_VARIABLE, "").strip():
        return (
            f"durability: fsync {policy} for every database ({POLICY_VARIABLE}); its other "
            "settings from its config.toml, else the production profile"
        )
    return (
        f"durability: the production profile (fsync {policy}), unless a database's "
        "config.toml says otherwise"
    )
