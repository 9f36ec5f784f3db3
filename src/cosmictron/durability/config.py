"""Durability settings: ``DurabilityConfig``, its four profiles, and where values come from.

A profile sets the fsync policy, sync method and memory limit together, because they trade
the same thing (how much acknowledged work a power cut may lose) against throughput; users
pick a profile and override single fields only when they know why. Values are resolved by
the one precedence rule of :mod:`cosmictron.config` (flag > environment > config.toml >
profile default). The user-facing description lives in ``docs/guide/durability.md``.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cosmictron.config import PROFILE_KEY, read_config_file, read_environment, resolve_levels
from cosmictron.errors import ConfigError

FSYNC_POLICIES = ("always", "periodic", "never")
SIGNING_MODES = ("off", "checkpoint", "event")
SYNC_METHODS = ("fsync", "fdatasync")
LOG_RETENTIONS = ("keep", "archive")
EVENT_RETENTION_KEYS = ("keep_rows", "keep_days", "time_column")

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

FRAME_PAYLOAD_BYTES_LIMIT = 2**32 - 1
"""The frame's length field is a u32, so no record can be larger than this."""

ENVIRONMENT_NAMES = {
    "COSMICTRON_PERFORMANCE_PROFILE": PROFILE_KEY,
    "COSMICTRON_FSYNC_POLICY": "fsync_policy",
    "COSMICTRON_SIGNING": "signing",
    "COSMICTRON_SIGNING_KEY_PATH": "signing_key_path",
    # RFC 3161 anchoring (issue 13; docs/guide/ledger.md, "Anchoring").
    "COSMICTRON_ANCHOR_TSA_URLS": "anchor_tsa_urls",
    "COSMICTRON_ANCHOR_TRUST_ROOTS": "anchor_trust_roots",
    "COSMICTRON_ANCHOR_POLICY": "anchor_policy",
    "COSMICTRON_ANCHOR_INTERVAL_MS": "anchor_interval_ms",
    "COSMICTRON_ANCHOR_STRICT": "anchor_strict",
    "COSMICTRON_ANCHOR_MAX_LAG_MS": "anchor_max_lag_ms",
    "COSMICTRON_ANCHOR_TSA_TIMEOUT_MS": "anchor_tsa_timeout_ms",
    "COSMICTRON_ANCHOR_RETRY_MS": "anchor_retry_ms",
}
LEGACY_ENABLE_WAL = "COSMICTRON_ENABLE_WAL"


@dataclass(frozen=True)
class DurabilityConfig:
    """How hard the commit log works to keep acknowledged transactions across a crash.

    The field defaults are the ``production`` profile.

    Attributes:
        fsync_policy: ``always`` (a transaction is acknowledged only once synced; concurrent
            callers share one sync), ``periodic`` (a background sync every
            ``fsync_interval_ms``), or ``never`` (the OS decides; a power cut may lose
            recent transactions, a process crash loses none).
        sync_method: ``fdatasync`` (data and size only, faster) or ``fsync``.
        fsync_interval_ms: the period of ``periodic`` syncs.
        memory_limit_bytes: the most memory the database's tables may use.
        snapshot_interval_tx: transactions between snapshots; smaller means faster restart.
        segment_bytes_max: a log segment is closed and a new one begun past this size.
        record_bytes_max: the largest record accepted, and trusted when reading the log.
        signing: the compliance ledger (``docs/guide/ledger.md``): ``off`` (records are
            hash-chained, nothing is signed and no tree is kept), ``checkpoint`` (a
            Merkle tree over the records; a signed checkpoint every
            ``checkpoint_interval_records`` records or ``checkpoint_interval_ms``, and at
            a clean close) or ``event`` (the same, and every record signed with Ed25519).
        checkpoint_interval_records: records between signed checkpoints, at most.
        checkpoint_interval_ms: a checkpoint follows the first record appended this
            long after the previous checkpoint.
        signing_key_path: the Ed25519 signing key's file (0600); unset means the key in
            ``COSMICTRON_SIGNING_KEY``, else ``<data_dir>/ledger/signing.key`` (made on
            first use).
        log_retention: ``keep`` (every segment stays in ``log/``) or ``archive``: after
            each snapshot, sealed segments wholly below it (and, with the ledger on,
            below a checkpoint in the side file) move to ``log_archive_dir``; their
            records stay provable (``docs/guide/ledger.md``, "Retention").
        log_archive_dir: where archived segments go; unset means
            ``<data_dir>/archive/log``. Any of them may be deleted or moved off the
            machine afterwards: nothing reads them again.
        event_retention: per event table, how many rows stay in memory:
            ``{table: {"keep_rows": N, "keep_days": D, "time_column": name}}`` (either
            bound or both; ``time_column`` defaults to the table's first ``Timestamp``
            column). Older rows are deleted by a logged ``__retention__`` transaction
            at every snapshot and on ``Database.prune_events()``.
        anchor_tsa_urls: RFC 3161 TSAs the latest checkpoint is sent to every
            ``anchor_interval_ms`` (each answer, fully checked, becomes an anchor record);
            empty means no anchoring. A list in config.toml, comma-separated in
            ``COSMICTRON_ANCHOR_TSA_URLS``. Needs ``signing`` on and a trust root.
        anchor_trust_roots: a PEM file of the CA certificates a TSA must chain to.
        anchor_policy: the TSA policy OID every token must carry; unset accepts the
            TSA's default policy.
        anchor_interval_ms: how often anchoring runs (on its own thread, never on the
            commit path).
        anchor_strict: refuse commits (``anchoring_overdue``, 503) while the oldest
            record no anchor covers is older than ``anchor_max_lag_ms``; off means a TSA
            outage never blocks a commit.
        anchor_max_lag_ms: how stale anchoring may get before strict mode refuses.
        anchor_tsa_timeout_ms: how long one TSA request may wait (to connect, and for
            each read of its answer) before it counts as an outage; it runs on the
            anchoring thread, so a TSA that never answers delays only anchoring.
        anchor_retry_ms: after a round in which no TSA gave a token (and while strict
            mode refuses), the next round runs this soon instead of a whole
            ``anchor_interval_ms`` later (the shorter of the two).
    """

    fsync_policy: str = "always"
    sync_method: str = "fdatasync"
    fsync_interval_ms: int = 100
    memory_limit_bytes: int = 8 * GIB
    snapshot_interval_tx: int = 100_000
    segment_bytes_max: int = 64 * MIB
    record_bytes_max: int = 512 * MIB
    signing: str = "off"
    checkpoint_interval_records: int = 1000
    checkpoint_interval_ms: int = 1000
    signing_key_path: str | None = None
    log_retention: str = "keep"
    log_archive_dir: str | None = None
    event_retention: Mapping[str, Mapping[str, Any]] | None = None
    anchor_tsa_urls: tuple[str, ...] = ()
    anchor_trust_roots: str | None = None
    anchor_policy: str | None = None
    anchor_interval_ms: int = 60_000
    anchor_strict: bool = False
    anchor_max_lag_ms: int = 300_000
    anchor_tsa_timeout_ms: int = 10_000
    anchor_retry_ms: int = 5_000

    def __post_init__(self) -> None:
        _check_choice("log_retention", self.log_retention, LOG_RETENTIONS)
        if self.log_retention == "archive" and self.signing == "off":
            raise ConfigError(
                'log_retention = "archive" needs the ledger (signing = "checkpoint" or '
                '"event"): archived records stay provable only through its tree'
            )
        if self.log_archive_dir is not None and not isinstance(self.log_archive_dir, str):
            raise ConfigError(f"log_archive_dir must be a path, not {self.log_archive_dir!r}")
        _check_event_retention(self.event_retention)
        _normalise_anchoring(self)
        for name in ("checkpoint_interval_records", "checkpoint_interval_ms"):
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().isdigit():  # from the environment
                object.__setattr__(self, name, int(value))
        _check_choice("signing", self.signing, SIGNING_MODES)
        _check_positive("checkpoint_interval_records", self.checkpoint_interval_records)
        _check_positive("checkpoint_interval_ms", self.checkpoint_interval_ms)
        if self.signing_key_path is not None and not isinstance(self.signing_key_path, str):
            raise ConfigError(f"signing_key_path must be a path, not {self.signing_key_path!r}")
        _check_choice("fsync_policy", self.fsync_policy, FSYNC_POLICIES)
        _check_choice("sync_method", self.sync_method, SYNC_METHODS)
        _check_positive("fsync_interval_ms", self.fsync_interval_ms)
        _check_positive("memory_limit_bytes", self.memory_limit_bytes)
        _check_positive("snapshot_interval_tx", self.snapshot_interval_tx)
        _check_positive("segment_bytes_max", self.segment_bytes_max)
        _check_positive("record_bytes_max", self.record_bytes_max)
        if self.record_bytes_max > FRAME_PAYLOAD_BYTES_LIMIT:
            raise ConfigError(
                f"record_bytes_max is {self.record_bytes_max}; it must be at most "
                f"{FRAME_PAYLOAD_BYTES_LIMIT} (the frame's length field is 32 bits)"
            )

    @classmethod
    def default(cls) -> DurabilityConfig:
        """Return the ``production`` profile: nothing acknowledged is ever lost."""
        return cls.from_profile("production")

    @classmethod
    def from_profile(cls, name: str) -> DurabilityConfig:
        """Return the named profile.

        Raises:
            ConfigError: ``name`` is not one of :data:`PROFILES`; the message lists them.
        """
        if name not in PROFILES:
            raise ConfigError(f"unknown profile {name!r}; valid profiles: {', '.join(PROFILES)}")
        return cls(**PROFILES[name])

    @classmethod
    def resolve(
        cls,
        flags: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        config_file: str | os.PathLike[str] | None = None,
    ) -> DurabilityConfig:
        """Build the configuration from flags, environment and config.toml.

        Precedence is flag > environment > config.toml > profile default (see
        :mod:`cosmictron.config`); the profile is chosen the same way and defaults to
        ``production``.

        Args:
            flags: command-line values by field name, plus ``profile``; ``None`` values
                are ignored, so unset options can be passed through.
            environ: the environment; ``None`` means ``os.environ``. Reads
                ``COSMICTRON_PERFORMANCE_PROFILE``, ``COSMICTRON_FSYNC_POLICY`` and the
                deprecated ``COSMICTRON_ENABLE_WAL``.
            config_file: a config.toml; a path that does not exist reads as empty.

        Raises:
            ConfigError: an unknown profile, policy, flag or config.toml key, or a bad value.
        """
        flag_values = dict(flags or {})
        for key in flag_values:
            if key not in CONFIG_KEYS:
                raise ConfigError(f"unknown flag {key!r}; valid flags: {', '.join(CONFIG_KEYS)}")
        environment = _environment_values(os.environ if environ is None else environ)
        file_values = {} if config_file is None else read_config_file(config_file, CONFIG_KEYS)
        levels = [
            ("flag", flag_values),
            ("environment", environment),
            (os.fspath(config_file) if config_file is not None else "config file", file_values),
        ]
        return cls(**resolve_levels(levels, PROFILES, "production"))


PROFILES: dict[str, dict[str, Any]] = {
    "development": dict(
        fsync_policy="never", sync_method="fdatasync", memory_limit_bytes=1 * GIB, signing="off"
    ),
    "balanced": dict(
        fsync_policy="periodic",
        sync_method="fdatasync",
        fsync_interval_ms=100,
        memory_limit_bytes=4 * GIB,
    ),
    "production": dict(fsync_policy="always", sync_method="fdatasync", memory_limit_bytes=8 * GIB),
    "maximum_safety": dict(
        fsync_policy="always",
        sync_method="fsync",
        memory_limit_bytes=8 * GIB,
        snapshot_interval_tx=10_000,
        signing="event",
    ),
}
"""Every profile, complete: fields a profile does not name take the dataclass default."""

_FIELD_DEFAULTS = {field.name: field.default for field in dataclasses.fields(DurabilityConfig)}
for _values in PROFILES.values():
    for _key, _default in _FIELD_DEFAULTS.items():
        _values.setdefault(_key, _default)

CONFIG_KEYS = (PROFILE_KEY, *_FIELD_DEFAULTS)
"""Keys accepted in config.toml and as flags."""


def _environment_values(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = read_environment(environ, ENVIRONMENT_NAMES)
    legacy = environ.get(LEGACY_ENABLE_WAL)
    if legacy:
        if "fsync_policy" in values:
            warnings.warn(
                f"{LEGACY_ENABLE_WAL} is deprecated and ignored because COSMICTRON_FSYNC_POLICY "
                f"is set; remove {LEGACY_ENABLE_WAL}",
                DeprecationWarning,
                stacklevel=3,
            )
        else:
            values["fsync_policy"] = _legacy_policy(legacy)
            warnings.warn(
                f"{LEGACY_ENABLE_WAL} is deprecated; use COSMICTRON_FSYNC_POLICY="
                f"{values['fsync_policy']} or COSMICTRON_PERFORMANCE_PROFILE instead",
                DeprecationWarning,
                stacklevel=3,
            )
    return values


def _legacy_policy(text: str) -> str:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return "always"
    if lowered in ("false", "0", "no", "off"):
        return "never"
    raise ConfigError(f"{LEGACY_ENABLE_WAL}={text!r} is not a boolean; use true or false")


def _normalise_anchoring(config: DurabilityConfig) -> None:
    """Turn the anchoring settings' environment strings into values, and check them."""
    urls: Any = config.anchor_tsa_urls
    if isinstance(urls, str):  # from the environment: comma-separated
        urls = [u.strip() for u in urls.split(",") if u.strip()]
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise ConfigError(f"anchor_tsa_urls must be a list of URLs, not {urls!r}")
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"anchor_tsa_urls: {url!r} is not an http:// or https:// URL")
    object.__setattr__(config, "anchor_tsa_urls", tuple(urls))
    for name in (
        "anchor_interval_ms",
        "anchor_max_lag_ms",
        "anchor_tsa_timeout_ms",
        "anchor_retry_ms",
    ):
        value = getattr(config, name)
        if isinstance(value, str) and value.strip().isdigit():
            object.__setattr__(config, name, int(value))
        _check_positive(name, getattr(config, name))
    strict: Any = config.anchor_strict
    if isinstance(strict, str):
        lowered = strict.strip().lower()
        if lowered not in ("true", "1", "yes", "on", "false", "0", "no", "off"):
            raise ConfigError(f"anchor_strict={strict!r} is not a boolean; use true or false")
        object.__setattr__(config, "anchor_strict", lowered in ("true", "1", "yes", "on"))
    elif not isinstance(strict, bool):
        raise ConfigError(f"anchor_strict must be true or false, not {strict!r}")
    for name in ("anchor_trust_roots", "anchor_policy"):
        value = getattr(config, name)
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{name} must be a string, not {value!r}")
    if urls:
        if config.signing == "off":
            raise ConfigError(
                "anchor_tsa_urls is set but signing is off: anchoring stamps signed "
                'checkpoints; set signing = "checkpoint" or "event"'
            )
        if not config.anchor_trust_roots:
            raise ConfigError(
                "anchor_tsa_urls is set without anchor_trust_roots: every token is checked "
                "against a trust root; name the TSA's CA certificates (a PEM file)"
            )
    elif config.anchor_strict:
        raise ConfigError("anchor_strict needs anchor_tsa_urls: there is nothing to wait for")


def _check_choice(name: str, value: object, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"unknown {name} {value!r}; valid values: {', '.join(valid)}")


def _check_event_retention(value: object) -> None:
    """A mapping of table name to a policy with a positive ``keep_rows`` and/or
    ``keep_days``; which tables exist is checked when the database opens."""
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ConfigError(f"event_retention must map table names to policies, not {value!r}")
    for table, policy in value.items():
        where = f"event_retention.{table}"
        if not isinstance(policy, Mapping):
            raise ConfigError(f"{where} must be a table of keep_rows / keep_days, not {policy!r}")
        unknown = sorted(set(policy) - set(EVENT_RETENTION_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown key {unknown[0]!r} in {where}; valid keys: "
                + ", ".join(EVENT_RETENTION_KEYS)
            )
        if "keep_rows" not in policy and "keep_days" not in policy:
            raise ConfigError(f"{where} needs keep_rows, keep_days or both")
        for bound in ("keep_rows", "keep_days"):
            if bound in policy:
                _check_positive(f"{where}.{bound}", policy[bound])
        column = policy.get("time_column")
        if column is not None and not isinstance(column, str):
            raise ConfigError(f"{where}.time_column must be a column name, not {column!r}")


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, not {value!r}")


@dataclass(frozen=True)
class PersistenceConfig:
    """Where a database keeps its files.

    Attributes:
        data_dir: holds ``LOCK``, ``log/`` (segments) and ``snapshots/``.
        enable_wal: the pre-0.8 switch, read only by ``PersistenceLayer.new_legacy``;
            use :class:`DurabilityConfig` instead.
    """

    data_dir: str | os.PathLike[str]
    enable_wal: bool | None = None
