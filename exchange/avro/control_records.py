"""Avro schemas of the bus's own control records (catalog snapshots, grant events).

The bus eats its own cooking: control records are Avro, framed like every
other record, and their schemas are registered on ``gov.ctl.schemas``.
"""

from __future__ import annotations

from typing import Any

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.errors import DecodeError

_SNAPSHOT_FIELDS: list[dict[str, Any]] = [
    {"name": "version", "type": "int", "doc": "1, 2, 3, ... per load"},
    {
        "name": "loaded_at",
        "type": {"type": "long", "logicalType": "timestamp-millis"},
        "doc": "when it was loaded",
    },
    {"name": "actor", "type": "string", "doc": "who loaded it"},
    {"name": "digest", "type": "string", "doc": "SHA-256 of the document"},
    {"name": "document", "type": "string", "doc": "the catalog as JSON"},
]

#: the snapshot as written before loads were signed; still decoded (signature: null)
CATALOG_SNAPSHOT_V1: avro.Schema = {
    "type": "record",
    "name": "CatalogSnapshot",
    "namespace": "gov.exchange.control",
    "doc": "目录快照 A whole catalog as loaded by an administrator; the newest one is in force.",
    "fields": _SNAPSHOT_FIELDS,
}

CATALOG_SNAPSHOT: avro.Schema = {
    **CATALOG_SNAPSHOT_V1,
    "fields": [
        *_SNAPSHOT_FIELDS,
        {
            "name": "signature",
            "type": ["null", "string"],
            "default": None,
            "doc": "Ed25519 signature of the loading catalog administrator (base64), "
            "over every other field",
        },
    ],
}


class ControlCodec:
    """Encode/decode one control record type, framed with its schema id.

    ``older``: earlier versions of the schema, BACKWARD compatible with it;
    records written with them are still decoded, read as the current version
    (added fields take their defaults).
    """

    def __init__(self, schema: avro.Schema, *, older: tuple[avro.Schema, ...] = ()) -> None:
        self.schema = schema
        self.schema_id = avro.schema_id(schema)
        self._parsed = avro.parse(schema)
        self._older = {avro.schema_id(s): avro.parse(s) for s in older}

    def encode(self, record: dict[str, Any]) -> bytes:
        return wire.frame(self.schema_id, wire.encode(self._parsed, record))

    def decode(self, value: bytes) -> dict[str, Any]:
        sid, body = wire.unframe(value)
        if sid == self.schema_id:
            return wire.decode(self._parsed, body)
        if sid in self._older:
            return wire.decode(self._older[sid], body, reader=self._parsed)
        raise DecodeError(f"schema id {sid} is not a {self.schema['name']}")
