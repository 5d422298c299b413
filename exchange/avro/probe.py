"""A few typical values of every Avro type: enough to see what an expression gives.

The sharing rules check that a row filter gives true or false, not a string or
a number, before a grant carrying it is written. They evaluate it on the
records :func:`probe_records` makes from the resource's schema alone: for each
field a handful of values of its type (empty and non-empty strings, digits,
zero and non-zero numbers, dates, the first enum symbol, null where allowed),
so no sample data generator is needed at run time.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

#: values per primitive or logical type; the i-th probe record takes the i-th (cycling)
_TYPICAL: dict[str, list[Any]] = {
    "string": ["330102199001011234", "", "张三", "0"],
    "int": [0, 1, -1, 2024],
    "long": [0, 1, -1, 1_700_000_000_000],
    "float": [0.0, 1.5, -1.0, 100.0],
    "double": [0.0, 1.5, -1.0, 100.0],
    "boolean": [True, False],
    "bytes": [b"", b"\x01"],
    "date": [dt.date(2024, 1, 1), dt.date(1990, 6, 30), dt.date(2026, 11, 29)],
    "timestamp-millis": [
        dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 29, 8, 30, tzinfo=dt.UTC),
    ],
    "timestamp-micros": [dt.datetime(2024, 1, 1, tzinfo=dt.UTC)],
}
_DECIMALS = [decimal.Decimal("0"), decimal.Decimal("1.5"), decimal.Decimal("-2")]
PROBES = 4


def _value(avro_type: Any, i: int) -> Any:
    if isinstance(avro_type, list):  # a union: its branches in turn, null among them
        branch = avro_type[i % len(avro_type)]
        return _value(branch, i // len(avro_type))
    if isinstance(avro_type, Mapping):
        logical = avro_type.get("logicalType")
        if logical == "decimal":
            return _DECIMALS[i % len(_DECIMALS)]
        if logical in _TYPICAL:
            values = _TYPICAL[logical]
            return values[i % len(values)]
        kind = avro_type.get("type")
        if kind == "enum":
            symbols = avro_type.get("symbols") or [""]
            return symbols[i % len(symbols)]
        if kind == "array":
            return [] if i % 2 else [_value(avro_type.get("items"), i)]
        if kind == "map":
            return {} if i % 2 else {"k": _value(avro_type.get("values"), i)}
        if kind == "fixed":
            return bytes(int(avro_type.get("size", 0)))
        if kind == "record":
            return probe_records(avro_type, 1)[0]
        return _value(kind, i)
    if avro_type == "null":
        return None
    typical = _TYPICAL.get(str(avro_type))
    return None if typical is None else typical[i % len(typical)]


def probe_records(schema: Mapping[str, Any], count: int = PROBES) -> list[dict[str, Any]]:
    """``count`` records of ``schema`` (a record schema), each field set to a typical value."""
    fields = schema.get("fields", [])
    return [{f["name"]: _value(f["type"], i) for f in fields} for i in range(count)]
