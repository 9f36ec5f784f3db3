"""DurabilityConfig: profiles, validation, and the deprecated pre-0.8 entry points."""

from __future__ import annotations

import os

import pytest

from cosmictron.durability import (
    PROFILES,
    DurabilityConfig,
    PersistenceConfig,
    PersistenceLayer,
)
from cosmictron.durability.config import GIB
from cosmictron.errors import ConfigError


def test_default_is_production() -> None:
    assert DurabilityConfig.default() == DurabilityConfig.from_profile("production")
    assert DurabilityConfig() == DurabilityConfig.default()


@pytest.mark.parametrize(
    ("profile", "policy", "method", "memory_gib"),
    [
        ("development", "never", "fdatasync", 1),
        ("balanced", "periodic", "fdatasync", 4),
        ("production", "always", "fdatasync", 8),
        ("maximum_safety", "always", "fsync", 8),
    ],
)
def test_profiles(profile: str, policy: str, method: str, memory_gib: int) -> None:
    config = DurabilityConfig.from_profile(profile)
    assert (config.fsync_policy, config.sync_method) == (policy, method)
    assert config.memory_limit_bytes == memory_gib * GIB


def test_profile_list_is_the_contract() -> None:
    assert list(PROFILES) == ["development", "balanced", "production", "maximum_safety"]
    safest = DurabilityConfig.from_profile("maximum_safety")
    assert safest.snapshot_interval_tx < DurabilityConfig.default().snapshot_interval_tx
    assert DurabilityConfig.from_profile("balanced").fsync_interval_ms == 100


def test_unknown_profile_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"fastest.*development, balanced, production"):
        DurabilityConfig.from_profile("fastest")


def test_unknown_policy_and_method_list_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"'sometimes'.*always, periodic, never"):
        DurabilityConfig(fsync_policy="sometimes")
    with pytest.raises(ConfigError, match="fsync, fdatasync"):
        DurabilityConfig(sync_method="msync")


@pytest.mark.parametrize("field", ["fsync_interval_ms", "segment_bytes_max", "record_bytes_max"])
@pytest.mark.parametrize("value", [0, -1, "10", True, 1.5])
def test_sizes_must_be_positive_integers(field: str, value: object) -> None:
    with pytest.raises(ConfigError, match=field):
        DurabilityConfig(**{field: value})


def test_record_bytes_max_fits_the_frame() -> None:
    with pytest.raises(ConfigError, match="32 bits"):
        DurabilityConfig(record_bytes_max=2**32)


@pytest.mark.parametrize(
    ("enable_wal", "policy"), [(True, "always"), (False, "never"), (None, "always")]
)
def test_new_legacy_maps_enable_wal_and_warns(
    tmp_path: object, enable_wal: bool | None, policy: str
) -> None:
    config = PersistenceConfig(os.path.join(str(tmp_path), "data"), enable_wal=enable_wal)
    with pytest.warns(DeprecationWarning, match="new_legacy"):
        layer = PersistenceLayer.new_legacy(config)
    try:
        assert layer.durability.fsync_policy == policy
    finally:
        layer.close()


def test_persistence_config_is_frozen(tmp_path: object) -> None:
    config = PersistenceConfig(str(tmp_path))
    assert config.enable_wal is None
    with pytest.raises(AttributeError):
        config.data_dir = "elsewhere"  # type: ignore[misc]
