"""The rows of ``pg_catalog`` and ``information_schema``, built from a module's schema
for one caller: a table the caller may not read (a private table, for anyone but the
owner) appears nowhere, nor its columns, indexes or constraints.

Each table has the columns PostgreSQL 15 clients read (psql's ``\\d`` family, psycopg,
asyncpg, SQLAlchemy's reflection, information_schema readers such as Grafana); the
others of PostgreSQL's are left out, so a query naming one fails with 42703 rather
than reading a made-up value. OIDs: tables from 16384 (PostgreSQL's first user OID)
in name order, each followed by its indexes and constraints; types keep PostgreSQL's
built-in OIDs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cosmictron.datastore import ModuleSchema, TableSchema
from cosmictron.datastore.types import OptionalType
from cosmictron.server.pgwire import pgtypes

PG_CATALOG_NS = 11
PUBLIC_NS = 2200
INFORMATION_SCHEMA_NS = 13000
FIRST_OID = 16384
BTREE_AM = 403
HASH_AM = 405
HEAP_AM = 2
OWNER_ROLE = 10
CALLER_ROLE = 16383

B = pgtypes.BOOL
I2 = pgtypes.INT2
I4 = pgtypes.INT4
I8 = pgtypes.INT8
OI = pgtypes.OID
T = pgtypes.TEXT
N = pgtypes.NAME
C = pgtypes.CHAR
F4 = pgtypes.FLOAT4
V = pgtypes.INT2VECTOR
OV = pgtypes.OIDVECTOR
A = pgtypes.TEXT_ARRAY

TABLES: dict[str, list[tuple[str, int]]] = {
    "pg_namespace": [("oid", OI), ("nspname", N), ("nspowner", OI), ("nspacl", A)],
    "pg_class": [
        ("oid", OI),
        ("relname", N),
        ("relnamespace", OI),
        ("reltype", OI),
        ("reloftype", OI),
        ("relowner", OI),
        ("relam", OI),
        ("relfilenode", OI),
        ("reltablespace", OI),
        ("relpages", I4),
        ("reltuples", F4),
        ("relallvisible", I4),
        ("reltoastrelid", OI),
        ("relhasindex", B),
        ("relisshared", B),
        ("relpersistence", C),
        ("relkind", C),
        ("relnatts", I2),
        ("relchecks", I2),
        ("relhasrules", B),
        ("relhastriggers", B),
        ("relhassubclass", B),
        ("relrowsecurity", B),
        ("relforcerowsecurity", B),
        ("relispopulated", B),
        ("relreplident", C),
        ("relispartition", B),
        ("relrewrite", OI),
        ("relacl", A),
        ("reloptions", A),
        ("relpartbound", T),
    ],
    "pg_attribute": [
        ("attrelid", OI),
        ("attname", N),
        ("atttypid", OI),
        ("attstattarget", I4),
        ("attlen", I2),
        ("attnum", I2),
        ("attndims", I4),
        ("attcacheoff", I4),
        ("atttypmod", I4),
        ("attbyval", B),
        ("attalign", C),
        ("attstorage", C),
        ("attcompression", C),
        ("attnotnull", B),
        ("atthasdef", B),
        ("atthasmissing", B),
        ("attidentity", C),
        ("attgenerated", C),
        ("attisdropped", B),
        ("attislocal", B),
        ("attinhcount", I4),
        ("attcollation", OI),
        ("attacl", A),
        ("attoptions", A),
    ],
    "pg_type": [
        ("oid", OI),
        ("typname", N),
        ("typnamespace", OI),
        ("typowner", OI),
        ("typlen", I2),
        ("typbyval", B),
        ("typtype", C),
        ("typcategory", C),
        ("typispreferred", B),
        ("typisdefined", B),
        ("typdelim", C),
        ("typrelid", OI),
        ("typelem", OI),
        ("typarray", OI),
        ("typinput", T),
        ("typoutput", T),
        ("typreceive", T),
        ("typsend", T),
        ("typalign", C),
        ("typstorage", C),
        ("typnotnull", B),
        ("typbasetype", OI),
        ("typtypmod", I4),
        ("typndims", I4),
        ("typcollation", OI),
        ("typdefault", T),
    ],
    "pg_index": [
        ("indexrelid", OI),
        ("indrelid", OI),
        ("indnatts", I2),
        ("indnkeyatts", I2),
        ("indisunique", B),
        ("indnullsnotdistinct", B),
        ("indisprimary", B),
        ("indisexclusion", B),
        ("indimmediate", B),
        ("indisclustered", B),
        ("indisvalid", B),
        ("indcheckxmin", B),
        ("indisready", B),
        ("indislive", B),
        ("indisreplident", B),
        ("indkey", V),
        ("indcollation", OV),
        ("indclass", OV),
        ("indoption", V),
        ("indexprs", T),
        ("indpred", T),
    ],
    "pg_constraint": [
        ("oid", OI),
        ("conname", N),
        ("connamespace", OI),
        ("contype", C),
        ("condeferrable", B),
        ("condeferred", B),
        ("convalidated", B),
        ("conrelid", OI),
        ("contypid", OI),
        ("conindid", OI),
        ("conparentid", OI),
        ("confrelid", OI),
        ("confupdtype", C),
        ("confdeltype", C),
        ("confmatchtype", C),
        ("conislocal", B),
        ("coninhcount", I4),
        ("connoinherit", B),
        ("conkey", T),
        ("confkey", T),
        ("conbin", T),
    ],
    "pg_database": [
        ("oid", OI),
        ("datname", N),
        ("datdba", OI),
        ("encoding", I4),
        ("datlocprovider", C),
        ("datistemplate", B),
        ("datallowconn", B),
        ("datconnlimit", I4),
        ("dattablespace", OI),
        ("datcollate", T),
        ("datctype", T),
        ("daticulocale", T),
        ("datcollversion", T),
        ("datacl", A),
    ],
    "pg_roles": [
        ("oid", OI),
        ("rolname", N),
        ("rolsuper", B),
        ("rolinherit", B),
        ("rolcreaterole", B),
        ("rolcreatedb", B),
        ("rolcanlogin", B),
        ("rolreplication", B),
        ("rolconnlimit", I4),
        ("rolpassword", T),
        ("rolvaliduntil", T),
        ("rolbypassrls", B),
        ("rolconfig", A),
    ],
    "pg_user": [
        ("usename", N),
        ("usesysid", OI),
        ("usecreatedb", B),
        ("usesuper", B),
        ("userepl", B),
        ("usebypassrls", B),
        ("passwd", T),
        ("valuntil", T),
        ("useconfig", A),
    ],
    "pg_am": [("oid", OI), ("amname", N), ("amhandler", T), ("amtype", C)],
    "pg_attrdef": [("oid", OI), ("adrelid", OI), ("adnum", I2), ("adbin", T)],
    "pg_description": [("objoid", OI), ("classoid", OI), ("objsubid", I4), ("description", T)],
    "pg_shdescription": [("objoid", OI), ("classoid", OI), ("description", T)],
    "pg_inherits": [
        ("inhrelid", OI),
        ("inhparent", OI),
        ("inhseqno", I4),
        ("inhdetachpending", B),
    ],
    "pg_tablespace": [("oid", OI), ("spcname", N), ("spcowner", OI)],
    "pg_collation": [
        ("oid", OI),
        ("collname", N),
        ("collnamespace", OI),
        ("collprovider", C),
    ],
    "pg_policy": [
        ("oid", OI),
        ("polname", N),
        ("polrelid", OI),
        ("polcmd", C),
        ("polpermissive", B),
        ("polroles", T),
        ("polqual", T),
        ("polwithcheck", T),
    ],
    "pg_statistic_ext": [
        ("oid", OI),
        ("stxrelid", OI),
        ("stxname", N),
        ("stxnamespace", OI),
        ("stxstattarget", I4),
        ("stxkind", T),
    ],
    "pg_publication": [("oid", OI), ("pubname", N), ("puballtables", B)],
    "pg_publication_rel": [
        ("oid", OI),
        ("prpubid", OI),
        ("prrelid", OI),
        ("prqual", T),
        ("prattrs", T),
    ],
    "pg_publication_namespace": [("oid", OI), ("pnpubid", OI), ("pnnspid", OI)],
    "pg_sequence": [
        ("seqrelid", OI),
        ("seqtypid", OI),
        ("seqstart", I8),
        ("seqincrement", I8),
        ("seqmax", I8),
        ("seqmin", I8),
        ("seqcache", I8),
        ("seqcycle", B),
    ],
    "pg_trigger": [
        ("oid", OI),
        ("tgrelid", OI),
        ("tgname", N),
        ("tgenabled", C),
        ("tgisinternal", B),
    ],
    "pg_rewrite": [("oid", OI), ("rulename", N), ("ev_class", OI)],
    "pg_extension": [
        ("oid", OI),
        ("extname", N),
        ("extowner", OI),
        ("extnamespace", OI),
        ("extversion", T),
    ],
    "pg_enum": [("oid", OI), ("enumtypid", OI), ("enumsortorder", F4), ("enumlabel", N)],
    "pg_range": [("rngtypid", OI), ("rngsubtype", OI), ("rngmultitypid", OI)],
    "pg_opclass": [("oid", OI), ("opcmethod", OI), ("opcname", N), ("opcdefault", B)],
    "pg_proc": [
        ("oid", OI),
        ("proname", N),
        ("pronamespace", OI),
        ("prorettype", OI),
        ("prokind", C),
    ],
    "pg_depend": [
        ("classid", OI),
        ("objid", OI),
        ("objsubid", I4),
        ("refclassid", OI),
        ("refobjid", OI),
        ("refobjsubid", I4),
        ("deptype", C),
    ],
    "pg_foreign_table": [("ftrelid", OI), ("ftserver", OI)],
    "pg_partitioned_table": [("partrelid", OI), ("partstrat", C)],
    "pg_matviews": [("schemaname", N), ("matviewname", N), ("matviewowner", N), ("definition", T)],
    "pg_views": [("schemaname", N), ("viewname", N), ("viewowner", N), ("definition", T)],
    "pg_tables": [
        ("schemaname", N),
        ("tablename", N),
        ("tableowner", N),
        ("tablespace", N),
        ("hasindexes", B),
        ("hasrules", B),
        ("hastriggers", B),
        ("rowsecurity", B),
    ],
    "pg_indexes": [
        ("schemaname", N),
        ("tablename", N),
        ("indexname", N),
        ("tablespace", N),
        ("indexdef", T),
    ],
    "pg_settings": [
        ("name", T),
        ("setting", T),
        ("unit", T),
        ("category", T),
        ("short_desc", T),
        ("context", T),
        ("vartype", T),
        ("source", T),
    ],
    "pg_stat_user_tables": [("relid", OI), ("schemaname", N), ("relname", N), ("n_live_tup", I8)],
    "pg_stat_activity": [
        ("datid", OI),
        ("datname", N),
        ("pid", I4),
        ("usename", N),
        ("application_name", T),
        ("state", T),
        ("query", T),
    ],
}
"""``pg_catalog``'s tables and views: name, then (column, type OID) in order."""

INFO_TABLES: dict[str, list[tuple[str, int]]] = {
    "schemata": [
        ("catalog_name", T),
        ("schema_name", T),
        ("schema_owner", T),
    ],
    "tables": [
        ("table_catalog", T),
        ("table_schema", T),
        ("table_name", T),
        ("table_type", T),
        ("self_referencing_column_name", T),
        ("reference_generation", T),
        ("user_defined_type_catalog", T),
        ("user_defined_type_schema", T),
        ("user_defined_type_name", T),
        ("is_insertable_into", T),
        ("is_typed", T),
        ("commit_action", T),
    ],
    "columns": [
        ("table_catalog", T),
        ("table_schema", T),
        ("table_name", T),
        ("column_name", T),
        ("ordinal_position", I4),
        ("column_default", T),
        ("is_nullable", T),
        ("data_type", T),
        ("character_maximum_length", I4),
        ("character_octet_length", I4),
        ("numeric_precision", I4),
        ("numeric_precision_radix", I4),
        ("numeric_scale", I4),
        ("datetime_precision", I4),
        ("udt_catalog", T),
        ("udt_schema", T),
        ("udt_name", T),
        ("is_identity", T),
        ("is_generated", T),
        ("is_updatable", T),
    ],
    "table_constraints": [
        ("constraint_catalog", T),
        ("constraint_schema", T),
        ("constraint_name", T),
        ("table_catalog", T),
        ("table_schema", T),
        ("table_name", T),
        ("constraint_type", T),
        ("is_deferrable", T),
        ("initially_deferred", T),
        ("enforced", T),
    ],
    "key_column_usage": [
        ("constraint_catalog", T),
        ("constraint_schema", T),
        ("constraint_name", T),
        ("table_catalog", T),
        ("table_schema", T),
        ("table_name", T),
        ("column_name", T),
        ("ordinal_position", I4),
        ("position_in_unique_constraint", I4),
    ],
    "referential_constraints": [
        ("constraint_catalog", T),
        ("constraint_schema", T),
        ("constraint_name", T),
        ("unique_constraint_schema", T),
        ("unique_constraint_name", T),
    ],
    "views": [("table_catalog", T), ("table_schema", T), ("table_name", T), ("view_definition", T)],
    "table_privileges": [
        ("grantor", T),
        ("grantee", T),
        ("table_catalog", T),
        ("table_schema", T),
        ("table_name", T),
        ("privilege_type", T),
        ("is_grantable", T),
        ("with_hierarchy", T),
    ],
    "role_table_grants": [
        ("grantor", T),
        ("grantee", T),
        ("table_catalog", T),
        ("table_schema", T),
        ("table_name", T),
        ("privilege_type", T),
        ("is_grantable", T),
        ("with_hierarchy", T),
    ],
    "routines": [
        ("routine_catalog", T),
        ("routine_schema", T),
        ("routine_name", T),
        ("routine_type", T),
    ],
    "sequences": [("sequence_catalog", T), ("sequence_schema", T), ("sequence_name", T)],
}
"""``information_schema``'s views, in the same form."""

DATA_TYPE_NAMES = {
    pgtypes.BOOL: "boolean",
    pgtypes.INT2: "smallint",
    pgtypes.INT4: "integer",
    pgtypes.INT8: "bigint",
    pgtypes.NUMERIC: "numeric",
    pgtypes.FLOAT4: "real",
    pgtypes.FLOAT8: "double precision",
    pgtypes.TEXT: "text",
    pgtypes.BYTEA: "bytea",
    pgtypes.TIMESTAMPTZ: "timestamp with time zone",
    pgtypes.INTERVAL: "interval",
    pgtypes.JSON: "json",
}


@dataclass
class Catalogue:
    """Every catalogue row for one caller, by table name, plus what the functions need."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    info_rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    relations: dict[int, str] = field(default_factory=dict)
    """OID to relation name (tables and indexes)."""
    constraint_defs: dict[int, str] = field(default_factory=dict)
    index_defs: dict[int, str] = field(default_factory=dict)
    index_columns: dict[int, list[str]] = field(default_factory=dict)
    roles: dict[int, str] = field(default_factory=dict)


def _quote(name: str) -> str:
    return name if name.islower() and name.isidentifier() else '"' + name.replace('"', '""') + '"'


def build(
    schema: ModuleSchema,
    tables: Iterable[TableSchema],
    database: str,
    databases: list[str],
    owner_name: str,
    caller_name: str,
    settings: dict[str, str],
) -> Catalogue:
    """The catalogue of ``tables`` (already filtered to what the caller may see)."""
    cat = Catalogue()
    r = {name: [] for name in TABLES}  # type: dict[str, list[tuple[Any, ...]]]
    info = {name: [] for name in INFO_TABLES}  # type: dict[str, list[tuple[Any, ...]]]
    cat.roles = {OWNER_ROLE: owner_name, CALLER_ROLE: caller_name}
    r["pg_namespace"] += [
        (PG_CATALOG_NS, "pg_catalog", OWNER_ROLE, None),
        (PUBLIC_NS, "public", OWNER_ROLE, None),
        (INFORMATION_SCHEMA_NS, "information_schema", OWNER_ROLE, None),
    ]
    for schema_name in ("pg_catalog", "public", "information_schema"):
        info["schemata"].append((database, schema_name, owner_name))
    arrays = {
        element: array
        for array, element in pgtypes.ARRAY_ELEMENTS.items()
        if array not in (pgtypes.INT2VECTOR, pgtypes.OIDVECTOR)
    }
    for oid, name in sorted(pgtypes.TYPE_NAMES.items()):
        size = pgtypes.TYPE_SIZES.get(oid, -1)
        category = "A" if oid in pgtypes.ARRAY_ELEMENTS else _category(oid)
        element = pgtypes.ARRAY_ELEMENTS.get(oid, 0)
        r["pg_type"].append(
            (
                oid,
                name,
                PG_CATALOG_NS,
                OWNER_ROLE,
                size,
                size in (1, 2, 4, 8),
                "b",
                category,
                False,
                True,
                ",",
                0,
                element,
                arrays.get(oid, 0),
                name + "in",
                name + "out",
                name + "recv",
                name + "send",
                "i",
                "p",
                False,
                0,
                -1,
                0,
                100 if oid in (T, N, pgtypes.VARCHAR) else 0,
                None,
            )
        )
    r["pg_am"] += [
        (HEAP_AM, "heap", "heap_tableam_handler", "t"),
        (BTREE_AM, "btree", "bthandler", "i"),
        (HASH_AM, "hash", "hashhandler", "i"),
    ]
    r["pg_tablespace"].append((1663, "pg_default", OWNER_ROLE))
    r["pg_collation"].append((100, "default", PG_CATALOG_NS, "d"))
    for index, name in enumerate(databases):
        r["pg_database"].append(
            (
                16000 + index,
                name,
                OWNER_ROLE,
                6,
                "c",
                False,
                True,
                -1,
                1663,
                "C",
                "C",
                None,
                None,
                None,
            )
        )
    for oid, name in ((OWNER_ROLE, owner_name), (CALLER_ROLE, caller_name)):
        if any(row[1] == name for row in r["pg_roles"]):
            continue
        r["pg_roles"].append(
            (oid, name, False, True, False, False, True, False, -1, "********", None, False, None)
        )
        r["pg_user"].append((name, oid, False, False, False, False, "********", None, None))
    for name, value in sorted(settings.items()):
        r["pg_settings"].append((name, value, None, "", "", "user", "string", "default"))
    oid = FIRST_OID
    for table in sorted(tables, key=lambda t: t.name):
        table_oid = oid
        oid += 1
        cat.relations[table_oid] = table.name
        indexes = _indexes(table)
        r["pg_class"].append(
            (
                table_oid,
                table.name,
                PUBLIC_NS,
                0,
                0,
                OWNER_ROLE,
                HEAP_AM,
                table_oid,
                0,
                0,
                -1.0,
                0,
                0,
                bool(indexes),
                False,
                "p",
                "r",
                len(table.columns),
                0,
                False,
                False,
                False,
                bool(schema.visibility_filters),
                False,
                True,
                "d",
                False,
                0,
                None,
                None,
                None,
            )
        )
        r["pg_tables"].append(
            (
                "public",
                table.name,
                owner_name,
                None,
                bool(indexes),
                False,
                False,
                bool(schema.visibility_filters),
            )
        )
        r["pg_stat_user_tables"].append((table_oid, "public", table.name, 0))
        info["tables"].append(
            (
                database,
                "public",
                table.name,
                "BASE TABLE",
                None,
                None,
                None,
                None,
                None,
                "YES" if caller_name == owner_name else "NO",
                "NO",
                None,
            )
        )
        for privilege in ("SELECT",) + (
            ("INSERT", "UPDATE", "DELETE") if caller_name == owner_name else ()
        ):
            grant = (
                owner_name,
                caller_name,
                database,
                "public",
                table.name,
                privilege,
                "NO",
                "YES",
            )
            info["table_privileges"].append(grant)
            info["role_table_grants"].append(grant)
        position = {}
        for number, column in enumerate(table.columns, start=1):
            position[column.name] = number
            column_type = column.type
            nullable = isinstance(column_type, OptionalType)
            type_oid = pgtypes.oid_of(column_type)
            size = pgtypes.TYPE_SIZES.get(type_oid, -1)
            not_null = not nullable
            has_default = column.auto_inc
            r["pg_attribute"].append(
                (
                    table_oid,
                    column.name,
                    type_oid,
                    -1,
                    size,
                    number,
                    0,
                    -1,
                    -1,
                    size > 0,
                    "i",
                    "p",
                    "",
                    not_null,
                    has_default,
                    False,
                    "",
                    "",
                    False,
                    True,
                    0,
                    100 if type_oid == T else 0,
                    None,
                    None,
                )
            )
            default = None
            if column.auto_inc:
                default = "auto_increment"
                r["pg_attrdef"].append((oid, table_oid, number, default))
                oid += 1
            info["columns"].append(
                (
                    database,
                    "public",
                    table.name,
                    column.name,
                    number,
                    default,
                    "YES" if nullable else "NO",
                    DATA_TYPE_NAMES.get(type_oid, "text"),
                    None,
                    None,
                    _precision(type_oid),
                    2 if _precision(type_oid) else None,
                    0 if type_oid in (I2, I4, I8) else None,
                    6 if type_oid == pgtypes.TIMESTAMPTZ else None,
                    database,
                    "pg_catalog",
                    pgtypes.TYPE_NAMES.get(type_oid, "text"),
                    "NO",
                    "NEVER",
                    "YES" if caller_name == owner_name else "NO",
                )
            )
        for index_name, columns, unique, primary, kind in indexes:
            index_oid = oid
            oid += 1
            cat.relations[index_oid] = index_name
            keys = " ".join(str(position[c]) for c in columns)
            am = HASH_AM if kind == "hash" else BTREE_AM
            r["pg_class"].append(
                (
                    index_oid,
                    index_name,
                    PUBLIC_NS,
                    0,
                    0,
                    OWNER_ROLE,
                    am,
                    index_oid,
                    0,
                    0,
                    -1.0,
                    0,
                    0,
                    False,
                    False,
                    "p",
                    "i",
                    len(columns),
                    0,
                    False,
                    False,
                    False,
                    False,
                    False,
                    True,
                    "n",
                    False,
                    0,
                    None,
                    None,
                    None,
                )
            )
            r["pg_index"].append(
                (
                    index_oid,
                    table_oid,
                    len(columns),
                    len(columns),
                    unique,
                    False,
                    primary,
                    False,
                    True,
                    False,
                    True,
                    False,
                    True,
                    True,
                    False,
                    keys,
                    " ".join("0" for _ in columns),
                    " ".join("0" for _ in columns),
                    " ".join("0" for _ in columns),
                    None,
                    None,
                )
            )
            shown = ", ".join(_quote(c) for c in columns)
            using = "hash" if kind == "hash" else "btree"
            cat.index_defs[index_oid] = (
                f"CREATE {'UNIQUE ' if unique else ''}INDEX {_quote(index_name)} ON "
                f"public.{_quote(table.name)} USING {using} ({shown})"
            )
            cat.index_columns[index_oid] = list(columns)
            r["pg_indexes"].append(
                ("public", table.name, index_name, None, cat.index_defs[index_oid])
            )
            if unique:
                constraint_oid = oid
                oid += 1
                contype = "p" if primary else "u"
                cat.constraint_defs[constraint_oid] = (
                    f"{'PRIMARY KEY' if primary else 'UNIQUE'} ({shown})"
                )
                r["pg_constraint"].append(
                    (
                        constraint_oid,
                        index_name,
                        PUBLIC_NS,
                        contype,
                        False,
                        False,
                        True,
                        table_oid,
                        0,
                        index_oid,
                        0,
                        0,
                        " ",
                        " ",
                        " ",
                        True,
                        0,
                        True,
                        "{" + ",".join(str(position[c]) for c in columns) + "}",
                        None,
                        None,
                    )
                )
                info["table_constraints"].append(
                    (
                        database,
                        "public",
                        index_name,
                        database,
                        "public",
                        table.name,
                        "PRIMARY KEY" if primary else "UNIQUE",
                        "NO",
                        "NO",
                        "YES",
                    )
                )
                for ordinal, column_name in enumerate(columns, start=1):
                    info["key_column_usage"].append(
                        (
                            database,
                            "public",
                            index_name,
                            database,
                            "public",
                            table.name,
                            column_name,
                            ordinal,
                            None,
                        )
                    )
    cat.rows = r
    cat.info_rows = info
    return cat


def _indexes(table: TableSchema) -> list[tuple[str, tuple[str, ...], bool, bool, str]]:
    """(name, columns, unique, primary, kind) of a table's primary key and indexes."""
    found: list[tuple[str, tuple[str, ...], bool, bool, str]] = []
    if table.primary_key:
        found.append((f"{table.name}_pkey", tuple(table.primary_key), True, True, "btree"))
    for index in table.indexes:
        if tuple(index.columns) == tuple(table.primary_key) and index.unique:
            continue
        found.append(
            (
                f"{table.name}_{index.name}_idx"
                if not index.unique
                else f"{table.name}_{index.name}_key",
                tuple(index.columns),
                index.unique,
                False,
                index.kind,
            )
        )
    return found


def _category(oid: int) -> str:
    if oid == B:
        return "B"
    if oid in (I2, I4, I8, OI, pgtypes.FLOAT4, pgtypes.FLOAT8, pgtypes.NUMERIC):
        return "N"
    if oid in (T, N, pgtypes.VARCHAR, C):
        return "S"
    if oid in (pgtypes.TIMESTAMPTZ, pgtypes.TIMESTAMP):
        return "D"
    if oid == pgtypes.INTERVAL:
        return "T"
    if oid == A:
        return "A"
    return "U"


def _precision(oid: int) -> int | None:
    return {I2: 16, I4: 32, I8: 64, pgtypes.FLOAT4: 24, pgtypes.FLOAT8: 53}.get(oid)
