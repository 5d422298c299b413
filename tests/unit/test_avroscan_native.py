"""The C offset scan (exchange/avro/_native.c) answers exactly as the generated Python one.

The C scan returns offsets only for bodies it is certain are well formed and hands every
other body to the Python scan; so for any bytes at all, the two must give the same offsets
or the same DecodeError. Checked on every shipped schema's sample records, on random flat
schemas and values, and on those bodies cut, extended and with bytes changed.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange.avro import scan
from exchange.dev import sample
from exchange.errors import DecodeError

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas" / "avro").glob("*.avsc"))


def _native_and_python(schema: dict[str, Any]) -> tuple[Any, Any]:
    scanner = scan.scanner_for(schema)
    assert scanner is not None
    return scanner.offsets, scan._compile_offsets(scanner.kinds)


def _answer(offsets: Any, body: bytes) -> tuple[str, Any]:
    try:
        return ("offsets", offsets(body))
    except DecodeError as exc:
        return ("refused", str(exc))


def _body(parsed: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue()


def test_the_install_built_the_c_scan() -> None:
    """`make test` installs the package with its C core (a C compiler is on the machine)."""
    assert scan.NATIVE, "exchange.avro._native was not built: is a C compiler installed?"
    scanner = scan.scanner_for(json.loads(SCHEMAS[0].read_text(encoding="utf-8")))
    assert scanner is not None
    assert type(scanner.offsets).__name__ == "Layout"


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_every_sample_record_gives_the_same_offsets(path: Path) -> None:
    schema = json.loads(path.read_text(encoding="utf-8"))
    if scan.scanner_for(schema) is None:
        pytest.skip(f"{path.name} has nested types: it is decoded, never scanned")
    native, python = _native_and_python(schema)
    parsed = fastavro.parse_schema(schema)
    for record in sample.generate(schema, 50, seed=3):
        body = _body(parsed, record)
        assert native(body) == python(body)
        assert native(memoryview(body)) == python(body)  # the router passes memoryviews too


_SIMPLE = st.sampled_from(
    [
        "int",
        "long",
        "string",
        "bytes",
        "boolean",
        "float",
        "double",
        "null",
        {"type": "int", "logicalType": "date"},
        {"type": "long", "logicalType": "timestamp-millis"},
        {"type": "long", "logicalType": "timestamp-micros"},
        {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2},
        {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]},
    ]
)


@st.composite
def _schemas(draw: Any) -> dict[str, Any]:
    fields = []
    enum_used = False
    for i in range(draw(st.integers(1, 8))):
        t = draw(_SIMPLE)
        if isinstance(t, dict) and t.get("type") == "enum":
            if enum_used:  # a named type is defined once
                t = "string"
            enum_used = True
        if draw(st.booleans()) and t != "null":
            t = ["null", t] if draw(st.booleans()) else [t, "null"]
        fields.append({"name": f"f{i}", "type": t})
    return {"type": "record", "name": "R", "fields": fields}


def _mutations(data: Any, body: bytes) -> list[bytes]:
    cut = data.draw(st.integers(0, max(0, len(body) - 1)), label="cut at")
    changed = bytearray(body)
    for _ in range(data.draw(st.integers(1, 3), label="bytes changed")):
        if changed:
            at = data.draw(st.integers(0, len(changed) - 1), label="changed at")
            changed[at] = data.draw(st.integers(0, 255), label="to")
    extra = data.draw(st.binary(max_size=12), label="appended")
    return [body[:cut], bytes(changed), body + extra, extra]


@settings(max_examples=400, deadline=None)
@given(schema=_schemas(), data=st.data())
def test_random_bodies_and_their_mutations_get_the_same_answer(
    schema: dict[str, Any], data: Any
) -> None:
    native, python = _native_and_python(schema)
    parsed = fastavro.parse_schema(json.loads(json.dumps(schema)))
    record = sample.generate(schema, 1, seed=data.draw(st.integers(0, 10_000), label="seed"))[0]
    body = _body(parsed, record)
    assert native(body) == python(body)
    for mutated in _mutations(data, body):
        assert _answer(native, mutated) == _answer(python, mutated), mutated.hex()


@pytest.mark.parametrize(
    ("layout", "body"),
    [
        # a long of 10 bytes whose last byte carries more than 64 bits: Python's big ints
        # accept it, the C scan hands it over
        ("long", bytes([0xFF] * 9 + [0x7F])),
        ("long", bytes([0xFF] * 9 + [0x01])),  # exactly 64 bits: the C scan's own
        ("long", bytes([0xFF] * 10 + [0x01])),  # 11 bytes: refused
        ("string", b"\x04\xed\xa0"),  # a length past the end
        ("string", b"\x06\xed\xa0\x80"),  # a UTF-16 surrogate: not UTF-8
        ("string", b"\x04\xc0\xaf"),  # an overlong encoding
        ("string", b"\x08\xf4\x90\x80\x80"),  # beyond U+10FFFF
        ("string", b"\x08\xf0\x9f\x98\x80"),  # an emoji: valid
        ("boolean", b"\x02"),
        ("float", b"\x00\x00\x00"),
        ("int", b"\x80\x80\x80\x80\x10"),  # 2**31: out of an int's range
    ],
)
def test_edge_cases_get_the_same_answer(layout: str, body: bytes) -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": layout}]}
    native, python = _native_and_python(schema)
    assert _answer(native, body) == _answer(python, body)


def test_a_body_that_is_not_a_buffer_is_answered_by_python() -> None:
    schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": "long"}]}
    native, python = _native_and_python(schema)
    for answer in (python, native):
        with pytest.raises(TypeError):
            answer("text, not bytes")
    assert native(bytearray(b"\x02")) == python(bytearray(b"\x02")) == [0, 1]
