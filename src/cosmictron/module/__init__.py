"""Loading modules: the Python decorator API, and the bindings the host runs.

Owns: ``@table``/``@reducer``/lifecycle decorators, annotation resolution, module
loading, row and argument bindings. Imports: ``datastore``, root modules. WASM and
JavaScript modules will load into the same ``LoadedModule`` shape (schema + bindings),
so the host never knows which language a module is written in.
"""

from cosmictron.module.api import (
    CURRENT_DB,
    FieldSpec,
    Index,
    ProcedureContext,
    ReducerContext,
    VisibilityFilter,
    client_connected,
    client_disconnected,
    field,
    init,
    procedure,
    reducer,
    table,
    type_,
    visibility_filter,
)
from cosmictron.module.bindings import ProcedureBinding, ReducerBinding, RowBinding
from cosmictron.module.python import LoadedModule, load_module, load_source

__all__ = [
    "CURRENT_DB",
    "FieldSpec",
    "Index",
    "LoadedModule",
    "ProcedureBinding",
    "ProcedureContext",
    "ReducerBinding",
    "ReducerContext",
    "RowBinding",
    "VisibilityFilter",
    "client_connected",
    "client_disconnected",
    "field",
    "init",
    "load_module",
    "load_source",
    "procedure",
    "reducer",
    "table",
    "type_",
    "visibility_filter",
]
