"""A database source's rows to Avro bodies at bulk speed.

fastavro turns logical values (a ``date``, an aware ``datetime``, a
``Decimal``) into their Avro primitive (days, milliseconds, two's-complement
bytes) in Python-level code for every value, and that was most of the
source's encoding time. The source's converters already check every value,
so they hand over the primitive directly (:func:`to_primitive`), and the
records are encoded with the resource's schema stripped of those logical
types (:func:`primitive_schema`). The bytes are the same as fastavro's, so
record ids (a hash of the body) do not depend on the path a record took.
"""

from __future__ import annotations

import copy
import datetime as dt
import decimal
import io
from collections.abc import Callable
from typing import Any

import fastavro
from fastavro.validation import validate

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _logical(avro_type: Any) -> dict[str, Any] | None:
    """The logical type a top-level field carries (itself or as a nullable union's branch)."""
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    for b in branches:
        if isinstance(b, dict) and "logicalType" in b:
            return b
    return None


def _convertible(logical: dict[str, Any] | None) -> bool:
    if logical is None:
        return False
    name, base = logical["logicalType"], logical.get("type")
    return (
        (name == "date" and base == "int")
        or (name in ("timestamp-millis", "timestamp-micros") and base == "long")
        or (name == "decimal" and base == "bytes")
    )


def _days(v: dt.date) -> int:
    return v.toordinal() - _EPOCH_ORDINAL


def _millis(v: dt.datetime) -> int:
    delta = v - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _micros(v: dt.datetime) -> int:
    delta = v - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


#: wide enough that moving a decimal's point never rounds (Avro decimals have at most a
#: few dozen digits; the default context keeps 28)
_EXACT = decimal.Context(prec=1000)


def _decimal_bytes(scale: int) -> Callable[[decimal.Decimal], bytes]:
    def to_bytes(v: decimal.Decimal) -> bytes:
        # the converter checked it is finite with at most ``scale`` places: exact
        unscaled = int(v.scaleb(scale, _EXACT))
        return unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)

    return to_bytes


def to_primitive(avro_type: Any) -> Callable[[Any], Any] | None:
    """The function from a checked logical value of a field to its Avro primitive, or None
    when the field is encoded as it is (no logical type, or one left to fastavro)."""
    logical = _logical(avro_type)
    if not _convertible(logical):
        return None
    assert logical is not None
    name = logical["logicalType"]
    if name == "date":
        return _days
    if name == "timestamp-millis":
        return _millis
    if name == "timestamp-micros":
        return _micros
    return _decimal_bytes(int(logical.get("scale", 0)))


def primitive_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with the logical types :func:`to_primitive` converts left out."""
    out = copy.deepcopy(schema)
    for f in out["fields"]:
        logical = _logical(f["type"])
        if _convertible(logical):
            assert logical is not None
            for key in ("logicalType", "precision", "scale"):
                logical.pop(key, None)
    return out


class Encoder:
    """Encodes records in primitive form (see :func:`to_primitive`) with one parsed schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        plain = primitive_schema(schema)
        self.parsed = fastavro.parse_schema(plain)
        named: dict[str, Any] = {}  # a field may name a type an earlier field defined
        self.fields: list[tuple[str, Any]] = [
            (str(f["name"]), fastavro.parse_schema(f["type"], named_schemas=named))
            for f in plain["fields"]
        ]

    def encode(self, record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        fastavro.schemaless_writer(buf, self.parsed, record)
        return buf.getvalue()

    def culprit(self, record: dict[str, Any]) -> str | None:
        """The first field whose value the schema refuses (after an encoding error)."""
        for name, parsed in self.fields:
            try:
                if not validate(record.get(name), parsed, raise_errors=False):
                    return name
            except Exception:  # a value fastavro cannot even look at
                return name
        return None
