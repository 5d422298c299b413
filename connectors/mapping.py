"""Avro fields and database columns: which types fit, and how values cross.

Checked once, when a connector starts, so a wrong mapping is refused before
any row moves: :func:`source_problem` says why a column cannot feed a field
(a ``text`` column for a ``date`` field, a ``bigint`` for an Avro ``int``),
:func:`sink_problem` why a column cannot hold a field. :func:`converter`
builds the per-column function that turns a driver's value into the Avro
field's Python form, raising :class:`ValueError` with the reason for a value
that does not fit (an unknown enum symbol, too many decimal places).

Column types are reduced to a few families so PostgreSQL and MySQL/MariaDB
share the rules; :mod:`connectors.sql` maps each database's types to them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from exchange.avro import schema as avro

#: families of column types (see connectors.sql for what each database maps to them)
TEXT, UUID, BLOB, BYTES, JSON = "text", "uuid", "blob", "bytes", "json"
INT1, INT2, INT4, INT8 = "int1", "int2", "int4", "int8"
BOOL, NUMERIC, FLOAT4, FLOAT8 = "bool", "numeric", "float4", "float8"
DATE, TIMESTAMP, TIMESTAMPTZ, TIME = "date", "timestamp", "timestamptz", "time"
INTS = (INT1, INT2, INT4, INT8)
INT_DIGITS = {INT1: 3, INT2: 5, INT4: 10, INT8: 19}


@dataclass(frozen=True)
class Column:
    """A column as the database describes it."""

    name: str
    family: str
    type_name: str
    precision: int | None = None
    scale: int | None = None
    nullable: bool | None = None  # None: not known (a column of a query)


@dataclass(frozen=True)
class FieldType:
    """The non-null type of an Avro field, reduced to what a column must match."""

    kind: str  # string enum boolean int long float double decimal date timestamp-millis ...
    nullable: bool
    symbols: tuple[str, ...] = ()
    precision: int = 0
    scale: int = 0

    @property
    def text(self) -> str:
        if self.kind == "decimal":
            return f"decimal({self.precision},{self.scale})"
        return self.kind


def field_type(avro_type: Any) -> FieldType:
    """Reduce an Avro field type (possibly ``["null", T]``) to a :class:`FieldType`."""
    nullable = avro.field_is_nullable(avro_type)
    t = avro.non_null_type(avro_type)
    if isinstance(t, list):
        return FieldType("union", nullable)
    if isinstance(t, str):
        return FieldType(t, nullable)
    lt = t.get("logicalType")
    base = t.get("type")
    if lt == "decimal":
        return FieldType(
            "decimal", nullable, precision=int(t["precision"]), scale=int(t.get("scale", 0))
        )
    if lt in (
        "date",
        "timestamp-millis",
        "timestamp-micros",
        "local-timestamp-millis",
        "local-timestamp-micros",
        "time-millis",
        "time-micros",
        "uuid",
    ):
        return FieldType(str(lt), nullable)
    if base == "enum":
        return FieldType("enum", nullable, symbols=tuple(t["symbols"]))
    if base in ("record", "array", "map"):
        return FieldType(str(base), nullable)
    if base == "fixed":
        return FieldType("fixed", nullable)
    return FieldType(str(base), nullable)


_SOURCE_FAMILIES: dict[str, tuple[str, ...]] = {
    "string": (TEXT, UUID, BLOB),
    "uuid": (TEXT, UUID, BLOB),
    "enum": (TEXT, BLOB),
    "boolean": (BOOL, INT1),
    "int": (INT1, INT2, INT4),
    "long": INTS,
    "float": (FLOAT4, INT1, INT2),
    "double": (FLOAT4, FLOAT8, INT1, INT2, INT4),
    "date": (DATE,),
    "timestamp-millis": (TIMESTAMP, TIMESTAMPTZ),
    "timestamp-micros": (TIMESTAMP, TIMESTAMPTZ),
    "local-timestamp-millis": (TIMESTAMP,),
    "local-timestamp-micros": (TIMESTAMP,),
    "time-millis": (TIME,),
    "time-micros": (TIME,),
    "bytes": (BYTES, BLOB),
    "fixed": (BYTES, BLOB),
}


def source_problem(col: Column, ft: FieldType) -> str | None:
    """Why ``col`` cannot feed a field of type ``ft``, or None if it can."""
    shown = f"column type {col.type_name} cannot feed an Avro {ft.text} field"
    if ft.kind == "decimal":
        if col.family in INTS:
            if INT_DIGITS[col.family] > ft.precision - ft.scale:
                return f"{shown}: it may hold more than {ft.precision - ft.scale} integer digits"
            return None
        if col.family != NUMERIC:
            return shown
        if col.precision is None:
            return None  # unconstrained numeric: every value is checked as it is read
        if (col.scale or 0) > ft.scale:
            return f"{shown}: {col.scale} decimal places, the field keeps {ft.scale}"
        if col.precision - (col.scale or 0) > ft.precision - ft.scale:
            return f"{shown}: up to {col.precision - (col.scale or 0)} integer digits, the field keeps {ft.precision - ft.scale}"
        return None
    allowed = _SOURCE_FAMILIES.get(ft.kind)
    if allowed is None:
        return f"an Avro {ft.kind} field cannot be read from a database column"
    if col.family not in allowed:
        if ft.kind == "int" and col.family == INT8:
            return f"{shown}: a 64-bit column may not fit a 32-bit int (make the field long)"
        return shown
    return None


def sink_problem(col: Column, ft: FieldType) -> str | None:
    """Why ``col`` cannot hold values of a field of type ``ft``, or None if it can."""
    shown = f"column type {col.type_name} cannot hold an Avro {ft.text} field"
    holders: dict[str, tuple[str, ...]] = {
        "string": (TEXT, BLOB),
        "uuid": (TEXT, UUID, BLOB),
        "enum": (TEXT, BLOB),
        "boolean": (BOOL, INT1, INT2, INT4, INT8),
        "int": (INT4, INT8),
        "long": (INT8,),
        "float": (FLOAT4, FLOAT8),
        "double": (FLOAT8,),
        "date": (DATE,),
        "timestamp-millis": (TIMESTAMPTZ, TIMESTAMP),
        "timestamp-micros": (TIMESTAMPTZ, TIMESTAMP),
        "local-timestamp-millis": (TIMESTAMP,),
        "local-timestamp-micros": (TIMESTAMP,),
        "time-millis": (TIME,),
        "time-micros": (TIME,),
        "bytes": (BYTES, BLOB),
        "fixed": (BYTES, BLOB),
        "record": (JSON, TEXT, BLOB),
        "array": (JSON, TEXT, BLOB),
        "map": (JSON, TEXT, BLOB),
    }
    if ft.kind == "decimal":
        if col.family != NUMERIC:
            return shown
        if col.precision is None:
            return None
        if (col.scale or 0) < ft.scale or col.precision - (
            col.scale or 0
        ) < ft.precision - ft.scale:
            return shown
        return None
    allowed = holders.get(ft.kind)
    if allowed is None or col.family not in allowed:
        return shown
    return None


def _decimal_check(ft: FieldType) -> Callable[[Any], Any]:
    quantum = decimal.Decimal(1).scaleb(-ft.scale)
    limit = decimal.Decimal(10) ** (ft.precision - ft.scale)

    def convert(v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            v = decimal.Decimal(v)
        if not isinstance(v, decimal.Decimal) or not v.is_finite():
            raise ValueError(f"{v!r} is not a finite decimal number")
        exponent = v.as_tuple().exponent
        if isinstance(exponent, int) and -exponent > ft.scale:
            if v != v.quantize(quantum):
                raise ValueError(f"{v} has more than {ft.scale} decimal places")
            v = v.quantize(quantum)
        if abs(v) >= limit:
            raise ValueError(f"{v} has more than {ft.precision - ft.scale} integer digits")
        return v

    return convert


#: kinds whose :func:`converter` checks every value fully (type, range, symbol, places), so
#: a converted value needs no second check against the schema before it is encoded
CHECKED_KINDS = frozenset(
    [
        "string",
        "enum",
        "boolean",
        "int",
        "long",
        "float",
        "double",
        "decimal",
        "date",
        "timestamp-millis",
        "timestamp-micros",
        "bytes",
    ]
)


#: for these kinds, :func:`converter` returns a value of exactly this class unchanged
KEPT_AS_IS: dict[str, type] = {
    "string": str,
    "uuid": str,
    "date": dt.date,  # not a datetime: its class is checked exactly
    "float": float,
    "double": float,
    "bytes": bytes,
}


def converter(col: Column, ft: FieldType, tz: dt.tzinfo) -> Callable[[Any], Any]:
    """The function turning a non-NULL value of ``col`` into the field's Python (fastavro) form.

    For the kinds in :data:`CHECKED_KINDS` it raises :class:`ValueError` for any value that
    does not fit the field; other kinds are checked against the schema afterwards.
    """
    kind = ft.kind
    if kind == "date":

        def to_date(v: Any) -> Any:
            if isinstance(v, dt.date) and not isinstance(v, dt.datetime):
                return v
            raise ValueError(f"{v!r} is not a date")

        return to_date
    if kind in ("string", "uuid"):

        def to_text(v: Any) -> Any:
            if isinstance(v, str):
                return v
            if isinstance(v, uuid.UUID):
                return str(v)
            raise ValueError(f"holds {type(v).__name__} data, not text")

        return to_text
    if kind == "enum":
        symbols = frozenset(ft.symbols)

        def to_symbol(v: Any) -> Any:
            if isinstance(v, str) and v in symbols:
                return v
            raise ValueError(f"{v!r} is not one of {list(ft.symbols)}")

        return to_symbol
    if kind == "boolean":

        def to_bool(v: Any) -> Any:
            if isinstance(v, bool):
                return v
            if v in (0, 1):
                return bool(v)
            raise ValueError(f"{v!r} is not a boolean (true/false, 1/0)")

        return to_bool
    if kind in ("float", "double"):
        return float
    if kind == "decimal":
        return _decimal_check(ft)
    if kind in ("timestamp-millis", "timestamp-micros"):

        def to_aware(v: Any) -> Any:
            if not isinstance(v, dt.datetime):
                raise ValueError(f"{v!r} is not a timestamp")
            return v if v.tzinfo is not None else v.replace(tzinfo=tz)

        return to_aware
    if kind in ("int", "long"):
        lo, hi = (-(2**31), 2**31 - 1) if kind == "int" else (-(2**63), 2**63 - 1)

        def to_int(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{v!r} does not fit an Avro {kind}")
            return v

        return to_int
    if kind in ("bytes", "fixed"):

        def to_bytes(v: Any) -> Any:
            if isinstance(v, bytes | bytearray | memoryview):
                return bytes(v)
            raise ValueError(f"holds {type(v).__name__} data, not bytes")

        return to_bytes
    return lambda v: v
