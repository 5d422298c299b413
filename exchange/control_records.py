"""Avro schemas of the bus's own control records (catalog snapshots, grant events).

The bus eats its own cooking: control records are Avro, framed like every
other record, and their schemas are registered on ``gov.ctl.schemas``.
"""

from __future__ import annotations

from typing import Any

from exchange import schema as avro
from exchange import wire
from exchange.errors import DecodeError

CATALOG_SNAPSHOT: avro.Schema = {
    "type": "record",
    "name": "CatalogSnapshot",
    "namespace": "gov.exchange.control",
    "doc": "目录快照 A whole catalog as loaded by an administrator; the newest one is in force.",
    "fields": [
        {"name": "version", "type": "int", "doc": "1, 2, 3, ... per load"},
        {
            "name": "loaded_at",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "when it was loaded",
        },
        {"name": "actor", "type": "string", "doc": "who loaded it"},
        {"name": "digest", "type": "string", "doc": "SHA-256 of the document"},
        {"name": "document", "type": "string", "doc": "the catalog as JSON"},
    ],
}


class ControlCodec:
    """Encode/decode one control record type, framed with its schema id."""

    def __init__(self, schema: avro.Schema) -> None:
        self.schema = schema
        self.schema_id = avro.schema_id(schema)
        self._parsed = avro.parse(schema)

    def encode(self, record: dict[str, Any]) -> bytes:
        return wire.frame(self.schema_id, wire.encode(self._parsed, record))

    def decode(self, value: bytes) -> dict[str, Any]:
        sid, body = wire.unframe(value)
        if sid != self.schema_id:
            raise DecodeError(f"schema id {sid} is not a {self.schema['name']}")
        return wire.decode(self._parsed, body)
