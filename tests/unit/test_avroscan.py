"""Byte-slice projection must give exactly what decoding and re-encoding gives."""

from __future__ import annotations

import datetime as dt
import decimal
import io
import json
from pathlib import Path

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.avro.scan import LazyRecord, compile_projection, project, scanner_for, zigzag
from exchange.dev import sample
from exchange.enforce.masks import compile_mask, parse_mask
from exchange.errors import DecodeError

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas" / "avro").glob("*.avsc"))


def load(path: Path) -> dict:  # type: ignore[type-arg]
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_every_field_decodes_like_fastavro(path: Path) -> None:
    schema = load(path)
    parsed = avro.parse(schema)
    scanner = scanner_for(schema)
    assert scanner is not None
    for record in sample.generate(schema, 200, seed=3):
        body = wire.encode(parsed, record)
        offsets = scanner.offsets(body)
        lazy = LazyRecord(scanner, body, offsets)
        assert dict(lazy) == wire.decode(parsed, body)


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_projection_equals_reencoding_the_projected_record(path: Path) -> None:
    schema = load(path)
    parsed = avro.parse(schema)
    scanner = scanner_for(schema)
    assert scanner is not None
    names = [f["name"] for f in schema["fields"]]
    keep = names[::2]
    view = {**schema, "fields": [f for f in schema["fields"] if f["name"] in keep]}
    view_parsed = avro.parse(view)
    plan = [(n, names.index(n), None, False) for n in keep]
    for record in sample.generate(schema, 100, seed=4):
        body = wire.encode(parsed, record)
        offsets = scanner.offsets(body)
        out = project(body, offsets, LazyRecord(scanner, body, offsets), plan)
        assert out == wire.encode(view_parsed, {n: record[n] for n in keep})


def test_masked_fields_are_encoded_as_strings() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "born", "type": {"type": "int", "logicalType": "date"}},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
    view = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "born", "type": "string"},
            {"name": "note", "type": ["null", "string"], "default": None},
        ],
    }
    scanner = scanner_for(schema)
    assert scanner is not None
    keep = compile_mask(parse_mask("keep:2:2"), b"k" * 32)
    year = compile_mask(parse_mask("year"), b"k" * 32)
    plan = [("id", 0, keep, False), ("born", 1, year, False), ("note", 2, keep, True)]
    for note in (None, "备注内容很长"):
        record = {"id": "330102199001011234", "born": dt.date(1990, 1, 1), "note": note}
        body = wire.encode(avro.parse(schema), record)
        offsets = scanner.offsets(body)
        out = project(body, offsets, LazyRecord(scanner, body, offsets), plan)
        expected = {"id": keep(record["id"]), "born": "1990", "note": keep(note)}
        assert wire.decode(avro.parse(view), out) == expected


@pytest.mark.parametrize(
    "body",
    [b"", b"\x02", b"\x80\x80", b"\x06ab", b"\x04\xff\xfe" + b"\x00", b"\x02a\x00\x00\x00"],
    ids=[
        "empty",
        "truncated-string",
        "truncated-varint",
        "length-past-end",
        "bad-utf8",
        "left-over",
    ],
)
def test_malformed_bodies_are_refused(body: bytes) -> None:
    scanner = scanner_for(
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "s", "type": "string"}, {"name": "n", "type": "int"}],
        }
    )
    assert scanner is not None
    with pytest.raises(DecodeError):
        scanner.offsets(body)


def test_out_of_range_union_and_enum_indexes_are_refused() -> None:
    scanner = scanner_for(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "u", "type": ["null", "string"]},
                {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            ],
        }
    )
    assert scanner is not None
    with pytest.raises(DecodeError, match="union index"):
        scanner.offsets(zigzag(2) + zigzag(0))
    with pytest.raises(DecodeError, match="enum index"):
        scanner.offsets(zigzag(0) + zigzag(5))


def test_nested_types_are_not_scanned() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "tags", "type": {"type": "array", "items": "string"}}],
    }
    assert scanner_for(schema) is None


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(-(2**63), 2**63 - 1),
    d=st.decimals(min_value=-(10**10), max_value=10**10, places=2, allow_nan=False),
    f=st.floats(allow_nan=False),
    s=st.text(),
    b=st.booleans(),
)
def test_values_round_trip_like_fastavro(
    n: int, d: decimal.Decimal, f: float, s: str, b: bool
) -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [
            {"name": "n", "type": "long"},
            {
                "name": "d",
                "type": {"type": "bytes", "logicalType": "decimal", "precision": 14, "scale": 2},
            },
            {"name": "f", "type": "double"},
            {"name": "s", "type": "string"},
            {"name": "b", "type": "boolean"},
            {"name": "t", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        ],
    }
    record = {
        "n": n,
        "d": d,
        "f": f,
        "s": s,
        "b": b,
        "t": dt.datetime(2026, 11, 26, 8, 0, tzinfo=dt.UTC),
    }
    parsed = fastavro.parse_schema(schema)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed, record)
    body = buf.getvalue()
    scanner = scanner_for(schema)
    assert scanner is not None
    offsets = scanner.offsets(body)
    assert dict(LazyRecord(scanner, body, offsets)) == fastavro.schemaless_reader(
        io.BytesIO(body), parsed, None
    )


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
@given(data=st.data())
@settings(max_examples=40, deadline=None)
def test_compiled_projection_equals_the_reference_projection(
    path: Path, data: st.DataObject
) -> None:
    """Any subset of fields in order, any of them masked: the same bytes as ``project``."""
    schema = load(path)
    parsed = avro.parse(schema)
    scanner = scanner_for(schema)
    assert scanner is not None
    names = [f["name"] for f in schema["fields"]]
    nullable = {f["name"]: isinstance(f["type"], list) for f in schema["fields"]}
    keep = [n for n in names if data.draw(st.booleans(), label=f"keep {n}")] or names[:1]
    mask = compile_mask(parse_mask("hash"), b"k" * 32)
    masked = {n for n in keep if data.draw(st.booleans(), label=f"mask {n}")}
    plan = [(n, names.index(n), mask if n in masked else None, nullable[n]) for n in keep]
    compiled = compile_projection(plan, b"\x00\x00\x00\x00\x07")
    for record in sample.generate(schema, 5, seed=data.draw(st.integers(0, 1000))):
        body = wire.encode(parsed, record)
        offsets = scanner.offsets(body)
        expected = project(body, offsets, LazyRecord(scanner, body, offsets), plan)
        assert compiled(body, offsets, LazyRecord(scanner, body, offsets)) == (
            b"\x00\x00\x00\x00\x07" + expected
        )


def test_a_varint_of_more_than_ten_bytes_is_refused() -> None:
    scanner = scanner_for(
        {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
    )
    assert scanner is not None
    with pytest.raises(DecodeError, match="does not match its schema: varint longer than 10 bytes"):
        scanner.offsets(b"\xff" * 12)


def test_a_double_cut_short_is_refused_as_such() -> None:
    scanner = scanner_for(
        {"type": "record", "name": "R", "fields": [{"name": "x", "type": "double"}]}
    )
    assert scanner is not None
    with pytest.raises(DecodeError, match="ends in the middle of a field"):
        scanner.offsets(b"\x00\x00\x00")


def test_a_character_split_across_two_strings_is_refused() -> None:
    """Each string must be valid UTF-8 on its own, not only all of them together."""
    scanner = scanner_for(
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": "a", "type": "string"}, {"name": "b", "type": "string"}],
        }
    )
    assert scanner is not None
    whole = "你".encode()  # e4 bd a0
    with pytest.raises(DecodeError, match="not valid UTF-8"):
        scanner.offsets(zigzag(1) + whole[:1] + zigzag(2) + whole[1:])
    assert scanner.offsets(zigzag(3) + whole + zigzag(0)) == [0, 4, 5]


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_string_bytes_are_the_encoded_text_of_the_field(path: Path) -> None:
    """What the router uses as the Kafka key: the same bytes as str(value).encode()."""
    schema = load(path)
    parsed = avro.parse(schema)
    scanner = scanner_for(schema)
    assert scanner is not None
    strings = [n for n in scanner.names if scanner.string_bytes(n) is not None]
    assert strings, "every sample schema has a string field"
    long_text = "长" * 70  # a length over 63: a two-byte varint
    for record in sample.generate(schema, 50, seed=9):
        record = {**record, strings[0]: long_text}
        body = wire.encode(parsed, record)
        offsets = scanner.offsets(body)
        for name in strings:
            raw = scanner.string_bytes(name)
            assert raw is not None
            assert raw(body, offsets) == str(record[name]).encode()
