"""Records on the wire: Confluent framing around Avro binary.

``byte 0``: magic 0; ``bytes 1-4``: schema id, big-endian; then the record in
Avro binary encoding (no container header). Any Kafka tool that can resolve
the schema id can read the bus.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from exchange.errors import DecodeError

MAGIC = 0
_HEADER = struct.Struct(">bI")
HEADER_SIZE = _HEADER.size


def frame(schema_id: int, avro_bytes: bytes) -> bytes:
    return _HEADER.pack(MAGIC, schema_id) + avro_bytes


def unframe(value: bytes | None) -> tuple[int, memoryview]:
    """(schema id, Avro body) of a framed value; :class:`DecodeError` says what is wrong."""
    if not value:
        raise DecodeError("empty value: no magic byte, schema id or record")
    if len(value) < HEADER_SIZE:
        raise DecodeError(f"value of {len(value)} bytes is shorter than the 5-byte header")
    magic, sid = _HEADER.unpack_from(value)
    if magic != MAGIC:
        raise DecodeError(f"wrong magic byte {magic} (expected 0: Confluent wire format)")
    return sid, memoryview(value)[HEADER_SIZE:]


def encode(parsed_schema: Any, record: dict[str, Any]) -> bytes:
    """Avro binary of one record (no framing)."""
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, parsed_schema, record)
    return buf.getvalue()


def decode(parsed_schema: Any, body: bytes | memoryview, *, reader: Any = None) -> dict[str, Any]:
    """Decode an Avro body, checking that it is consumed exactly.

    ``parsed_schema`` is the schema the body was written with; ``reader``, if
    given, a compatible schema to read it as (Avro schema resolution).
    """
    buf = io.BytesIO(body)
    try:
        record = fastavro.schemaless_reader(buf, parsed_schema, reader)
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError, ...
        raise DecodeError(
            f"Avro body does not match its schema: {exc or type(exc).__name__}"
        ) from exc
    if buf.tell() != len(body):
        raise DecodeError(
            f"Avro body has {len(body) - buf.tell()} bytes left over: written with another schema"
        )
    if not isinstance(record, dict):
        raise DecodeError("Avro body is not a record")
    return record
