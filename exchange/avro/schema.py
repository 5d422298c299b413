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


MAX_SCHEMA_BYTES = 1_000_000
"""Largest ``.avsc`` file accepted."""
MAX_SCHEMA_DEPTH = 32
"""Deepest nesting of JSON arrays and objects accepted in an ``.avsc`` file."""


def load_file(path: str) -> Schema:
    """Read and parse an ``.avsc`` file; errors name the file.

    Refused besides what :func:`parse` refuses: a file over
    :data:`MAX_SCHEMA_BYTES`, text that is not UTF-8, JSON nested deeper
    than :data:`MAX_SCHEMA_DEPTH`, and a record type that contains itself
    (a catalog field must be a value, not a tree of unbounded depth).
    """
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_SCHEMA_BYTES + 1)
    except OSError as exc:
        raise SchemaError(f"{path}: cannot read schema file: {exc.strerror}") from exc
    if len(raw) > MAX_SCHEMA_BYTES:
        raise SchemaError(f"{path}: schema file is over the {MAX_SCHEMA_BYTES} bytes allowed")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    too_deep = SchemaError(f"{path}: nested more than {MAX_SCHEMA_DEPTH} levels deep")
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(f"{path}: not valid JSON: {exc}") from exc
    except RecursionError:
        raise too_deep from None
    if _depth(schema) > MAX_SCHEMA_DEPTH:
        raise too_deep
    parse(schema, where=path)
    recursive = _recursive_type(schema, "", frozenset())
    if recursive is not None:
        raise SchemaError(
            f"{path}: record type {recursive!r} contains itself; recursive types are not "
            "allowed in the catalog"
        )
    return schema  # type: ignore[no-any-return]


def _depth(value: Any) -> int:
    """How deeply JSON arrays and objects nest in ``value`` (without recursion)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def _full_name(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


def _recursive_type(avro_type: Any, namespace: str, open_records: frozenset[str]) -> str | None:
    """The full name of a record type used inside its own definition, or None."""
    if isinstance(avro_type, str):
        name = _full_name(avro_type, namespace)
        return name if name in open_records else None
    if isinstance(avro_type, list):
        for branch in avro_type:
            found = _recursive_type(branch, namespace, open_records)
            if found is not None:
                return found
        return None
    if not isinstance(avro_type, dict):
        return None
    kind = avro_type.get("type")
    if kind in ("record", "error"):
        name = str(avro_type.get("name", ""))
        inner_ns = name.rpartition(".")[0] if "." in name else avro_type.get("namespace", namespace)
        full = _full_name(name, str(inner_ns or ""))
        for f in avro_type.get("fields", []):
            if isinstance(f, dict):
                found = _recursive_type(
                    f.get("type"), full.rpartition(".")[0], open_records | {full}
                )
                if found is not None:
                    return found
        return None
    if kind == "array":
        return _recursive_type(avro_type.get("items"), namespace, open_records)
    if kind == "map":
        return _recursive_type(avro_type.get("values"), namespace, open_records)
    return _recursive_type(kind, namespace, open_records)


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
    # the Apache Avro library checks compatibility only (a catalog load): imported then
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    from avro.schema import parse as avro_parse

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
    # the Apache Avro library checks compatibility only (a catalog load): imported then
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
    from avro.schema import parse as avro_parse

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
