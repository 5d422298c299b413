"""Avro schemas: parsing, stable schema ids and BACKWARD compatibility.

A schema id is the first 31 bits of the SHA-256 of the schema's JSON with keys
sorted. Every router instance and every publisher derives the same id from the
same schema without asking anyone, so no single writer has to hand out
sequential ids. The id goes in the Confluent wire format (magic byte 0, then
4 bytes big-endian), so Kafka tools that resolve ids can read the bus.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import fastavro
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse as avro_parse

from exchange.errors import SchemaError

Schema = dict[str, Any]


def canonical_json(schema: Schema) -> str:
    """The exact JSON text a schema id is computed from (keys sorted, no spaces)."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def schema_id(schema: Schema) -> int:
    """Stable 31-bit id of a schema, the same on every machine."""
    digest = hashlib.sha256(canonical_json(schema).encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def parse(schema: Schema, *, where: str = "schema") -> Any:
    """Parse a schema with fastavro, turning its errors into :class:`SchemaError`."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaError(f"{where}: top-level schema must be an Avro record")
    try:
        return fastavro.parse_schema(schema)
    except Exception as exc:  # fastavro raises several unrelated types
        raise SchemaError(f"{where}: not a valid Avro schema: {exc}") from exc


def load_file(path: str) -> Schema:
    """Read and parse an ``.avsc`` file; errors name the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            schema = json.load(fh)
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema file: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{path}: not valid JSON: {exc}") from exc
    parse(schema, where=path)
    return schema  # type: ignore[no-any-return]


def field_is_nullable(avro_type: Any) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def non_null_type(avro_type: Any) -> Any:
    """The non-null branch of ``["null", T]``, or the type itself."""
    if isinstance(avro_type, list):
        branches = [t for t in avro_type if t != "null"]
        return branches[0] if len(branches) == 1 else avro_type
    return avro_type


def logical_type(avro_type: Any) -> str | None:
    t = non_null_type(avro_type)
    if isinstance(t, dict):
        lt = t.get("logicalType")
        return str(lt) if lt else None
    return None


def check_backward(new: Schema, old: Schema) -> list[str]:
    """Reasons why consumers using ``new`` cannot read data written with ``old``.

    BACKWARD compatibility, the Kafka ecosystem's default: the new schema reads
    everything the old one wrote. Empty list means compatible.
    """
    reader = avro_parse(json.dumps(new))
    writer = avro_parse(json.dumps(old))
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    old_fields = {g["name"]: g for g in old.get("fields", [])}
    reasons = [
        f"field {f['name']!r} added without a default"
        for f in new.get("fields", [])
        if "default" not in f and f["name"] not in old_fields
    ]
    # avro reports messages and locations as unordered sets; check field by field to
    # say which field a type change breaks
    explained = False
    for f in new.get("fields", []):
        before = old_fields.get(f["name"])
        if before is None:
            continue
        for message in _field_incompatibility(new, f, before):
            reasons.append(f"field {f['name']!r}: {message}")
            explained = True
    if not explained:
        reasons.extend(
            m
            for m in sorted(result.messages)
            if m not in old_fields and not any(m in r for r in reasons)
        )
    return reasons or [", ".join(sorted(str(i.value) for i in result.incompatibilities))]


def _field_incompatibility(new: Schema, field: dict[str, Any], before: dict[str, Any]) -> list[str]:
    """Why ``field`` of the new schema cannot read ``before`` of the old one (empty if it can)."""
    shell = {k: v for k, v in new.items() if k in ("type", "name", "namespace")}
    try:
        reader = avro_parse(json.dumps({**shell, "fields": [field]}))
        writer = avro_parse(json.dumps({**shell, "fields": [before]}))
    except Exception:  # a field referring to a named type defined elsewhere: skip it
        return []
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    return sorted(result.messages)
