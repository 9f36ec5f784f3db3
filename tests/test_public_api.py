"""The public names of DESIGN.md §2-4 are exported, sorted, and stay put."""

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

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


LAZY_PACKAGES = ["cosmictron", "cosmictron.client"]


def type_checking_imports(package: str) -> dict[str, object]:
    """What the ``if typing.TYPE_CHECKING:`` imports of ``package``'s ``__init__.py`` bind:
    the names type checkers believe the package has."""
    path = Path(importlib.import_module(package).__file__ or "")
    blocks = [
        node
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.If) and ast.unparse(node.test) == "typing.TYPE_CHECKING"
    ]
    assert len(blocks) == 1, f"{path}: expected one `if typing.TYPE_CHECKING:` block"
    namespace: dict[str, object] = {}
    exec(compile(ast.Module(body=blocks[0].body, type_ignores=[]), str(path), "exec"), namespace)
    namespace.pop("__builtins__")
    return namespace


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_type_checkers_see_the_names_imported_on_first_use(package):
    """The names ``__getattr__`` imports are, one for one, the ``TYPE_CHECKING`` imports:
    a name only in ``_LAZY`` would be unknown to mypy, one only in the block would fail
    at run time."""
    module = importlib.import_module(package)
    seen = type_checking_imports(package)
    assert set(seen) == set(module._LAZY)
    for name, value in seen.items():
        assert getattr(module, name) is value, name


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_a_bare_import_loads_no_layer(package):
    """``import cosmictron`` (every ``cosmictron-cli`` process) loads no layer, and
    ``import cosmictron.client`` not aiohttp: they load on first use of a name."""
    code = (
        f"import sys, {package}; "
        "print(sorted(m for m in sys.modules if m.split('.')[:2] in "
        "[['cosmictron', l] for l in ('host', 'durability', 'query', 'module', 'datastore')]"
        " or m == 'aiohttp'))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]", loaded


def test_a_submodule_loaded_first_does_not_hide_a_name():
    """``cosmictron.client.sync`` imports the module defining ``connect``; the package's
    ``connect`` is still the function afterwards (a submodule named ``connect`` would
    have taken its place)."""
    code = (
        "import cosmictron.client.sync; from cosmictron.client import connect; "
        "print(callable(connect) and connect.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "cosmictron.client.connecting", out
