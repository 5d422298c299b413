"""The database source's bulk encoding gives fastavro's bytes exactly (record ids depend on them)."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pytest

from connectors.encoding import Encoder, to_primitive
from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.catalog.loader import load_catalog
from exchange.dev import sample

ROOT = Path(__file__).resolve().parents[2]
CATALOG = load_catalog(ROOT / "schemas")


def _primitive(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for f in schema["fields"]:
        convert = to_primitive(f["type"])
        if convert is not None and out.get(f["name"]) is not None:
            out[f["name"]] = convert(out[f["name"]])
    return out


@pytest.mark.parametrize("resource", sorted(r.id for r in CATALOG.resources.values()))
def test_same_bytes_as_fastavro_for_every_resource(resource: str) -> None:
    schema = CATALOG.resource(resource).schema_
    parsed, encoder = avro.parse(schema), Encoder(schema)
    for record in sample.generate(schema, 60, seed=11):
        assert encoder.encode(_primitive(schema, record)) == wire.encode(parsed, record)


EDGE = {
    "type": "record",
    "name": "Edge",
    "fields": [
        {"name": "d", "type": {"type": "int", "logicalType": "date"}},
        {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
        {"name": "us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 30, "scale": 4},
        },
    ],
}
CST = dt.timezone(dt.timedelta(hours=8))


@pytest.mark.parametrize(
    ("d", "ts", "amount"),
    [
        (dt.date(1969, 12, 31), dt.datetime(1960, 1, 1, 0, 0, 0, 999, tzinfo=CST), "-0.0001"),
        (dt.date(1970, 1, 1), None, "0"),
        (dt.date(2049, 5, 6), dt.datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=CST), "127"),
        (dt.date(1, 1, 1), dt.datetime(1970, 1, 1, tzinfo=dt.UTC), "-128.5"),
        (dt.date(9999, 12, 31), dt.datetime(9999, 1, 1, tzinfo=CST), "12345678901234567890.1234"),
        (dt.date(2000, 2, 29), dt.datetime(2000, 2, 29, 12, tzinfo=CST), "-99999999999999.99"),
    ],
)
def test_edges_of_dates_timestamps_and_decimals(
    d: dt.date, ts: dt.datetime | None, amount: str
) -> None:
    record = {
        "d": d,
        "ts": ts,
        "us": ts or dt.datetime(2020, 1, 1, tzinfo=CST),
        "amount": decimal.Decimal(amount),
    }
    assert Encoder(EDGE).encode(_primitive(EDGE, record)) == wire.encode(avro.parse(EDGE), record)


def test_culprit_names_the_field_the_schema_refuses() -> None:
    encoder = Encoder(EDGE)
    good = _primitive(
        EDGE,
        {"d": dt.date(2020, 1, 1), "ts": None, "us": dt.datetime(2020, 1, 1, tzinfo=CST)}
        | {"amount": decimal.Decimal("1")},
    )
    assert encoder.culprit(good) is None
    assert encoder.culprit({**good, "us": "soon"}) == "us"
