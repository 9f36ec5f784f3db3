"""The public names of DESIGN.md §2-4 are exported, sorted, and stay put."""

import warnings

import cosmictron

DESIGN_NAMES = {
    # §2 module API
    "table",
    "reducer",
    "ReducerContext",
    "field",
    "init",
    "client_connected",
    "client_disconnected",
    "type",
    "Identity",
    "ConnectionId",
    "Timestamp",
    "TimeDuration",
    "ScheduleAt",
    "Vector",
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "f32",
    # §3 embedded use, §4 durability
    "Database",
    "DurabilityConfig",
    "PersistenceLayer",
}


def test_design_names_are_exported():
    assert set(cosmictron.__all__) >= DESIGN_NAMES
    for name in cosmictron.__all__:
        assert hasattr(cosmictron, name), name


def test_all_is_complete_without_repeats():
    # Ordering is ruff's job (RUF022 keeps __all__ sorted); this pins the contents.
    assert len(set(cosmictron.__all__)) == len(cosmictron.__all__)
    public = {n for n in vars(cosmictron) if not n.startswith("_")}
    modules = {n for n, v in vars(cosmictron).items() if type(v).__name__ == "module"}
    assert public - modules - {"annotations"} <= set(cosmictron.__all__) | {"Index"}


def test_version_is_the_post_upgrade_side():
    assert cosmictron.__version__ == "0.8.0"


def test_new_legacy_still_works_with_a_warning(tmp_path):
    config = cosmictron.PersistenceConfig(data_dir=str(tmp_path), enable_wal=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        layer = cosmictron.PersistenceLayer.new_legacy(config)
    layer.close()
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_restore_is_importable_from_the_package():
    """A new user found ``restore`` only in ``cosmictron.host.backup`` (issue 16)."""
    from cosmictron.host.backup import restore

    assert "restore" in cosmictron.__all__ and cosmictron.restore is restore
