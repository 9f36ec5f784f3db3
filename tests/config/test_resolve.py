"""DurabilityConfig.resolve: every source, and the precedence flag > env > file > profile.

Each test passes an explicit environment dict and a real config.toml in a temporary
directory, so the process environment never leaks in.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cosmictron.durability import DurabilityConfig
from cosmictron.durability.config import GIB
from cosmictron.errors import ConfigError


def write_toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_nothing_set_is_production() -> None:
    assert DurabilityConfig.resolve(environ={}) == DurabilityConfig.default()


def test_none_environ_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSMICTRON_PERFORMANCE_PROFILE", "balanced")
    monkeypatch.delenv("COSMICTRON_FSYNC_POLICY", raising=False)
    monkeypatch.delenv("COSMICTRON_ENABLE_WAL", raising=False)
    assert DurabilityConfig.resolve().fsync_policy == "periodic"


@pytest.mark.parametrize("policy", ["always", "periodic", "never"])
def test_fsync_policy_environment_variable(policy: str) -> None:
    config = DurabilityConfig.resolve(environ={"COSMICTRON_FSYNC_POLICY": policy})
    assert config.fsync_policy == policy
    assert config.memory_limit_bytes == 8 * GIB  # the rest is still production


@pytest.mark.parametrize("profile", ["development", "balanced", "production", "maximum_safety"])
def test_performance_profile_environment_variable(profile: str) -> None:
    config = DurabilityConfig.resolve(environ={"COSMICTRON_PERFORMANCE_PROFILE": profile})
    assert config == DurabilityConfig.from_profile(profile)


@pytest.mark.parametrize(
    ("value", "policy"),
    [("true", "always"), ("TRUE", "always"), ("false", "never"), ("0", "never")],
)
def test_legacy_enable_wal_maps_with_a_warning(value: str, policy: str) -> None:
    with pytest.warns(DeprecationWarning, match="COSMICTRON_ENABLE_WAL is deprecated"):
        config = DurabilityConfig.resolve(environ={"COSMICTRON_ENABLE_WAL": value})
    assert config.fsync_policy == policy


def test_legacy_enable_wal_is_ignored_when_fsync_policy_is_set() -> None:
    environ = {"COSMICTRON_ENABLE_WAL": "true", "COSMICTRON_FSYNC_POLICY": "never"}
    with pytest.warns(DeprecationWarning, match="ignored"):
        assert DurabilityConfig.resolve(environ=environ).fsync_policy == "never"


def test_legacy_enable_wal_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="COSMICTRON_ENABLE_WAL='maybe'"):
        DurabilityConfig.resolve(environ={"COSMICTRON_ENABLE_WAL": "maybe"})


def test_config_file_profile_and_overrides(tmp_path: Path) -> None:
    path = write_toml(
        tmp_path,
        'profile = "balanced"\nfsync_interval_ms = 250\nsegment_bytes_max = 1048576\n'
        'sync_method = "fsync"\nmemory_limit_bytes = 1024\nsnapshot_interval_tx = 7\n',
    )
    config = DurabilityConfig.resolve(environ={}, config_file=path)
    assert config.fsync_policy == "periodic"
    assert (config.fsync_interval_ms, config.segment_bytes_max) == (250, 1048576)
    assert (config.sync_method, config.memory_limit_bytes, config.snapshot_interval_tx) == (
        "fsync",
        1024,
        7,
    )


def test_missing_config_file_reads_as_empty(tmp_path: Path) -> None:
    config = DurabilityConfig.resolve(environ={}, config_file=tmp_path / "absent.toml")
    assert config == DurabilityConfig.default()


def test_unknown_config_key_names_key_and_file(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "fsync_polcy = 'never'\n")
    with pytest.raises(ConfigError, match=f"'fsync_polcy' in {path}.*fsync_policy"):
        DurabilityConfig.resolve(environ={}, config_file=path)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = write_toml(tmp_path, "profile = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        DurabilityConfig.resolve(environ={}, config_file=path)


def test_unknown_profile_anywhere_lists_valid_ones(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'profile = "turbo"\n')
    with pytest.raises(ConfigError, match=f"'turbo' \\(from {path}\\).*maximum_safety"):
        DurabilityConfig.resolve(environ={}, config_file=path)
    with pytest.raises(ConfigError, match=r"from environment.*development"):
        DurabilityConfig.resolve(environ={"COSMICTRON_PERFORMANCE_PROFILE": "turbo"})
    with pytest.raises(ConfigError, match="from flag"):
        DurabilityConfig.resolve(flags={"profile": "turbo"}, environ={})


def test_unknown_policy_from_environment_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="always, periodic, never"):
        DurabilityConfig.resolve(environ={"COSMICTRON_FSYNC_POLICY": "sometimes"})


def test_unknown_flag_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown flag 'fsync'"):
        DurabilityConfig.resolve(flags={"fsync": "always"}, environ={})


def test_none_flags_are_ignored() -> None:
    config = DurabilityConfig.resolve(flags={"profile": None, "fsync_policy": None}, environ={})
    assert config == DurabilityConfig.default()


class TestPrecedence:
    """flag > environment > config.toml > profile default, for fields and for profiles."""

    def test_flag_beats_environment_beats_file(self, tmp_path: Path) -> None:
        path = write_toml(tmp_path, 'fsync_policy = "periodic"\n')
        environ = {"COSMICTRON_FSYNC_POLICY": "never"}
        assert DurabilityConfig.resolve(environ={}, config_file=path).fsync_policy == "periodic"
        assert DurabilityConfig.resolve(environ=environ, config_file=path).fsync_policy == "never"
        flags = {"fsync_policy": "always"}
        config = DurabilityConfig.resolve(flags=flags, environ=environ, config_file=path)
        assert config.fsync_policy == "always"

    def test_profile_is_chosen_by_the_same_precedence(self, tmp_path: Path) -> None:
        path = write_toml(tmp_path, 'profile = "balanced"\n')
        environ = {"COSMICTRON_PERFORMANCE_PROFILE": "development"}
        resolve = DurabilityConfig.resolve
        assert resolve(environ={}, config_file=path).fsync_policy == "periodic"
        assert resolve(environ=environ, config_file=path).fsync_policy == "never"
        flags = {"profile": "maximum_safety"}
        assert resolve(flags=flags, environ=environ, config_file=path).sync_method == "fsync"

    def test_explicit_field_beats_profile_at_same_or_lower_level(self, tmp_path: Path) -> None:
        path = write_toml(tmp_path, 'profile = "development"\nfsync_policy = "always"\n')
        config = DurabilityConfig.resolve(environ={}, config_file=path)
        assert config.fsync_policy == "always"  # same level: the field wins
        assert config.memory_limit_bytes == 1 * GIB  # the rest is the profile's
        environ = {"COSMICTRON_FSYNC_POLICY": "periodic"}
        assert (
            DurabilityConfig.resolve(environ=environ, config_file=path).fsync_policy == "periodic"
        )

    def test_profile_at_higher_level_beats_lower_field(self, tmp_path: Path) -> None:
        path = write_toml(tmp_path, 'fsync_policy = "always"\n')
        config = DurabilityConfig.resolve(
            flags={"profile": "development"}, environ={}, config_file=path
        )
        assert config.fsync_policy == "never"

    def test_flag_field_beats_environment_profile(self) -> None:
        config = DurabilityConfig.resolve(
            flags={"fsync_policy": "always"},
            environ={"COSMICTRON_PERFORMANCE_PROFILE": "development"},
        )
        assert config.fsync_policy == "always"
        assert config.memory_limit_bytes == 1 * GIB


def test_paths_may_be_strings(tmp_path: Path) -> None:
    path = write_toml(tmp_path, 'profile = "development"\n')
    assert DurabilityConfig.resolve(environ={}, config_file=os.fspath(path)).fsync_policy == "never"
