"""The module API: what @table, field, @reducer and the lifecycle decorators declare.

Each test writes a real module file and loads it the way the host does.
"""

import pytest

from cosmictron import SchemaError
from cosmictron.module import load_module

GOOD = """
class Color(enum.Enum):
    RED = 1
    BLUE = 2

@type
class Point:
    x: int
    y: int

@table(name="shape", public=True, indexes=[Index("by_owner_color", ["owner", "color"])])
class Shape:
    id: u64 = field(primary_key=True, auto_inc=True)
    owner: Identity = field(index="hash", default=Identity.zero())
    color: Color = Color.RED
    at: Point = field(default=Point(0, 0))
    tags: list[str] = field(default=[])
    label: Optional[str] = None
    embedding: Vector[4] = field(default=[0.0, 0.0, 0.0, 0.0])
    code: str = field(unique=True, default="")

@table(primary_key=("a", "b"))
class Pair:
    a: int
    b: str
    weight: f32 = 1.0

@reducer
def make(ctx: ReducerContext, color: Color, at: Point, n: u8 = 1) -> Shape:
    return ctx.db.shape.insert(Shape(color=color, at=at))

@init
def start(ctx: ReducerContext) -> None:
    pass
"""


def test_schema_is_plain_data(write_module):
    loaded = load_module(write_module(GOOD))
    schema = loaded.schema.describe()
    shape = next(t for t in schema["tables"] if t["name"] == "shape")
    assert shape["public"] and shape["primary_key"] == ["id"]
    assert [c["name"] for c in shape["columns"]] == [
        "id",
        "owner",
        "color",
        "at",
        "tags",
        "label",
        "embedding",
        "code",
    ]
    kinds = {c["name"]: c["type"] for c in shape["columns"]}
    assert kinds == {
        "id": "u64",
        "owner": "Identity",
        "color": "enum",
        "at": "product",
        "tags": "list",
        "label": "Optional",
        "embedding": "Vector",
        "code": "str",
    }
    indexes = {i["name"]: i for i in shape["indexes"]}
    assert indexes["owner"]["kind"] == "hash" and not indexes["owner"]["unique"]
    assert indexes["code"]["unique"]
    assert indexes["by_owner_color"]["columns"] == ["owner", "color"]
    pair = next(t for t in schema["tables"] if t["name"] == "pair")
    assert pair["primary_key"] == ["a", "b"] and not pair["public"]
    make = next(r for r in schema["reducers"] if r["name"] == "make")
    assert [p["name"] for p in make["params"]] == ["color", "at", "n"]
    assert make["params"][2]["optional"] and make["returns"]["type"] == "product"
    assert "init" in loaded.lifecycle


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("@table\nclass T:\n    x: dict\n", r"table 't' column 'x': .*not a column type"),
        ("@table\nclass T:\n    count: int\n", "cannot be named 'count'"),
        (
            "@table(indexes=[Index('iter', ['x'])])\nclass T:\n    x: int\n",
            r"an index or key column cannot be named 'iter' \(ctx.db.t.iter is the table",
        ),
        (
            "@table\nclass T:\n    accessor: int = field(index='hash')\n",
            "cannot be named 'accessor'",
        ),
        (
            "@table\nclass T:\n    accessor: int = field(primary_key=True)\n",
            "cannot be named 'accessor'",
        ),
        ("@table\nclass T:\n    x: str = field(auto_inc=True)\n", "auto_inc needs an integer"),
        ("@table\nclass T:\n    x: u8 = 300\n", r"default 300 is invalid.*out of range"),
        (
            "@table(indexes=[Index('i', ['nope'])])\nclass T:\n    x: int\n",
            r"index 'i' names unknown columns \['nope'\]",
        ),
        (
            "@table\nclass T:\n    a: int = field(primary_key=True)\n"
            "    b: int = field(primary_key=True)\n",
            "composite key",
        ),
        ("@reducer\ndef r(ctx: ReducerContext, x) -> None: pass\n", "needs a type annotation"),
        ("@reducer\ndef r(ctx: ReducerContext, *x: int) -> None: pass\n", r"\*args"),
        ("@reducer\ndef r() -> None: pass\n", "first argument"),
        (
            "@init\ndef a(ctx: ReducerContext) -> None: pass\n"
            "@init\ndef b(ctx: ReducerContext) -> None: pass\n",
            "two @init",
        ),
        ("@init\ndef a(ctx: ReducerContext, x: int) -> None: pass\n", "takes only the Reducer"),
        (
            "@table(scheduled='tick')\nclass Job:\n    id: int = field(primary_key=True)\n",
            "does not declare",
        ),
        (
            "@table(scheduled='tick')\nclass Job:\n    id: int = field(primary_key=True)\n"
            "@reducer\ndef tick(ctx: ReducerContext, job: Job) -> None: pass\n",
            "scheduled_at: ScheduleAt",
        ),
        (
            "@table(name='t')\nclass A:\n    x: int\n@table(name='t')\nclass B:\n    x: int\n",
            "two tables",
        ),
        ("raise RuntimeError('broken import')\n", "failed to load: RuntimeError: broken import"),
        ("@table\nclass T:\n    x: int = field(index='bitmap')\n", "kind 'bitmap'"),
    ],
)
def test_invalid_modules_are_refused_with_a_specific_message(write_module, source, message):
    with pytest.raises(SchemaError, match=message):
        load_module(write_module(source))


def test_scheduled_table_with_its_reducer_loads(write_module):
    loaded = load_module(
        write_module(
            "@table(scheduled='tick')\nclass Job:\n"
            "    id: int = field(primary_key=True, auto_inc=True)\n"
            "    scheduled_at: ScheduleAt = field(default=ScheduleAt.interval(1))\n"
            "@reducer\ndef tick(ctx: ReducerContext, job: Job) -> None: pass\n"
        )
    )
    assert loaded.schema.table("job").scheduled == "tick"


def test_class_level_methods_need_a_transaction(write_module):
    from cosmictron import InvalidRequest

    loaded = load_module(write_module("@table\nclass T:\n    x: int\n"))
    row_class = loaded.rows["t"].python_class
    with pytest.raises(InvalidRequest, match=r"T.insert\(\) works only inside a reducer"):
        row_class.insert(row_class(x=1))


def test_reducers_cannot_be_called_directly(write_module):
    from cosmictron import InvalidRequest

    loaded = load_module(write_module("@reducer\ndef r(ctx: ReducerContext) -> None: pass\n"))
    with pytest.raises(InvalidRequest, match="call it through Database.call"):
        loaded.namespace.r(None)
