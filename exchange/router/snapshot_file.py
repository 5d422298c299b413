"""Snapshot files (文件下载): a view's current state as JSON Lines, CSV or Parquet, with a manifest.

The format follows the file's suffix (``.jsonl``, ``.csv``, ``.parquet``).
JSON Lines and CSV write values as the bus's JSON form does (dates ISO 8601,
timestamps in China time, decimals as text; CSV writes null as an empty
cell). Parquet is written with pyarrow, each column typed from the view
schema (a masked field is a string there, as on the bus). Beside the file,
``FILE.manifest.json`` says what it holds and how to check it: resource,
consumer, grant, fields, masks, row filter, view schema id, row count,
SHA-256 of the file, the source offsets it is as of, and when it was written.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

from exchange import beijing
from exchange.avro.jsoncodec import dumps, to_jsonable
from exchange.errors import ExchangeError
from exchange.router.snapshot import CurrentState

FORMATS = {".jsonl": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def format_of(path: Path) -> str:
    """The format named by ``path``'s suffix; a clear error for any other."""
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ExchangeError(
            f"{path}: the file name must end in .jsonl, .csv or .parquet (the format)",
            file=str(path),
        )
    return fmt


def write(state: CurrentState, path: Path) -> dict[str, Any]:
    """Write ``state`` to ``path`` and its manifest beside it; returns the manifest."""
    fmt = format_of(path)
    fields = list(state.view.view.fields)
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8", newline="\n") as f:
            for row in state.rows:
                f.write(dumps(row) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="") as f:
            out = csv.writer(f)
            out.writerow(fields)
            for row in state.rows:
                out.writerow(_cell(to_jsonable(row[name])) for name in fields)
    else:
        _write_parquet(state, path)
    manifest = _manifest(state, path, fmt)
    manifest_path(path).write_text(
        json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    return manifest


def manifest_path(path: Path) -> Path:
    return path.with_name(path.name + ".manifest.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _manifest(state: CurrentState, path: Path, fmt: str) -> dict[str, Any]:
    v = state.view.view
    return {
        "resource": v.resource,
        "provider": v.provider,
        "consumer": v.consumer,
        "file": path.name,
        "format": fmt,
        "rows": len(state.rows),
        "sha256": sha256_of(path),
        "view_schema_id": state.view.schema_id,
        "grant_id": v.grant_id,
        "purpose": v.purpose,
        "fields": list(v.fields),
        "masks": dict(v.masks),
        "row_filter": v.row_filter,
        "source_offsets": {str(p): o for p, o in sorted(state.read_to.items())},
        "written_at": beijing.iso(state.at),
    }


def _write_parquet(state: CurrentState, path: Path) -> None:
    import pyarrow as pa  # imported when a Parquet file is asked for: it is big
    import pyarrow.parquet as pq

    schema = pa.schema(
        [_arrow_field(pa, f) for f in state.view.schema["fields"]],
        metadata={"gov.view_schema_id": str(state.view.schema_id)},
    )
    columns = {f.name: [row[f.name] for row in state.rows] for f in schema}
    pq.write_table(pa.Table.from_pydict(columns, schema=schema), path)


def _arrow_field(pa: Any, field: dict[str, Any]) -> Any:
    avro_type = field["type"]
    nullable = isinstance(avro_type, list) and "null" in avro_type
    if isinstance(avro_type, list):
        rest = [t for t in avro_type if t != "null"]
        avro_type = rest[0] if len(rest) == 1 else "string"
    return pa.field(field["name"], _arrow_type(pa, avro_type), nullable=nullable)


def _arrow_type(pa: Any, t: Any) -> Any:
    if isinstance(t, dict):
        logical = t.get("logicalType")
        if logical == "date":
            return pa.date32()
        if logical in ("timestamp-millis", "local-timestamp-millis"):
            return pa.timestamp("ms", tz="UTC" if logical == "timestamp-millis" else None)
        if logical in ("timestamp-micros", "local-timestamp-micros"):
            return pa.timestamp("us", tz="UTC" if logical == "timestamp-micros" else None)
        if logical == "decimal":
            return pa.decimal128(int(t["precision"]), int(t.get("scale", 0)))
        if t.get("type") == "enum":
            return pa.string()
        if t.get("type") == "array":
            return pa.list_(_arrow_type(pa, t["items"]))
        if t.get("type") == "map":
            return pa.map_(pa.string(), _arrow_type(pa, t["values"]))
        if t.get("type") == "fixed":
            return pa.binary(int(t["size"]))
        return _arrow_type(pa, t["type"])
    primitive = {
        "string": pa.string(),
        "int": pa.int32(),
        "long": pa.int64(),
        "float": pa.float32(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "bytes": pa.binary(),
    }
    if t not in primitive:
        raise ExchangeError(f"no Parquet type for the Avro type {t!r}", type=str(t))
    return primitive[t]
