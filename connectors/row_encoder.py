"""A database row to its record's key and Avro body in one compiled function.

The database source used to build each record as a dict (a loop over its
field plans: convert, check, put in primitive form), then hand the dict to
fastavro, which walks the schema again for every record. For a 14-field
resource that was about 40 µs a row, most of the source's own time. A
resource's plans are fixed when the source starts, so :func:`compile_row`
writes them out once as Python code (as ``dataclasses`` and ``attrs`` do for
their methods): one straight-line function per resource that reads each
column, converts and checks it with the same functions as before, and
appends its Avro binary form (zig-zag varints, length-prefixed UTF-8, union
branch indexes) to a list joined once at the end. No dict, no schema walk.

The bytes are the same as fastavro's for every record (tested field type by
field type), so record ids (a hash of the body) do not depend on the path a
record took. Schemas with a field type written out here only for the flat
records a table gives (null, boolean, int, long, float, double, bytes,
string, enum, and nullable unions of these) are compiled; any other shape
(arrays, maps, nested records, fixed, wider unions) returns None and the
source keeps the dict-and-fastavro path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastavro.validation import validate


@dataclass(frozen=True)
class FieldStep:
    """How one field is read from a row and written (a database source's field plan)."""

    field: str
    index: int  # the column's position in the row; -1: the field's default is used
    nullable: bool
    convert: Callable[[Any], Any]
    avro_type: Any  # the field's type without the logical types the converters resolve
    default: Any = None
    check: Any = None  # a parsed Avro type to validate the converted value against
    primitive: Callable[[Any], Any] | None = None
    #: a value of exactly this class is returned unchanged by ``convert`` (text as ``str``,
    #: a date as ``datetime.date``): the call is skipped for it
    kept: type | None = None


class RowFailed(Exception):  # a signal to the source, which names the row
    """A row's field could not be converted, checked or encoded."""

    def __init__(self, step: int, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.step, self.cause = step, cause


def _varint(n: int) -> bytes:
    z = (n << 1) ^ (n >> 63)
    out = []
    while z > 0x7F:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


#: the zig-zag varints of 0 … 65,535, looked up: every string length below 64 KB, and
#: every date until 2149 (days since 1970)
_SMALL = [_varint(n) for n in range(65536)]


def long_bytes(n: int) -> bytes:
    """Avro's encoding of an int or long: a zig-zag varint."""
    if 0 <= n < 65536:
        return _SMALL[n]
    if not -(1 << 63) <= n < 1 << 63:
        raise ValueError(f"{n} is out of range for an Avro long")
    return _varint(n)


_SCALARS = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _plain(t: Any) -> Any:
    """``{"type": "string"}`` as ``"string"``; other types unchanged."""
    if isinstance(t, dict) and set(t) <= {"type"} and isinstance(t.get("type"), str):
        return t["type"]
    return t


def _simple(t: Any) -> bool:
    t = _plain(t)
    if isinstance(t, str):
        return t in _SCALARS  # a named type referred to by name: the general path
    return isinstance(t, dict) and t.get("type") == "enum"


def _supported(t: Any) -> bool:
    t = _plain(t)
    if isinstance(t, list):
        return len(t) == 2 and "null" in t and all(_simple(b) for b in t)
    return _simple(t)


class _Writer:
    """The lines of the generated function, and the names they refer to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.names: dict[str, Any] = {"long_bytes": long_bytes, "validate": validate}

    def name(self, prefix: str, value: Any) -> str:
        key = f"{prefix}{len(self.names)}"
        self.names[key] = value
        return key

    def emit(self, t: Any, v: str, pad: str) -> None:
        """Lines appending the Avro binary form of ``v`` (of type ``t``)."""
        t = _plain(t)
        if isinstance(t, list):
            null_at = t.index("null")
            other = next(b for b in t if b != "null")
            self.lines.append(f"{pad}if {v} is None:")
            self.lines.append(f"{pad}    a({bytes([null_at * 2])!r})")
            self.lines.append(f"{pad}else:")
            self.lines.append(f"{pad}    a({bytes([(1 - null_at) * 2])!r})")
            self.emit(other, v, pad + "    ")
        elif isinstance(t, dict):  # an enum: its symbol's index, looked up
            table = self.name("enum", {s: long_bytes(i) for i, s in enumerate(t["symbols"])})
            self.lines.append(f"{pad}a({table}[{v}])")
        elif t == "string":
            self.lines.append(f"{pad}{v} = {v}.encode()")
            self.lines.append(f"{pad}a(long_bytes(len({v}))); a({v})")
        elif t == "bytes":
            self.lines.append(f"{pad}a(long_bytes(len({v}))); a({v})")
        elif t in ("int", "long"):
            self.lines.append(f"{pad}a(long_bytes({v}))")
        elif t == "boolean":
            self.lines.append(f"{pad}a(b'\\x01' if {v} else b'\\x00')")
        elif t in ("float", "double"):
            packer = self.name("pack", struct.Struct("<f" if t == "float" else "<d").pack)
            self.lines.append(f"{pad}a({packer}({v}))")
        # "null" alone: nothing is written


def compile_row(
    steps: Sequence[FieldStep], key_field: str
) -> Callable[[tuple[Any, ...]], tuple[str, bytes]] | None:
    """One function from a row to ``(key as text, Avro body)``, or None if a field's type
    is not one written out here. The function raises :class:`RowFailed` naming the step
    (the field) of the first value that is NULL where the field is not nullable, fails its
    conversion or check, or cannot be encoded."""
    if not all(_supported(s.avro_type) for s in steps):
        return None
    w = _Writer()
    w.lines += ["def row_to_avro(row):", "    out = []", "    a = out.append", "    key = None"]
    w.lines += ["    at = 0", "    try:"]
    for i, s in enumerate(steps):
        v = f"v{i}"
        w.lines.append(f"        at = {i}")
        if s.index < 0:
            w.lines.append(f"        {v} = {w.name('default', s.default)}")
        else:
            w.lines.append(f"        {v} = row[{s.index}]")
            w.lines.append(f"        if {v} is not None:")
            convert = f"{v} = {w.name('convert', s.convert)}({v})"
            if s.kept is not None:
                convert = f"if {v}.__class__ is not {w.name('kept', s.kept)}: {convert}"
            w.lines.append(f"            {convert}")
            if s.check is not None:
                check = w.name("check", s.check)
                w.lines.append(f"            if not validate({v}, {check}, raise_errors=False):")
                w.lines.append(
                    f"                raise ValueError(f'{{{v}!r}} is not a valid {{{check}}}')"
                )
            if s.field == key_field:
                w.lines.append(f"            key = {v}")
            if s.primitive is not None:
                w.lines.append(f"            {v} = {w.name('primitive', s.primitive)}({v})")
            if not s.nullable:
                w.lines.append("        else:")
                w.lines.append(
                    "            raise ValueError("
                    "'NULL, but the field is not nullable in the resource schema')"
                )
        if s.field == key_field and s.index < 0:
            w.lines.append(f"        key = {v}")
        w.emit(s.avro_type, v, "        ")
    w.lines += [
        "    except Exception as exc:",
        "        raise RowFailed(at, exc) from None",
        "    return str(key), b''.join(out)",
    ]
    w.names["RowFailed"] = RowFailed
    code = compile("\n".join(w.lines), "<row_to_avro>", "exec")
    exec(code, w.names)  # noqa: S102  # code written above from the resource's schema only
    fn: Callable[[tuple[Any, ...]], tuple[str, bytes]] = w.names["row_to_avro"]
    return fn
