"""The compiled row encoder writes exactly fastavro's bytes, and names the field that fails."""

from __future__ import annotations

import io
from typing import Any

import fastavro
import pytest

from connectors.row_encoder import FieldStep, RowFailed, compile_row

ENUM = {"type": "enum", "name": "Status", "symbols": ["ACTIVE", "REVOKED", "MOVED_OUT"]}
FIELDS: list[tuple[str, Any]] = [
    ("code", "string"),
    ("name", {"type": "string"}),
    ("note", ["null", "string"]),
    ("late", ["string", "null"]),
    ("flag", "boolean"),
    ("small", "int"),
    ("big", "long"),
    ("maybe", ["null", "long"]),
    ("ratio", "float"),
    ("precise", "double"),
    ("blob", "bytes"),
    ("status", ENUM),
    ("gone", ["null", {**ENUM, "name": "Former"}]),
    ("nothing", "null"),
]
SCHEMA = {"type": "record", "name": "R", "fields": [{"name": n, "type": t} for n, t in FIELDS]}
VALUES: list[dict[str, Any]] = [
    {
        "code": "91330106MA2K3X4Y5Z",
        "name": "杭州市西湖区某某科技有限公司",
        "note": None,
        "late": "x",
        "flag": True,
        "small": 0,
        "big": -1,
        "maybe": None,
        "ratio": 1.5,
        "precise": -2.25e100,
        "blob": b"\x00\xff",
        "status": "REVOKED",
        "gone": None,
        "nothing": None,
    },
    {
        "code": "",
        "name": "长" * 20_000,  # a length over the varints looked up
        "note": "备注",
        "late": None,
        "flag": False,
        "small": -(2**31),
        "big": 2**63 - 1,
        "maybe": -(2**63),
        "ratio": -0.0,
        "precise": 0.1,
        "blob": b"",
        "status": "MOVED_OUT",
        "gone": "ACTIVE",
        "nothing": None,
    },
    {**{n: None for n, _ in FIELDS}, "code": "k", "name": "n", "late": None, "flag": True}
    | {"small": 16383, "big": 16384, "maybe": 8191, "ratio": 3.0, "precise": 1e-300}
    | {"blob": b"x" * 70_000, "status": "ACTIVE"},
]


def steps(**changes: Any) -> list[FieldStep]:
    out = []
    for i, (name, t) in enumerate(FIELDS):
        nullable = isinstance(t, list) or t == "null"
        given = {"convert": lambda v: v, **changes.get(name, {})}
        out.append(FieldStep(name, i, nullable, avro_type=t, **given))
    return out


def fastavro_bytes(record: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(SCHEMA), record)
    return buf.getvalue()


@pytest.mark.parametrize("record", VALUES, ids=["plain", "extremes", "nulls-and-boundaries"])
def test_the_same_bytes_as_fastavro(record: dict[str, Any]) -> None:
    encode = compile_row(steps(), "code")
    assert encode is not None
    key, body = encode(tuple(record[n] for n, _ in FIELDS))
    assert key == record["code"]
    assert body == fastavro_bytes(record)


def test_converters_checks_and_primitives_run_in_order() -> None:
    changed = {
        "small": {"convert": int},
        "big": {"convert": int, "primitive": lambda v: v * 1000},
        "code": {"convert": str.strip},
    }
    encode = compile_row(steps(**changed), "code")
    assert encode is not None
    row = list(VALUES[0][n] for n, _ in FIELDS)
    row[0], row[5], row[6] = "  K1 ", "7", "2"
    key, body = encode(tuple(row))
    assert key == "K1"
    assert body == fastavro_bytes({**VALUES[0], "code": "K1", "small": 7, "big": 2000})


def test_a_failure_names_its_field() -> None:
    encode = compile_row(steps(), "code")
    assert encode is not None
    row = [VALUES[0][n] for n, _ in FIELDS]
    row[1] = None  # "name" is not nullable
    with pytest.raises(RowFailed) as failed:
        encode(tuple(row))
    assert (failed.value.step, "not nullable" in str(failed.value)) == (1, True)

    row = [VALUES[0][n] for n, _ in FIELDS]
    row[6] = 2**64  # out of a long's range
    with pytest.raises(RowFailed) as failed:
        encode(tuple(row))
    assert failed.value.step == 6
    assert "out of range" in str(failed.value)


def test_a_check_refuses_a_value_of_the_wrong_type() -> None:
    encode = compile_row(steps(small={"check": fastavro.parse_schema("int")}), "code")
    assert encode is not None
    row = [VALUES[0][n] for n, _ in FIELDS]
    row[5] = "seven"
    with pytest.raises(RowFailed) as failed:
        encode(tuple(row))
    assert failed.value.step == 5
    assert "'seven' is not a valid" in str(failed.value)


def test_a_default_fills_a_field_without_a_column() -> None:
    all_steps = steps()
    all_steps[2] = FieldStep("note", -1, True, lambda v: v, ["null", "string"], default=None)
    encode = compile_row(all_steps, "code")
    assert encode is not None
    row = [VALUES[1][n] for n, _ in FIELDS]
    assert encode(tuple(row))[1] == fastavro_bytes({**VALUES[1], "note": None})


@pytest.mark.parametrize(
    "shape",
    [
        {"type": "array", "items": "string"},
        {"type": "map", "values": "long"},
        {"type": "fixed", "name": "F", "size": 4},
        ["null", "string", "long"],
    ],
)
def test_other_shapes_keep_the_general_path(shape: Any) -> None:
    assert compile_row([FieldStep("x", 0, False, lambda v: v, shape)], "x") is None


def test_a_value_of_the_kept_class_skips_the_converter_and_no_other_does() -> None:
    import datetime as dt

    calls: list[Any] = []

    def to_date(v: Any) -> Any:
        calls.append(v)
        if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
            return v
        raise ValueError(f"{v!r} is not a date")

    step = FieldStep(
        "day", 0, False, to_date, "int", primitive=lambda d: d.toordinal(), kept=dt.date
    )
    encode = compile_row([step], "day")
    assert encode is not None
    encode((dt.date(2026, 11, 30),))
    assert calls == []
    with pytest.raises(RowFailed, match="is not a date"):
        encode((dt.datetime(2026, 11, 30, 8, 0),))  # a subclass of date: converted, refused
    assert len(calls) == 1
