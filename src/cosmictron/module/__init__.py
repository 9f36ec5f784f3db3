"""Loading modules: the Python decorator API, and the bindings the host runs.

Owns: ``@table``/``@reducer``/lifecycle decorators, annotation resolution, module
loading, row and argument bindings, and sandboxed guests: the module ABI (``abi``), the
engine-neutral host side (``guest``), the wasmtime engine (``wasm``) and the JavaScript
engines (``js``, with the SDK ``cosmictron.js``); ``loader``
picks the language from a module's bytes. Imports: ``datastore``, root modules. Every
language loads into the same ``LoadedModule`` shape (schema + bindings), so the host
never knows which language a module is written in.
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
from cosmictron.module.loader import is_sandboxed, load_module, load_source
from cosmictron.module.python import LoadedModule
from cosmictron.module.wasm_bytes import set_cache_directory as set_wasm_cache_directory

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
    "is_sandboxed",
    "load_module",
    "load_source",
    "procedure",
    "reducer",
    "set_wasm_cache_directory",
    "table",
    "type_",
    "visibility_filter",
]
