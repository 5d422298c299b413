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
import functools
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from exchange.errors import DecodeError

try:  # the C core of the offset scan, built at install where a C compiler is (pyproject.toml)
    from exchange.avro._native import Layout as _NativeLayout
except ImportError:  # pragma: no cover - an install without a compiler
    _NativeLayout = None  # type: ignore[assignment,misc]

#: True when :attr:`Scanner.offsets` runs in C (exchange/avro/_native.c), with the
#: generated Python scanner answering whatever the C code is unsure of
NATIVE = _NativeLayout is not None

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


#: Avro's one-byte lengths 0..63, made once (most masked values are that short)
_SHORT_LENGTHS = [zigzag(n) for n in range(64)]


def encode_string(value: str) -> bytes:
    data = value.encode("utf-8")
    n = len(data)
    return (_SHORT_LENGTHS[n] if n < 64 else zigzag(n)) + data


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


_BAD = "Avro body does not match its schema: "


class _Source:
    """Python source being generated, one indented line at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.consts: dict[str, Any] = {}

    def emit(self, depth: int, line: str) -> None:
        self.lines.append("    " * depth + line)

    def const(self, value: Any) -> str:
        """A name for ``value`` in the generated function's globals (no value is ever spliced)."""
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        return name

    def function(self, name: str, where: str) -> Any:
        """The function ``name`` defined by the source, its constants bound."""
        env: dict[str, Any] = dict(self.consts)
        exec(_compiled("\n".join(self.lines), where), env)  # noqa: S102
        return env[name]


@functools.lru_cache(maxsize=4096)
def _compiled(source: str, where: str) -> Any:
    """Compiled once per distinct source: views of one shape differ only in their constants
    (3,600 grants have a few dozen shapes; compiling each view took most of a recompile)."""
    return compile(source, where, "exec")


def _emit_varint(src: _Source, d: int) -> None:
    """Read a zigzag varint at ``pos`` into ``v``: one or two bytes inline (lengths under
    8,192 bytes, small numbers), longer ones (dates, timestamps) by call."""
    src.emit(d, "b = buf[pos]")
    src.emit(d, "if b < 128:")
    src.emit(d + 1, "v = (b >> 1) ^ -(b & 1)")
    src.emit(d + 1, "pos += 1")
    src.emit(d, "elif buf[pos + 1] < 128:")
    src.emit(d + 1, "b = (b & 127) | (buf[pos + 1] << 7)")
    src.emit(d + 1, "v = (b >> 1) ^ -(b & 1)")
    src.emit(d + 1, "pos += 2")
    src.emit(d, "else:  # three bytes or more (dates, timestamps): the loop, inline")
    src.emit(d + 1, "n = b & 127")
    src.emit(d + 1, "shift = 7")
    src.emit(d + 1, "pos += 1")
    src.emit(d + 1, "while b & 128:")
    src.emit(d + 2, "b = buf[pos]")
    src.emit(d + 2, "pos += 1")
    src.emit(d + 2, "n |= (b & 127) << shift")
    src.emit(d + 2, "shift += 7")
    src.emit(d + 2, "if shift > 70:")
    src.emit(d + 3, 'raise DecodeError("varint longer than 10 bytes")')
    src.emit(d + 1, "v = (n >> 1) ^ -(n & 1)")


def _emit_skip(src: _Source, kind: tuple[Any, ...], d: int) -> None:
    """Code that checks one value at ``pos`` and moves ``pos`` past it."""
    code = kind[0]
    if code == _VARINT:
        _emit_varint(src, d)
        what = kind[1]
        if what == "enum":
            src.emit(d, f"if not 0 <= v < {len(kind[2])}:")
            src.emit(d + 1, 'raise DecodeError(f"enum index {v} out of range")')
        elif what == "int":
            src.emit(d, f"if not {-(2**31)} <= v < {2**31}:")
            src.emit(d + 1, 'raise DecodeError(f"int {v} out of range")')
        elif what in _RANGES:
            low, high = _RANGES[what]
            src.emit(d, f"if not {low} <= v <= {high}:")
            src.emit(
                d + 1,
                f'raise DecodeError(f"{what} {{v}} is outside the years 1 to 9999")',
            )
    elif code in (_STRING, _BYTES):
        _emit_varint(src, d)
        src.emit(d, "end = pos + v")
        src.emit(d, "if v < 0 or end > size:")
        src.emit(d + 1, 'raise DecodeError("length runs past the end of the record")')
        if code == _STRING:
            src.emit(d, "if check:")
            src.emit(d + 1, "strings.append(buf[pos:end])")
        src.emit(d, "pos = end")
    elif code == _UNION:
        branches = kind[1]
        src.emit(d, "b = buf[pos]")
        src.emit(d, "pos += 1")
        for index, branch in enumerate(branches):
            src.emit(d, f"{'if' if index == 0 else 'elif'} b == {2 * index}:")
            if branch[0] == _NULL:
                src.emit(d + 1, "pass")
            else:
                _emit_skip(src, branch, d + 1)
        src.emit(d, "else:")
        src.emit(d + 1, "v, _ = _read_long(buf, pos - 1)")
        src.emit(d + 1, 'raise DecodeError(f"union index {v} out of range")')
    elif code == _BOOL:
        src.emit(d, "if buf[pos] > 1:")
        src.emit(d + 1, 'raise DecodeError("boolean byte is neither 0 nor 1")')
        src.emit(d, "pos += 1")
    elif code == _FLOAT:
        src.emit(d, "pos += 4")
    elif code == _DOUBLE:
        src.emit(d, "pos += 8")
    # null: nothing to read


def _compile_offsets(kinds: list[tuple[Any, ...]]) -> Callable[[bytes], list[int]]:
    """A function made for one schema: field boundaries of a body, every value checked.

    Generated Python with the schema's field layout unrolled runs about twice as fast
    as walking the kinds generically, and the router calls it once per record. Only
    integers and the names of this module's helpers appear in the generated code.
    """
    src = _Source()
    src.emit(0, "def offsets(buf):")
    src.emit(1, "if type(buf) is not bytes:")
    src.emit(2, "buf = bytes(buf)")
    src.emit(1, "size = len(buf)")
    src.emit(1, "check = not buf.isascii()  # an ASCII body holds valid UTF-8 strings only")
    src.emit(1, "strings = []")
    src.emit(1, "pos = 0")
    src.emit(1, "try:")
    for i, kind in enumerate(kinds):
        _emit_skip(src, kind, 2)
        src.emit(2, f"p{i} = pos")
    # every string at once: joined by NUL, which is valid UTF-8 and can neither end a
    # multi-byte sequence nor continue one, so the join is valid exactly when each is
    src.emit(2, "if strings:")
    src.emit(3, 'str(b"\\0".join(strings), "utf-8")')
    src.emit(1, "except IndexError:")
    src.emit(2, f'raise DecodeError("{_BAD}it ends in the middle of a field") from None')
    src.emit(1, "except UnicodeDecodeError:")
    src.emit(2, f'raise DecodeError("{_BAD}string is not valid UTF-8") from None')
    src.emit(1, "except DecodeError as exc:")
    src.emit(2, f'raise DecodeError(f"{_BAD}{{exc}}") from None')
    src.emit(1, "if pos != size:")
    src.emit(2, "if pos > size:")
    src.emit(3, f'raise DecodeError("{_BAD}it ends in the middle of a field")')
    src.emit(2, "raise DecodeError(")
    src.emit(3, 'f"Avro body has {size - pos} bytes left over: written with another schema"')
    src.emit(2, ")")
    src.emit(1, f"return [0, {', '.join(f'p{i}' for i in range(len(kinds)))}]")
    env: dict[str, Any] = {"DecodeError": DecodeError, "_read_long": _read_long}
    exec(_compiled("\n".join(src.lines), "<avroscan offsets>"), env)  # noqa: S102
    return env["offsets"]  # type: ignore[no-any-return]


def _native_kind(kind: tuple[Any, ...]) -> tuple[Any, ...]:
    """A field kind as the C scanner takes it: (kind, low, high), or (UNION, branches)."""
    code, what = kind[0], kind[1]
    if code == _UNION:
        return (_UNION, tuple(_native_kind(b) for b in what))
    if code != _VARINT or what == "long":
        return (code, None, None)
    if what == "enum":
        return (code, 0, len(kind[2]) - 1)
    if what == "int":
        return (code, -(2**31), 2**31 - 1)
    low, high = _RANGES[what]
    return (code, low, high)


def _offsets(kinds: list[tuple[Any, ...]]) -> Callable[[bytes], list[int]]:
    """The offset scan of one layout: in C where built, the generated Python otherwise.

    The C scan answers only for bodies it is certain are well formed; it hands any other
    to the Python scan, so errors (and their reasons) are always the Python scan's.
    """
    scan = _compile_offsets(kinds)
    if _NativeLayout is None:
        return scan
    return _NativeLayout([_native_kind(k) for k in kinds], scan)


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


def _string_at(buf: bytes, pos: int) -> str:
    b = buf[pos]
    if b < 128:  # a length under 64: one varint byte
        return str(buf[pos + 1 : pos + 1 + (b >> 1)], "utf-8")
    n, pos = _read_long(buf, pos)
    return str(buf[pos : pos + n], "utf-8")


def _decimal_at(scale: int) -> Callable[[bytes, int], decimal.Decimal]:
    exponent = -scale

    def decimal_at(buf: bytes, pos: int) -> decimal.Decimal:
        b = buf[pos]
        if b < 128:  # a length under 64: one varint byte
            data = buf[pos + 1 : pos + 1 + (b >> 1)]
        else:
            n, pos = _read_long(buf, pos)
            data = buf[pos : pos + n]
        return decimal.Decimal(int.from_bytes(data, "big", signed=True)).scaleb(exponent)

    return decimal_at


def _decoder(kind: tuple[Any, ...]) -> Callable[[bytes, int], Any]:
    """A decoder of one field's value at a position, specialised for the common kinds."""
    if kind[0] == _STRING:
        return _string_at
    if kind[0] == _BYTES and kind[1] == "decimal":
        return _decimal_at(kind[2])
    if kind[0] == _UNION and len(kind[1]) == 2 and kind[1][0][0] == _NULL:
        inner = _decoder(kind[1][1])

        def nullable(buf: bytes, pos: int) -> Any:
            if buf[pos] == 0:
                return None
            return inner(buf, pos + 1)  # index 1 is the single byte 2

        return nullable

    def generic(buf: bytes, pos: int) -> Any:
        return _decode(kind, buf, pos)

    return generic


class Scanner:
    """Finds the byte range of every field of one record schema."""

    def __init__(self, schema: dict[str, Any]) -> None:
        named: dict[str, Any] = {}
        self.names = [f["name"] for f in schema["fields"]]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.kinds = [_kind(f["type"], named) for f in schema["fields"]]
        #: ``offsets(body)``: start of every field, then the end of the body; DecodeError if
        #: the body is malformed (checked as a full decoder would)
        self.offsets: Callable[[bytes], list[int]] = _offsets(self.kinds)
        #: name -> (field index, decoder of its value)
        self.fields: dict[str, tuple[int, Callable[[bytes, int], Any]]] = {
            name: (i, _decoder(kind))
            for i, (name, kind) in enumerate(zip(self.names, self.kinds, strict=True))
        }

    def string_bytes(self, name: str) -> Callable[[bytes, list[int]], bytes] | None:
        """For a (non-null) string field: a function giving its UTF-8 bytes, undecoded.

        ``str(value).encode()`` of such a field is exactly these bytes (``offsets``
        already checked they are UTF-8), so the router takes its Kafka key this way
        without decoding and re-encoding it. None for any other kind of field.
        """
        i = self.index[name]
        if self.kinds[i][0] != _STRING:
            return None

        def raw(body: bytes, offsets: list[int]) -> bytes:
            start, end = offsets[i], offsets[i + 1]
            if body[start] < 128:  # a one-byte length
                return body[start + 1 : end]
            _, pos = _read_long(body, start)
            return body[pos:end]

        return raw

    def value(self, body: bytes, offsets: list[int], name: str) -> Any:
        i, decode = self.fields[name]
        return decode(body, offsets[i])


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
        cache = self._cache
        if name in cache:
            return cache[name]
        try:
            i, decode = self._scanner.fields[name]
        except KeyError:
            raise KeyError(name) from None
        value = cache[name] = decode(self._body, self._offsets[i])
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


def _masked(mask: Callable[[Any], str | None], nullable: bool) -> Callable[[Any], bytes]:
    """The Avro encoding of a masked value: a string, or a nullable string."""
    if nullable:

        def encode_nullable(value: Any) -> bytes:
            masked = mask(value)
            return b"\x00" if masked is None else b"\x02" + encode_string(masked)

        return encode_nullable

    def encode(value: Any) -> bytes:
        return encode_string(mask(value) or "")

    return encode


def compile_projection(
    plan: list[PlanItem], prefix: bytes = b""
) -> Callable[[bytes, list[int], LazyRecord], bytes]:
    """``prefix`` and :func:`project`'s output, from a function made for this plan.

    Neighbouring kept fields are copied as one slice (a view keeping fields 3 to 8
    of the source copies ``body[o[3]:o[9]]``), and the loop over the plan is
    unrolled, so a typical view costs a few slices and one join per record.

    The function is made by a factory compiled once per shape of plan (which
    slices, which masked fields, with or without a prefix); views of one shape
    differ only in the prefix, names and masks handed to the factory, so
    recompiling thousands of views makes no Python source at all.
    """
    shape: list[tuple[int, int] | str] = []  # (first, last) slices; "m" a masked field
    args: list[Any] = [prefix] if prefix else []
    run: tuple[int, int] | None = None  # source fields first..last kept as one slice
    for name, i, mask, nullable in plan:
        if mask is None:
            if run is not None and run[1] + 1 == i:
                run = (run[0], i)
            else:
                if run is not None:
                    shape.append(run)
                run = (i, i)
            continue
        if run is not None:
            shape.append(run)
        run = None
        shape.append("m")
        args += (_masked(mask, nullable), name)
    if run is not None:
        shape.append(run)
    factory = _projection_factory(bool(prefix), tuple(shape))
    return factory(*args)  # type: ignore[no-any-return]


@functools.lru_cache(maxsize=4096)
def _projection_factory(prefixed: bool, shape: tuple[tuple[int, int] | str, ...]) -> Any:
    """``make(prefix?, mask0, name0, mask1, name1, ...)`` returning the render function of
    a plan of this shape (see :func:`compile_projection`)."""
    params: list[str] = ["prefix"] if prefixed else []
    parts: list[str] = list(params)
    for item in shape:
        if isinstance(item, str):  # "m": a masked field
            m, n = f"m{len(params)}", f"n{len(params)}"
            params += (m, n)
            parts.append(f"{m}(record[{n}])")
        else:
            parts.append(f"buf[o[{item[0]}]:o[{item[1] + 1}]]")
    src = _Source()
    src.emit(0, f"def make({', '.join(params)}):")
    src.emit(1, "def render(buf, o, record):")
    src.emit(2, f"return b''.join(({', '.join(parts)}{',' if len(parts) == 1 else ''}))")
    src.emit(1, "return render")
    return src.function("make", "<avroscan projection>")
