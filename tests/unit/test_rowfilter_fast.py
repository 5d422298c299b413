"""Row filters evaluated in Python give exactly what CEL gives, on any value."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

import cel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.enforce import rowfilter
from exchange.enforce.rowfilter import compile_filter
from exchange.enforce.rowfilter_fast import fast_matcher

FIELDS = frozenset({"a", "b", "c"})

_int_literals = st.one_of(
    st.integers(-1000, 1000),
    st.sampled_from([0, 2**53, 2**53 + 1, -(2**53) - 1, 2**62, -(2**63)]),
).map(str)
_double_literals = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.sampled_from(["0.0", "-0.0", "1e3", "2.5E-3", "9007199254740993.0"]),
)
_string_literals = st.sampled_from(['"a"', "'b'", '"330100"', '"杭州市"', '""', '"2000-01-01"'])
_literals = st.one_of(_int_literals, _double_literals, _string_literals, st.just("null"))
_clauses = st.builds(
    lambda name, op, lit: f"{name} {op} {lit}",
    st.sampled_from(sorted(FIELDS)),
    st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    _literals,
)
_filters = st.builds(
    lambda clauses, joiner: joiner.join(clauses),
    st.lists(_clauses, min_size=1, max_size=3),
    st.sampled_from([" && ", " || ", "&&", "||"]),
)
_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(-1000, 1000),
    st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1000, 1000),
    st.text(max_size=4),
    st.sampled_from(["a", "b", "330100", "杭州市", "2000-01-01", "1999-12-31"]),
    st.decimals(-1000, 1000, places=2, allow_nan=False),
    st.dates(dt.date(1990, 1, 1), dt.date(2010, 1, 1)),
)


def _cel_result(expression: str, record: Mapping[str, Any]) -> bool:
    context = {k: rowfilter.to_cel(v) for k, v in record.items()}
    try:
        return cel.compile(expression).execute(context) is True
    except Exception:
        return False


@settings(max_examples=1500, deadline=None)
@given(_filters, st.fixed_dictionaries({"a": _values, "b": _values, "c": _values}))
def test_python_evaluation_agrees_with_cel(expression: str, record: dict[str, Any]) -> None:
    f = compile_filter(expression, FIELDS)
    assert f.matches(record) is _cel_result(expression, record), (expression, record)


@pytest.mark.parametrize(
    ("expression", "record", "expected"),
    [
        ("a > 5", {"a": 7}, True),
        ("a >= 1.5 && b == 'x'", {"a": 2, "b": "x"}, True),
        ('a == "330100" || a == "330200"', {"a": "330200"}, True),
        ("a == null", {"a": 3}, False),
        ("a != null && b < -3", {"a": "", "b": -3.5}, True),
        ("a>=1e3&&a<2.5E4", {"a": decimal.Decimal("25000.00")}, False),
        ('a >= "2000-01-01"', {"a": dt.date(1999, 12, 31)}, False),
    ],
)
def test_common_filters_are_evaluated_in_python(
    expression: str, record: dict[str, Any], expected: bool
) -> None:
    def refuse(record: Mapping[str, Any]) -> bool:
        raise AssertionError("CEL asked for a value Python compares")

    match = fast_matcher(expression, FIELDS, rowfilter._CONVERTERS.get, refuse)
    assert match is not None
    assert match(record) is expected
    assert _cel_result(expression, record) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "a.startsWith('33')",
        "a > 5 && b == 1 || c == 2",  # mixed operators: precedence left to CEL
        "(a > 5)",
        "a in [1, 2]",
        "a > 5u",
        'a == "x\\"y"',
        "a < null",
        "d > 5",  # not a field
        "a + 1 > 5",
    ],
)
def test_other_filters_are_left_to_cel(expression: str) -> None:
    assert fast_matcher(expression, FIELDS, rowfilter._CONVERTERS.get, lambda r: False) is None


def test_values_python_does_not_compare_go_to_cel() -> None:
    asked: list[Mapping[str, Any]] = []

    def cel_match(record: Mapping[str, Any]) -> bool:
        asked.append(record)
        return False

    match = fast_matcher("a > 1.5", FIELDS, rowfilter._CONVERTERS.get, cel_match)
    assert match is not None
    assert match({"a": decimal.Decimal("2.5")}) is True  # a decimal is a double to CEL
    assert not asked
    for odd in (float("nan"), True, 2**60, "2", None):
        match({"a": odd})
    assert len(asked) == 5
    assert match({}) is False  # a missing field: CEL's error, fail closed
