"""An Avro body straight to the tuple of a table row's values, in one compiled function.

The mirror of the database source's row encoder (``connectors/row_encoder.py``)
and of the router's offset scanner (:mod:`exchange.avro.scan`). A database
sink used to decode every record with fastavro into a dict (a walk of the
schema per record, a dict per record) and then pick the columns out of the
dict. The fields a sink writes, and in which order, are fixed for a schema
id, so :func:`compile_reader` writes that reading out once as Python code:
one straight-line function per (schema, column list) that reads each field
at its position in the body and returns the tuple of column values. No dict,
no schema walk.

The values are the ones fastavro gives (tested field type by field type):
``decimal`` as :class:`decimal.Decimal` with the schema's scale (rounded to
its precision, as fastavro does), ``date`` as :class:`datetime.date`,
``timestamp-millis`` / ``-micros`` as aware UTC datetimes, enums as their
symbol. So is the strictness: a union or enum index out of range, a string
that is not UTF-8, a length running past the end, a value the date or time
types cannot hold, or bytes left over raise :class:`DecodeError` with the
same wording as :func:`exchange.avro.wire.decode`. Schemas with a type not
written out here (arrays, maps, nested records, fixed, other logical types)
give None, and the caller decodes with fastavro.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from exchange.avro import wire
from exchange.avro.scan import _read_long, _Source
from exchange.errors import DecodeError

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_BAD = "Avro body does not match its schema: "
_SCALARS = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")

#: ``read(buf, pos, prefix)``: ``prefix`` followed by the columns' values, read from the
#: Avro body ``buf[pos:]`` (which must end where ``buf`` ends)
RowReader = Callable[[bytes, int, tuple[Any, ...]], tuple[Any, ...]]


class _Unsupported(Exception):
    pass


def _kind(t: Any, named: dict[str, tuple[Any, ...]]) -> tuple[Any, ...]:
    """``(what, detail)`` of a field type: what the generated code reads, and how."""
    if isinstance(t, str) and t in named:
        return named[t]
    if isinstance(t, list):
        return ("union", tuple(_kind(b, named) for b in t))
    if isinstance(t, dict):
        base, logical = t.get("type"), t.get("logicalType")
        if base == "enum":
            kind = ("enum", tuple(t["symbols"]))
            named[t["name"]] = kind
            if "namespace" in t:
                named[f"{t['namespace']}.{t['name']}"] = kind
            return kind
        if logical == "decimal" and base == "bytes":
            return ("decimal", (int(t.get("scale", 0)), int(t["precision"])))
        if logical == "date" and base == "int":
            return ("date", None)
        if logical in ("timestamp-millis", "timestamp-micros") and base == "long":
            return (logical, None)
        if logical is not None or not isinstance(base, str):
            raise _Unsupported(str(logical or base))
        return _kind(base, named)
    if t in _SCALARS:
        return (t, None)
    raise _Unsupported(str(t))


def _source() -> _Source:
    """The generated function's builder (the scanner's), with the names every reader uses."""
    src = _Source()
    src.consts.update(
        DecodeError=DecodeError,
        _read_long=_read_long,
        _fromordinal=dt.date.fromordinal,
        _timedelta=dt.timedelta,
        _EPOCH=EPOCH,
        _from_bytes=int.from_bytes,
        struct_error=struct.error,
    )
    return src


def _emit_varint(src: _Source, d: int, into: str) -> None:
    """Read a zig-zag varint at ``pos`` into ``into``: up to three bytes inline."""
    src.emit(d, "b = buf[pos]")
    src.emit(d, "if b < 128:")
    src.emit(d + 1, f"{into} = (b >> 1) ^ -(b & 1)")
    src.emit(d + 1, "pos += 1")
    src.emit(d, "elif buf[pos + 1] < 128:")
    src.emit(d + 1, "b = (b & 127) | (buf[pos + 1] << 7)")
    src.emit(d + 1, f"{into} = (b >> 1) ^ -(b & 1)")
    src.emit(d + 1, "pos += 2")
    src.emit(d, "elif buf[pos + 2] < 128:  # dates until 2149, strings under 2 MB")
    src.emit(d + 1, "b = (b & 127) | ((buf[pos + 1] & 127) << 7) | (buf[pos + 2] << 14)")
    src.emit(d + 1, f"{into} = (b >> 1) ^ -(b & 1)")
    src.emit(d + 1, "pos += 3")
    src.emit(d, "else:")
    src.emit(d + 1, f"{into}, pos = _read_long(buf, pos)")


def _emit_slice(src: _Source, d: int) -> None:
    """A length, then ``end`` past the bytes it counts (checked to lie inside the body)."""
    _emit_varint(src, d, "n")
    src.emit(d, "end = pos + n")
    src.emit(d, "if n < 0 or end > size:")
    src.emit(d + 1, 'raise DecodeError("a length runs past the end of the record")')


def _emit_read(src: _Source, kind: tuple[Any, ...], v: str, d: int) -> None:
    """Lines reading one value of ``kind`` at ``pos`` into ``v``, moving ``pos`` past it."""
    what, detail = kind
    if what == "string":
        _emit_slice(src, d)
        src.emit(d, f"{v} = buf[pos:end].decode()")
        src.emit(d, "pos = end")
    elif what == "bytes":
        _emit_slice(src, d)
        src.emit(d, f"{v} = buf[pos:end]")
        src.emit(d, "pos = end")
    elif what == "decimal":
        scale, precision = detail
        ctx = src.const(decimal.Context(prec=precision))
        _emit_slice(src, d)
        src.emit(d, f"{v} = {ctx}.create_decimal(_from_bytes(buf[pos:end], 'big', signed=True))")
        src.emit(d, f"{v} = {v}.scaleb({-scale}, {ctx})")
        src.emit(d, "pos = end")
    elif what in ("int", "long"):
        _emit_varint(src, d, v)
    elif what == "date":
        _emit_varint(src, d, v)
        src.emit(d, f"{v} = _fromordinal({v} + {EPOCH_ORDINAL})")
    elif what == "timestamp-millis":
        _emit_varint(src, d, v)
        src.emit(d, f"{v} = _EPOCH + _timedelta(0, {v} // 1000, {v} % 1000 * 1000)")
    elif what == "timestamp-micros":
        _emit_varint(src, d, v)
        src.emit(d, f"{v} = _EPOCH + _timedelta(0, {v} // 1000000, {v} % 1000000)")
    elif what == "enum":
        symbols = src.const(detail)
        _emit_varint(src, d, "n")
        src.emit(d, f"if not 0 <= n < {len(detail)}:")
        src.emit(d + 1, 'raise DecodeError(f"enum index {n} out of range")')
        src.emit(d, f"{v} = {symbols}[n]")
    elif what == "boolean":
        src.emit(d, "b = buf[pos]")
        src.emit(d, "if b > 1:")
        src.emit(d + 1, 'raise DecodeError(f"boolean byte {b} is neither 0 nor 1")')
        src.emit(d, f"{v} = b == 1")
        src.emit(d, "pos += 1")
    elif what in ("float", "double"):
        unpack = src.const(struct.Struct("<f" if what == "float" else "<d").unpack_from)
        src.emit(d, f"{v} = {unpack}(buf, pos)[0]")
        src.emit(d, f"pos += {4 if what == 'float' else 8}")
    elif what == "null":
        src.emit(d, f"{v} = None")
    else:  # a union
        _emit_varint(src, d, "n")
        for index, branch in enumerate(detail):
            src.emit(d, f"{'if' if index == 0 else 'elif'} n == {index}:")
            _emit_read(src, branch, v, d + 1)
        src.emit(d, "else:")
        src.emit(d + 1, 'raise DecodeError(f"union index {n} out of range")')


def compile_reader(
    schema: Mapping[str, Any],
    columns: Sequence[str],
    converters: Mapping[str, Callable[[Any], Any] | None] | None = None,
) -> RowReader | None:
    """A function reading bodies written with record ``schema`` into ``columns``' values.

    A column the schema has no field of is None; ``converters[column]``, when given,
    is applied to the column's value (None included). Returns None when the schema has
    a type not written out here: decode such bodies with fastavro.
    """
    named: dict[str, tuple[Any, ...]] = {}
    try:
        kinds = [_kind(f["type"], named) for f in schema["fields"]]
    except (_Unsupported, KeyError, TypeError, ValueError):
        return None
    position = {f["name"]: i for i, f in enumerate(schema["fields"])}
    src = _source()
    src.emit(0, "def read(buf, pos, prefix):")
    src.emit(1, "size = len(buf)")
    src.emit(1, "try:")
    for i, kind in enumerate(kinds):
        _emit_read(src, kind, f"v{i}", 2)
    src.emit(1, "except (IndexError, struct_error):")
    src.emit(2, f'raise DecodeError("{_BAD}it ends in the middle of a field") from None')
    src.emit(1, "except UnicodeDecodeError:")
    src.emit(2, f'raise DecodeError("{_BAD}a string is not valid UTF-8") from None')
    src.emit(1, "except (ValueError, OverflowError, ArithmeticError) as exc:")
    src.emit(2, f'raise DecodeError(f"{_BAD}{{exc}}") from None')
    src.emit(1, "except DecodeError as exc:")
    src.emit(2, f'raise DecodeError(f"{_BAD}{{exc}}") from None')
    src.emit(1, "if pos != size:")
    src.emit(2, "raise DecodeError(")
    src.emit(3, 'f"Avro body has {size - pos} bytes left over: written with another schema"')
    src.emit(2, ")")
    values = []
    for column in columns:
        at = position.get(column)
        value = "None" if at is None else f"v{at}"
        convert = (converters or {}).get(column)
        values.append(value if convert is None else f"{src.const(convert)}({value})")
    src.emit(1, f"return prefix + ({''.join(f'{v}, ' for v in values)})")
    read: RowReader = src.function("read", "<avro row reader>")
    return read


def fastavro_reader(
    parsed: Any, plan: Sequence[tuple[str, Callable[[Any], Any] | None]]
) -> RowReader:
    """A reader like :func:`compile_reader`'s for any schema (arrays, maps, nested
    records, ...): the body decoded by fastavro (``parsed``: its parsed schema) into a dict,
    then ``(column, converter or None)`` of ``plan`` taken from it in order."""

    def read(buf: bytes, pos: int, prefix: tuple[Any, ...]) -> tuple[Any, ...]:
        get = wire.decode(parsed, memoryview(buf)[pos:]).get
        return prefix + tuple(get(n) if c is None else c(get(n)) for n, c in plan)

    return read
