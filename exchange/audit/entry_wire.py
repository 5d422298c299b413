"""An audit entry's Avro binary, written directly rather than through fastavro.

Every answer of the query gateway writes one entry, so writing an entry is on its
busiest path: fastavro takes about 30 µs for one (it walks the parsed schema,
looks the action up in the enum's symbols, converts the timestamp), this about a
third of that. The bytes are the same as fastavro's for the current entry schema
(:data:`~exchange.audit.entry.AUDIT_ENTRY`; ``tests/unit/test_audit_entry_wire.py``
compares them over many entries), and entries are still read with fastavro. The
Avro binary encoding (https://avro.apache.org/docs/1.11.1/specification/#binary-encoding):
a long is a zig-zag varint; a string its byte length then its UTF-8; an enum the
symbol's index; a union the branch's index then the value; a map blocks of
(count, key-value pairs) ending with a count of 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

#: the fields of an entry, in the schema's order, and how each is written (_UNIQUE: a string
#: new in every entry, such as its id and hashes, written without the cache of repeated ones)
_LONG, _STRING, _OPTIONAL, _ENUM, _MAP, _UNIQUE = range(6)


def _long(n: int, out: bytearray) -> None:
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _string(s: str) -> bytes:
    b = s.encode()
    n = len(b)
    if n < 0x40:  # one byte: the zig-zag of n is 2n
        return bytes((n << 1,)) + b
    out = bytearray()
    _long(n, out)
    return bytes(out + b)


#: strings written again and again (writer, instance, actor, resource, decision, purpose, ...)
#: are encoded once; emptied when full (ids and hashes, written once each, fill it)
_CACHE_SIZE = 4096


class EntryWriter:
    """Writes records of one entry schema: strings, longs, optional strings, one enum and a
    string map, the only types the entry schema uses (anything else is refused on creation)."""

    def __init__(self, schema: Mapping[str, Any], unique: Iterable[str] = ()) -> None:
        """``unique``: string fields whose value differs in every record (not cached)."""
        unique = frozenset(unique)
        plan: list[tuple[str, int]] = []
        self._symbols: dict[str, int] = {}
        for f in schema["fields"]:
            t = f["type"]
            if t == "string":
                plan.append((f["name"], _UNIQUE if f["name"] in unique else _STRING))
            elif t == "long" or t == {"type": "long", "logicalType": "timestamp-millis"}:
                plan.append((f["name"], _LONG))
            elif t == ["null", "string"]:
                plan.append((f["name"], _OPTIONAL))
            elif isinstance(t, dict) and t.get("type") == "enum":
                self._symbols = {s: i for i, s in enumerate(t["symbols"])}
                plan.append((f["name"], _ENUM))
            elif t == {"type": "map", "values": "string"}:
                plan.append((f["name"], _MAP))
            else:
                raise ValueError(f"field {f['name']!r} has a type this writer does not write: {t}")
        self._plan = tuple(plan)
        self._encoded: dict[str, bytes] = {}

    def _remember(self, s: str) -> bytes:
        encoded = _string(s)
        if len(self._encoded) >= _CACHE_SIZE:
            self._encoded.clear()
        self._encoded[s] = encoded
        return encoded

    def write(self, record: Mapping[str, Any], out: bytearray) -> None:
        """Append the Avro binary of ``record`` (timestamps as epoch milliseconds) to ``out``."""
        cached = self._encoded.get
        remember = self._remember
        for name, kind in self._plan:
            value = record[name]
            if kind == _STRING:
                out += cached(value) or remember(value)
            elif kind == _OPTIONAL:
                if value is None:
                    out.append(0)
                else:
                    out.append(2)
                    out += cached(value) or remember(value)
            elif kind == _UNIQUE:
                out += _string(value)
            elif kind == _LONG:
                _long(value, out)
            elif kind == _ENUM:
                _long(self._symbols[value], out)
            else:
                if value:
                    _long(len(value), out)
                    for k, v in value.items():
                        out += cached(k) or remember(k)
                        out += cached(v) or remember(v)
                out.append(0)
