"""The gateway's JSON answer written in one pass is byte for byte Starlette's JSONResponse of
``to_jsonable`` of the same content, and refuses what it refuses."""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from exchange.avro.jsoncodec import answer_json, to_jsonable
from exchange.gateway.api import RecordJSONResponse

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.binary(max_size=20)
    | st.dates()
    | st.datetimes(timezones=st.none() | st.just(dt.UTC) | st.timezones())
    | st.decimals(allow_nan=False, allow_infinity=False, places=2)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


# 150 examples: 3.4 s (400 took 14 s of the suite; HYPOTHESIS_PROFILE does not apply here)
@settings(max_examples=150, deadline=None)
@given(record=st.dictionaries(st.text(max_size=12), _values, max_size=8))
def test_an_answer_is_the_bytes_of_jsonresponse_of_to_jsonable(record: dict[str, Any]) -> None:
    content = {"resource": "population_basic", "record": record, "masked": {"name": "surname"}}
    expected = JSONResponse(to_jsonable(content)).body
    assert answer_json(content) == expected
    assert RecordJSONResponse(content).body == expected


def test_the_avro_values_of_a_record_are_written_as_to_jsonable_writes_them() -> None:
    record = {
        "name": "李*",
        "birth_date": dt.date(1946, 8, 17),
        "updated_at": dt.datetime(2026, 5, 28, 4, 26, 19, 46000, tzinfo=dt.UTC),
        "naive": dt.datetime(2026, 5, 28, 4, 26, 19),
        "amount": decimal.Decimal("12.30"),
        "photo": b"\x00\xff",
    }
    assert (
        answer_json(record)
        == (
            '{"name":"李*","birth_date":"1946-08-17","updated_at":"2026-05-28T12:26:19.046+08:00",'
            '"naive":"2026-05-28T12:26:19.000+08:00","amount":"12.30","photo":"AP8="}'
        ).encode()
    )


@pytest.mark.parametrize("bad", [math.nan, math.inf, {1, 2}, object()])
def test_what_jsonresponse_refuses_is_refused(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)) as starlette:
        JSONResponse(to_jsonable({"v": bad}))
    with pytest.raises(starlette.type):
        answer_json({"v": bad})
