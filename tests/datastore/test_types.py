"""Column types: every DESIGN.md §2 type checks values, and round-trips through the wire.

Hypothesis draws values of each type; encode -> msgpack -> decode must give back the
canonical value, and the Python form must check back to the same canonical value.
"""

import enum
import math

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from cosmictron import ConnectionId, Identity, ScheduleAt, TimeDuration, Timestamp, Vector
from cosmictron.datastore import types as t
from cosmictron.datastore.types import TypeMismatch
from cosmictron.module.annotations import column_type_for


class Color(enum.Enum):
    RED = 1
    GREEN = 2


def roundtrip(column_type, value):
    canonical = column_type.check(value)
    wire = msgpack.unpackb(msgpack.packb(column_type.encode(canonical), use_bin_type=True))
    assert column_type.decode(wire) == canonical
    assert column_type.check(column_type.to_python(canonical)) == canonical
    return canonical


@pytest.mark.parametrize("name", sorted(t.INTEGERS))
def test_integer_bounds_are_enforced(name):
    column_type = t.INTEGERS[name]
    assert roundtrip(column_type, column_type.low) == column_type.low
    assert roundtrip(column_type, column_type.high) == column_type.high
    with pytest.raises(TypeMismatch, match="out of range"):
        column_type.check(column_type.high + 1)
    with pytest.raises(TypeMismatch, match="out of range"):
        column_type.check(column_type.low - 1)


@given(st.integers(min_value=-(2**127), max_value=2**127 - 1))
def test_i128_roundtrip(value):
    roundtrip(t.INTEGERS["i128"], value)


@given(st.integers(min_value=0, max_value=2**128 - 1))
def test_u128_roundtrip(value):
    roundtrip(t.INTEGERS["u128"], value)


def test_bool_is_not_an_integer_and_strings_are_not_numbers():
    with pytest.raises(TypeMismatch, match="expected i64, got true"):
        t.I64.check(True)
    with pytest.raises(TypeMismatch, match="expected f64"):
        t.F64.check("1.5")
    with pytest.raises(TypeMismatch, match="expected str"):
        t.STR.check(b"x")
    assert t.F64.check(3) == 3.0 and type(t.F64.check(3)) is float


def test_f32_rounds_and_rejects_overflow():
    assert t.F32.check(0.1) != 0.1
    assert math.isclose(t.F32.check(0.1), 0.1, rel_tol=1e-7)
    with pytest.raises(TypeMismatch, match="float32"):
        t.F32.check(1e300)


FINITE = st.floats(allow_nan=False, allow_infinity=False)


@given(st.binary(max_size=64), st.text(max_size=64), FINITE)
def test_plain_types_roundtrip(data, text, number):
    roundtrip(t.BYTES, data)
    roundtrip(t.STR, text)
    roundtrip(t.F64, number)


@given(
    st.binary(min_size=32, max_size=32), st.integers(0, 2**128 - 1), st.integers(-(2**62), 2**62)
)
def test_special_scalars_roundtrip(identity, connection, micros):
    roundtrip(t.IDENTITY, Identity(identity))
    roundtrip(t.CONNECTION_ID, ConnectionId(connection))
    roundtrip(t.TIMESTAMP, Timestamp(micros))
    roundtrip(t.TIME_DURATION, TimeDuration(micros))
    roundtrip(t.SCHEDULE_AT, ScheduleAt.at(Timestamp(micros)))


def test_composite_types_roundtrip():
    optional = column_type_for(int | None, "x")
    assert roundtrip(optional, None) is None and roundtrip(optional, 5) == 5
    listed = column_type_for(list[str], "x")
    assert roundtrip(listed, ["a", "b"]) == ("a", "b")
    assert listed.to_python(("a",)) == ["a"]
    colors = column_type_for(Color, "x")
    assert roundtrip(colors, Color.RED) == "RED"
    assert colors.to_python("GREEN") is Color.GREEN
    with pytest.raises(TypeMismatch, match="one of RED, GREEN"):
        colors.check("BLUE")
    vector = column_type_for(Vector[3], "x")
    assert roundtrip(vector, [1.0, 2.5, -3.0]) == (1.0, 2.5, -3.0)
    with pytest.raises(TypeMismatch, match="has 2 components"):
        vector.check([1.0, 2.0])


def test_nested_type_roundtrip():
    import cosmictron

    @cosmictron.type
    class Point:
        x: int
        y: float
        tags: list[str]

    point_type = column_type_for(Point, "x")
    canonical = roundtrip(point_type, Point(1, 2.0, ["a"]))
    assert canonical == (1, 2.0, ("a",))
    assert point_type.to_python(canonical) == Point(1, 2.0, ["a"])
    with pytest.raises(TypeMismatch, match="field"):
        point_type.check(Point("no", 2.0, []))


def test_unknown_annotation_is_a_schema_error():
    from cosmictron import SchemaError

    with pytest.raises(SchemaError, match=r"table 't' column 'c': .*dict"):
        column_type_for(dict, "table 't' column 'c'")
    with pytest.raises(SchemaError, match="only Optional"):
        column_type_for(int | str, "x")


SCALAR_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=5),
    st.booleans(),
    st.binary(max_size=5),
    st.none(),
)


@given(st.lists(SCALAR_VALUES, min_size=6, max_size=6))
def test_compiled_checker_agrees_with_per_column_checks(values):
    from cosmictron.datastore.checker import compile_checker

    column_types = [t.I64, t.INTEGERS["u8"], t.STR, t.F64, t.BOOL, t.OptionalType(t.BYTES)]
    checker = compile_checker(column_types)
    try:
        expected = tuple(c.check(v) for c, v in zip(column_types, values, strict=True))
    except TypeMismatch:
        with pytest.raises(TypeMismatch):
            checker(values)
    else:
        assert checker(values) == expected


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 10**400])
def test_non_finite_floats_are_refused_with_a_hint(value):
    """Neither NaN nor an infinity has a JSON form (docs/reference/column-types.md)."""
    with pytest.raises(TypeMismatch, match="not finite: NaN and the infinities are not stored"):
        t.F64.check(value)
    with pytest.raises(TypeMismatch, match="not finite"):
        t.F32.check(value)
    with pytest.raises(TypeMismatch, match="not finite"):
        column_type_for(Vector[2], "x").check([1.0, float(value) if value != 10**400 else 1e308])
    from cosmictron.datastore.checker import compile_checker

    with pytest.raises(TypeMismatch, match="not finite"):
        compile_checker([t.F64])((value,))
    assert t.F64.check(-0.0) == 0.0 and str(t.F64.check(-0.0)) == "-0.0"


class _IntSubclass(int):
    """An int subclass: the checkers pass it to ``check``, which makes it a plain int."""


WIDE_VALUES = st.one_of(
    SCALAR_VALUES,
    st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**127]),
    st.integers(min_value=-5, max_value=300).map(_IntSubclass),
    st.sampled_from([float("nan"), float("inf"), -0.0, True, False]),
)
WIDE_TYPES = [
    t.I64,
    t.INTEGERS["u64"],
    t.INTEGERS["i128"],
    t.INTEGERS["u8"],
    t.STR,
    t.F64,
    t.F32,
    t.BOOL,
    t.OptionalType(t.I64),
]


def _outcome(checker, values):
    try:
        return "ok", checker(values)
    except TypeMismatch as exc:
        return "TypeMismatch", str(exc)
    except ValueError:
        return "ValueError", None


FITTING = [  # one strategy of values each column of WIDE_TYPES accepts
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=-(2**127), max_value=2**127 - 1),
    st.integers(min_value=0, max_value=255),
    st.text(max_size=5),
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(width=32, allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1)),
]
ROWS = st.one_of(
    st.tuples(*FITTING).map(list),  # every value fits: the checked row itself
    st.tuples(*(st.one_of(fit, fit, WIDE_VALUES) for fit in FITTING)).map(list),
    st.lists(WIDE_VALUES, min_size=8, max_size=10),  # mostly a wrong count
)


@given(ROWS, st.sampled_from([tuple, list, iter]))
def test_compiled_and_generated_checkers_agree(values, container):
    """``_rows.RowChecker`` (built) and the generated function give equal rows, of the same
    types, and the same errors, for every width edge, a subclass, and a wrong count."""
    from cosmictron.datastore.checker import _RowChecker, compile_checker

    if _RowChecker is None:
        pytest.skip("the compiled checker is not built here (COSMICTRON_PURE=1 or no compiler)")
    compiled = compile_checker(WIDE_TYPES[:9])
    generated = compile_checker(WIDE_TYPES[:9], compiled=False)
    assert type(compiled) is _RowChecker and type(generated) is not _RowChecker
    got = _outcome(compiled, container(values))
    expected = _outcome(generated, container(values))
    assert got == expected
    if got[0] == "ok":
        assert type(got[1]) is tuple and [type(v) for v in got[1]] == [type(v) for v in expected[1]]
