"""Typical values of every Avro type (exchange.avro.probe): valid records, nulls included."""

from __future__ import annotations

import json
from pathlib import Path

import fastavro
import pytest

from exchange.avro.probe import probe_records

SCHEMAS = sorted((Path(__file__).resolve().parents[2] / "schemas" / "avro").glob("*.avsc"))


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.stem)
def test_probe_records_are_valid_records_of_the_schema(path: Path) -> None:
    schema = json.loads(path.read_text())
    parsed = fastavro.parse_schema(schema)
    records = probe_records(schema, 12)
    assert len(records) == 12
    for record in records:
        assert fastavro.validation.validate(record, parsed)


def test_a_nullable_field_is_probed_with_null_and_with_a_value() -> None:
    schema = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "x", "type": ["null", "string"]}],
    }
    values = {r["x"] for r in probe_records(schema, 4)}
    assert None in values
    assert values - {None}
