"""The compiled row reader gives exactly fastavro's values, and refuses what fastavro refuses."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from exchange.avro import wire
from exchange.avro.row_reader import compile_reader, fastavro_reader
from exchange.dev import sample
from exchange.errors import DecodeError

ENUM = {"type": "enum", "name": "Status", "symbols": ["ACTIVE", "REVOKED", "MOVED_OUT"]}
MONEY = {"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}
DATE = {"type": "int", "logicalType": "date"}
MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
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
    ("again", "Status"),  # a named type referred to by name
    ("gone", ["null", {**ENUM, "name": "Former"}]),
    ("nothing", "null"),
    ("capital", MONEY),
    ("rate", ["null", {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 4}]),
    ("born", DATE),
    ("ends", ["null", DATE]),
    ("updated", MILLIS),
    ("seen", ["null", MICROS]),
]
SCHEMA = {"type": "record", "name": "R", "fields": [{"name": n, "type": t} for n, t in FIELDS]}
UTC = dt.UTC
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
        "again": "ACTIVE",
        "gone": None,
        "nothing": None,
        "capital": decimal.Decimal("16250522.05"),
        "rate": None,
        "born": dt.date(2022, 2, 21),
        "ends": None,
        "updated": dt.datetime(2026, 6, 27, 8, 34, 14, 793000, tzinfo=UTC),
        "seen": None,
    },
    {
        "code": "",
        "name": "长" * 20_000,  # a length over the two-byte varints read inline
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
        "again": "MOVED_OUT",
        "gone": "ACTIVE",
        "nothing": None,
        "capital": decimal.Decimal("-9999999999999999.99"),
        "rate": decimal.Decimal("0.0001"),
        "born": dt.date(1, 1, 1),
        "ends": dt.date(9999, 12, 31),
        "updated": dt.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),  # negative millis
        "seen": dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    },
    {
        **{n: None for n, _ in FIELDS},
        "code": "a" * 100,
        "name": "b",
        "late": "",
        "flag": True,
        "small": 2**31 - 1,
        "big": 64,
        "maybe": 8191,
        "ratio": 3.4e38,
        "precise": float("inf"),
        "blob": bytes(range(256)) * 40,
        "status": "ACTIVE",
        "again": "REVOKED",
        "capital": decimal.Decimal("0.00"),
        "born": dt.date(1970, 1, 1),
        "updated": dt.datetime(1970, 1, 1, tzinfo=UTC),
        "seen": dt.datetime(1960, 5, 4, 3, 2, 1, 123456, tzinfo=UTC),
    },
]
PARSED = fastavro.parse_schema(SCHEMA)
NAMES = [n for n, _ in FIELDS]


def body(record: dict[str, Any]) -> bytes:
    return wire.encode(PARSED, record)


def fastavro_values(data: bytes) -> tuple[Any, ...]:
    record = wire.decode(PARSED, data)
    return tuple(record[n] for n in NAMES)


@pytest.mark.parametrize("record", VALUES, ids=["typical", "extremes", "mostly-null"])
def test_every_field_type_reads_as_fastavro_reads_it(record: dict[str, Any]) -> None:
    read = compile_reader(SCHEMA, NAMES)
    assert read is not None
    data = body(record)
    got = read(data, 0, ())
    assert got == fastavro_values(data)
    assert [type(v) for v in got] == [type(v) for v in fastavro_values(data)]
    assert got[NAMES.index("capital")].as_tuple() == record["capital"].as_tuple()  # the scale


def test_the_body_may_start_after_a_header_and_a_prefix_comes_first() -> None:
    read = compile_reader(SCHEMA, NAMES)
    assert read is not None
    data = body(VALUES[0])
    got = read(wire.frame(7, data), wire.HEADER_SIZE, ("key", 3))
    assert got == ("key", 3, *fastavro_values(data))


def test_columns_in_their_own_order_missing_ones_none_converters_applied() -> None:
    read = compile_reader(
        SCHEMA, ["updated", "code", "added_later", "born"], {"updated": lambda v: v.isoformat()}
    )
    assert read is not None
    got = read(body(VALUES[0]), 0, ())
    assert got == (
        "2026-06-27T08:34:14.793000+00:00",
        "91330106MA2K3X4Y5Z",
        None,
        VALUES[0]["born"],
    )


@pytest.mark.parametrize(
    "field_type",
    [
        {"type": "array", "items": "string"},
        {"type": "map", "values": "long"},
        {"type": "record", "name": "Inner", "fields": [{"name": "x", "type": "int"}]},
        {"type": "fixed", "name": "F", "size": 4},
        {"type": "string", "logicalType": "uuid"},
        {"type": "int", "logicalType": "time-millis"},
        "Unknown",
    ],
)
def test_types_not_written_out_give_none_for_the_fastavro_path(field_type: Any) -> None:
    schema = {"type": "record", "name": "X", "fields": [{"name": "f", "type": field_type}]}
    assert compile_reader(schema, ["f"]) is None


def _refusals() -> list[tuple[str, bytes]]:
    """Malformed bodies: (what is wrong, the bytes)."""
    good = body(VALUES[0])
    return [
        ("cut short", good[:-3]),
        ("cut in a string", good[:5]),
        ("bytes left over", good + b"\x00"),
        ("empty", b""),
    ]


@pytest.mark.parametrize("case", _refusals(), ids=lambda c: c[0])
def test_malformed_bodies_are_refused_as_fastavro_refuses_them(case: tuple[str, bytes]) -> None:
    _, data = case
    read = compile_reader(SCHEMA, NAMES)
    assert read is not None
    with pytest.raises(DecodeError) as fastavro_says:
        fastavro_values(data)
    with pytest.raises(DecodeError) as compiled_says:
        read(data, 0, ())
    if "left over" in str(fastavro_says.value):
        assert str(compiled_says.value) == str(fastavro_says.value)
    else:
        assert str(compiled_says.value).startswith("Avro body does not match its schema: ")


LONG = fastavro.parse_schema(
    {"type": "record", "name": "L", "fields": [{"name": "n", "type": "long"}]}
)


def fastavro_long(n: int) -> bytes:
    """The Avro encoding of ``n`` as a long, by fastavro."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, LONG, {"n": n})
    return buf.getvalue()


SMALL = {
    "type": "record",
    "name": "S",
    "fields": [
        {"name": "s", "type": ["null", "string"]},
        {"name": "e", "type": ENUM},
        {"name": "d", "type": DATE},
        {"name": "t", "type": MILLIS},
    ],
}


def small(s: bytes, e: bytes = b"\x00", d: bytes = b"\x00", t: bytes = b"\x00") -> bytes:
    return s + e + d + t


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (small(b"\x04"), "union index 2 out of range"),
        (small(b"\x01"), "union index -1 out of range"),
        (small(b"\x00", e=b"\x06"), "enum index 3 out of range"),
        (small(b"\x02\x04\xff\xfe"), "a string is not valid UTF-8"),
        (small(b"\x02\x03"), "a length runs past the end of the record"),  # length -2
        (small(b"\x02\x7e"), "a length runs past the end of the record"),
        (small(b"\x00", d=fastavro_long(3_000_000)), "year"),
        (small(b"\x00", t=fastavro_long(2**62)), ""),
    ],
)
def test_each_check_names_what_is_wrong(data: bytes, reason: str) -> None:
    read = compile_reader(SMALL, ["s", "e", "d", "t"])
    assert read is not None
    parsed = fastavro.parse_schema(SMALL)
    with pytest.raises(DecodeError):
        wire.decode(parsed, data)  # fastavro refuses it too
    with pytest.raises(DecodeError, match=r"^Avro body does not match its schema: ") as says:
        read(data, 0, ())
    assert reason in str(says.value)


def test_a_boolean_byte_other_than_0_or_1_is_refused() -> None:
    schema = {"type": "record", "name": "B", "fields": [{"name": "b", "type": "boolean"}]}
    read = compile_reader(schema, ["b"])
    assert read is not None
    assert read(b"\x01", 0, ()) == (True,)
    with pytest.raises(DecodeError, match="boolean byte 2 is neither 0 nor 1"):
        read(b"\x02", 0, ())


def test_a_varint_longer_than_ten_bytes_is_refused() -> None:
    schema = {"type": "record", "name": "L", "fields": [{"name": "n", "type": "long"}]}
    read = compile_reader(schema, ["n"])
    assert read is not None
    with pytest.raises(DecodeError, match="varint longer than 10 bytes"):
        read(b"\xff" * 11 + b"\x01", 0, ())


def test_the_fastavro_reader_gives_the_same_rows_and_reads_what_is_not_compiled() -> None:
    data = body(VALUES[1])
    compiled = compile_reader(SCHEMA, NAMES)
    assert compiled is not None
    plan = [(n, None) for n in NAMES]
    assert fastavro_reader(PARSED, plan)(b"xx" + data, 2, ("k",)) == compiled(
        b"xx" + data, 2, ("k",)
    )
    nested = {
        "type": "record",
        "name": "N",
        "fields": [
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "n", "type": "long"},
        ],
    }
    assert compile_reader(nested, ["tags", "n"]) is None
    parsed = fastavro.parse_schema(nested)
    read = fastavro_reader(parsed, [("n", None), ("tags", json.dumps), ("absent", None)])
    assert read(wire.encode(parsed, {"tags": ["a", "乙"], "n": 5}), 0, ()) == (
        5,
        '["a", "\\u4e59"]',
        None,
    )
    with pytest.raises(DecodeError, match="bytes left over"):
        read(wire.encode(parsed, {"tags": [], "n": 5}) + b"\x00", 0, ())


SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas" / "avro").glob("*.avsc"))


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_every_resource_of_the_catalog_is_compiled_and_reads_as_fastavro(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    names = [f["name"] for f in schema["fields"]]
    read = compile_reader(schema, names)
    assert read is not None, f"{path.name} falls back to fastavro"
    parsed = fastavro.parse_schema(schema)
    for record in sample.generate(schema, 100, seed=3):
        data = wire.encode(parsed, record)
        decoded = wire.decode(parsed, data)
        assert read(data, 0, ()) == tuple(decoded[n] for n in names)
