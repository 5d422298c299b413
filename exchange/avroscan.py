"""Field boundaries in Avro binary: project records by slicing bytes, decode only what is read.

An Avro record body is its fields' encodings one after another. A view keeps
a subset of the fields in the same order, so the view's body is the
concatenation of the kept fields' byte slices: no decoding and re-encoding of
values that pass through unchanged. Only the fields that a row filter, a mask
or the Kafka key reads are decoded, each on its own.

:class:`Scanner` walks a body once and returns the offsets where each field
starts and ends, checking what a full decoder would check (lengths inside the
body, union and enum indexes in range, UTF-8 strings, no bytes left over), so
a malformed record is still refused with a reason. Schemas with nested
records, arrays, maps or fixed types are not scanned (:func:`scanner_for`
returns None) and the router decodes them fully instead.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from exchange.errors import DecodeError

# field kinds
_VARINT, _BYTES, _STRING, _BOOL, _FLOAT, _DOUBLE, _NULL, _UNION = range(8)
EPOCH_DATE = dt.date(1970, 1, 1).toordinal()
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_FLOAT_S = struct.Struct("<f")
_DOUBLE_S = struct.Struct("<d")


#: what a Python date or datetime can hold, so that a field read later always decodes
_RANGES = {
    "date": (
        dt.date.min.toordinal() - dt.date(1970, 1, 1).toordinal(),
        dt.date.max.toordinal() - dt.date(1970, 1, 1).toordinal(),
    ),
    "timestamp-millis": (-62135596800000, 253402300799999),
    "timestamp-micros": (-62135596800000000, 253402300799999999),
}


class _Unscannable(Exception):
    pass


def _read_long(buf: bytes, pos: int) -> tuple[int, int]:
    """Zigzag varint at ``pos``: (value, next position)."""
    b = buf[pos]
    pos += 1
    n = b & 0x7F
    shift = 7
    while b & 0x80:
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise DecodeError("varint longer than 10 bytes")
    return (n >> 1) ^ -(n & 1), pos


def zigzag(n: int) -> bytes:
    """Avro's encoding of a long."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while z & ~0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def encode_string(value: str) -> bytes:
    data = value.encode("utf-8")
    return zigzag(len(data)) + data


def _kind(t: Any, named: dict[str, Any]) -> tuple[Any, ...]:
    """A compact description of how to skip and decode one field type."""
    if isinstance(t, str) and t in named:
        t = named[t]
    if isinstance(t, list):
        return (_UNION, tuple(_kind(b, named) for b in t))
    if isinstance(t, dict):
        lt = t.get("logicalType")
        base = t.get("type")
        if base == "enum":
            named[t["name"]] = t
            if "namespace" in t:
                named[f"{t['namespace']}.{t['name']}"] = t
            return (_VARINT, "enum", tuple(t["symbols"]))
        if base in ("record", "array", "map", "fixed"):
            raise _Unscannable(base)
        if lt == "decimal" and base == "bytes":
            return (_BYTES, "decimal", int(t.get("scale", 0)))
        if lt == "date" and base == "int":
            return (_VARINT, "date", None)
        if lt == "timestamp-millis" and base == "long":
            return (_VARINT, "timestamp-millis", None)
        if lt == "timestamp-micros" and base == "long":
            return (_VARINT, "timestamp-micros", None)
        if lt is not None:
            raise _Unscannable(lt)  # other logical types: decode fully
        return _kind(base, named)
    simple = {
        "int": (_VARINT, "int", None),
        "long": (_VARINT, "long", None),
        "string": (_STRING, "string", None),
        "bytes": (_BYTES, "bytes", None),
        "boolean": (_BOOL, "boolean", None),
        "float": (_FLOAT, "float", None),
        "double": (_DOUBLE, "double", None),
        "null": (_NULL, "null", None),
    }
    if t in simple:
        return simple[t]
    raise _Unscannable(str(t))


def _skip(kind: tuple[Any, ...], buf: bytes, pos: int) -> int:
    code = kind[0]
    if code == _VARINT:
        value, pos = _read_long(buf, pos)
        what = kind[1]
        if what == "enum":
            if not 0 <= value < len(kind[2]):
                raise DecodeError(f"enum index {value} out of range")
        elif what == "int":
            if not -(2**31) <= value < 2**31:
                raise DecodeError(f"int {value} out of range")
        elif what in _RANGES and not _RANGES[what][0] <= value <= _RANGES[what][1]:
            raise DecodeError(f"{what} {value} is outside the years 1 to 9999")
        return pos
    if code in (_STRING, _BYTES):
        n, pos = _read_long(buf, pos)
        end = pos + n
        if n < 0 or end > len(buf):
            raise DecodeError("length runs past the end of the record")
        if code == _STRING:
            try:
                str(buf[pos:end], "utf-8")
            except UnicodeDecodeError:
                raise DecodeError("string is not valid UTF-8") from None
        return end
    if code == _UNION:
        index, pos = _read_long(buf, pos)
        if not 0 <= index < len(kind[1]):
            raise DecodeError(f"union index {index} out of range")
        return _skip(kind[1][index], buf, pos)
    if code == _BOOL:
        if buf[pos] > 1:
            raise DecodeError("boolean byte is neither 0 nor 1")
        return pos + 1
    if code == _FLOAT:
        return pos + 4
    if code == _DOUBLE:
        return pos + 8
    return pos  # null


def _decode(kind: tuple[Any, ...], buf: bytes, pos: int) -> Any:
    code, what = kind[0], kind[1]
    extra: Any = kind[2] if len(kind) > 2 else None
    if code == _UNION:
        index, pos = _read_long(buf, pos)
        return _decode(kind[1][index], buf, pos)
    if code == _NULL:
        return None
    if code == _VARINT:
        value, _ = _read_long(buf, pos)
        if what == "enum":
            return extra[value]
        if what == "date":
            return dt.date.fromordinal(EPOCH_DATE + value)
        if what == "timestamp-millis":
            return EPOCH + dt.timedelta(milliseconds=value)
        if what == "timestamp-micros":
            return EPOCH + dt.timedelta(microseconds=value)
        return value
    if code in (_STRING, _BYTES):
        n, pos = _read_long(buf, pos)
        data = buf[pos : pos + n]
        if code == _STRING:
            return str(data, "utf-8")
        if what == "decimal":
            return decimal.Decimal(int.from_bytes(data, "big", signed=True)).scaleb(-extra)
        return bytes(data)
    if code == _BOOL:
        return buf[pos] == 1
    if code == _FLOAT:
        return _FLOAT_S.unpack_from(buf, pos)[0]
    return _DOUBLE_S.unpack_from(buf, pos)[0]


class Scanner:
    """Finds the byte range of every field of one record schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        named: dict[str, Any] = {}
        self.names = [f["name"] for f in schema["fields"]]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.kinds = [_kind(f["type"], named) for f in schema["fields"]]

    def offsets(self, body: bytes) -> list[int]:
        """Start of every field, then the end of the body; DecodeError if malformed."""
        out = [0]
        pos = 0
        try:
            for kind in self.kinds:
                pos = _skip(kind, body, pos)
                out.append(pos)
        except IndexError:
            raise DecodeError(
                "Avro body does not match its schema: it ends in the middle of a field"
            ) from None
        except DecodeError as exc:
            raise DecodeError(f"Avro body does not match its schema: {exc}") from None
        if pos != len(body):
            raise DecodeError(
                f"Avro body has {len(body) - pos} bytes left over: written with another schema"
            )
        return out

    def value(self, body: bytes, offsets: list[int], name: str) -> Any:
        i = self.index[name]
        return _decode(self.kinds[i], body, offsets[i])


def scanner_for(schema: dict[str, Any]) -> Scanner | None:
    """A scanner for a flat record schema, or None if it has types this module does not scan."""
    try:
        return Scanner(schema)
    except _Unscannable:
        return None


class LazyRecord(Mapping[str, Any]):
    """A record whose fields are decoded from their byte slices when first read."""

    __slots__ = ("_body", "_cache", "_offsets", "_scanner")

    def __init__(self, scanner: Scanner, body: bytes, offsets: list[int]) -> None:
        self._scanner = scanner
        self._body = body
        self._offsets = offsets
        self._cache: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        try:
            return self._cache[name]
        except KeyError:
            pass
        if name not in self._scanner.index:
            raise KeyError(name)
        value = self._cache[name] = self._scanner.value(self._body, self._offsets, name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._scanner.names)

    def __len__(self) -> int:
        return len(self._scanner.names)

    def slice(self, name: str) -> bytes:
        i = self._scanner.index[name]
        return self._body[self._offsets[i] : self._offsets[i + 1]]


#: one field of a view: name, index in the resource, mask (None: kept as is), nullable
PlanItem = tuple[str, int, Callable[[Any], str | None] | None, bool]


def project(body: bytes, offsets: list[int], record: LazyRecord, plan: list[PlanItem]) -> bytes:
    """The Avro body of a view: kept slices as they are, masked fields encoded as strings."""
    out = []
    for name, i, mask, nullable in plan:
        if mask is None:
            out.append(body[offsets[i] : offsets[i + 1]])
            continue
        masked = mask(record[name])
        if nullable:
            out.append(b"\x00" if masked is None else b"\x02" + encode_string(masked))
        else:
            out.append(encode_string(masked or ""))
    return b"".join(out)
