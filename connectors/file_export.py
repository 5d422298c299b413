"""Export of what a department has received of a resource, to a file: JSON Lines, CSV or .xlsx.

Everything the department has received of a resource (its delivery topic;
the provider's own source topic) goes to a file, one record per line (or
worksheet row) in topic order, duplicates dropped by record id; a record
deleted later on the topic (a deletion of its key, or a retraction of its
grant with the rule ``delete``) is left out, so an export never brings back
what the bus deleted. The file is
written beside its final name and renamed into place, so a reader never
sees half of it.

Text files are UTF-8 without a byte order mark unless ``encoding`` says
otherwise: ``utf-8-sig`` (a BOM, which Excel needs to see UTF-8) or
``gb18030`` for Excel on Chinese Windows. A value the chosen encoding cannot
hold (``gbk`` has no 𠈌; ``gb18030`` holds every character) is an error
naming the record and field, and no file is written. Worksheets hold text as
text cells, dates as dates and numbers as numbers (:mod:`connectors.sheets`).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import decimal
import json
import os
from pathlib import Path
from typing import Any

from connectors import encodings
from connectors.base import Connector, ConnectorMetrics
from connectors.config import FileExportConfig, Spot
from connectors.db_sink import expected_schema
from connectors.errors import ConnectorDataError, ConnectorError
from connectors.formats import file_format
from exchange.avro import wire
from exchange.avro.jsoncodec import dumps, to_jsonable
from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.bus.envelope import AT_REST, RECORD_ID, RETRACTION
from exchange.bus.registry import SchemaRegistry
from exchange.clients.reader import topic_for
from exchange.control.state import ControlState
from exchange.errors import DecodeError


class FileExport(Connector):
    kind = "file_export"

    def __init__(
        self,
        cfg: FileExportConfig,
        *,
        bus: Connection,
        state: ControlState,
        metrics: ConnectorMetrics | None = None,
        spot: Spot | None = None,
    ) -> None:
        super().__init__(cfg.name, metrics)
        self.cfg = cfg
        self.bus = bus
        self.state = state
        self.spot = spot or Spot()
        self.registry = SchemaRegistry(bus)
        self.topic = ""
        self.format = ""
        self._fields: list[str] = []
        self._setup_done = False

    async def setup(self) -> list[str]:
        cfg = self.cfg
        schema = expected_schema(self.state, cfg.department, cfg.resource, self.spot, self.name)
        self.topic = topic_for(self.state.catalog, cfg.department, cfg.resource)
        self._fields = [f["name"] for f in schema["fields"]]
        self.format = file_format(cfg.path, cfg.format)
        parent = cfg.path.parent
        if not parent.is_dir():
            raise self.spot.error(f"directory {parent} does not exist", "path", connector=self.name)
        if not os.access(parent, os.W_OK):
            raise self.spot.error(
                f"directory {parent} is not writable", "path", connector=self.name
            )
        self._setup_done = True
        return [
            f"{self.name}: {self.topic} → {cfg.path} ({self.format}), fields: {', '.join(self._fields)}"
        ]

    async def start(self) -> None:
        if not self._setup_done:
            await self.setup()
        await self.registry.refresh()

    async def stop(self) -> None:
        """Nothing is held open between polls."""

    async def poll(self) -> int:
        if self.finished:
            return 0
        records = await kafka.read_to_end(self.bus, self.topic, timeout_s=120)
        seen: set[str] = set()
        kept = _Kept()
        for rec in records:
            headers = dict(rec.headers or ())
            rid = headers.get(RECORD_ID, b"").decode()
            if rid and rid in seen:
                continue
            seen.add(rid)
            if rec.value is None:
                kept.forget(rec, headers)
                continue
            try:
                sid, body = wire.unframe(rec.value)
                value = wire.decode(await self.registry.resolve(sid), body)
            except DecodeError as exc:
                raise ConnectorDataError(
                    f"record {rec.topic}[{rec.partition}]@{rec.offset} cannot be decoded: {exc}",
                    connector=self.name,
                ) from exc
            for name in value:
                if name not in self._fields:
                    self._fields.append(name)
            kept.add(rec.key, rec.partition, value)
        values = kept.written()
        self.metrics.rows_read.labels(self.name).inc(len(records))
        self.progress.rows_read += len(records)
        await asyncio.to_thread(self._write, values)
        self.metrics.written.labels(self.name).inc(len(values))
        self.progress.written += len(values)
        self.progress.checkpoint = f"{len(values)} records in {self.cfg.path.name}"
        self.finished = True
        return len(values)

    def _write(self, values: list[dict[str, Any]]) -> None:
        path = self.cfg.path
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            try:
                if self.format == "xlsx":
                    self._write_sheet(tmp, values)
                else:
                    self._write_text(tmp, values)
            except BaseException:
                tmp.unlink(missing_ok=True)
                raise
            os.replace(tmp, path)
        except OSError as exc:
            raise ConnectorError(
                f"{path}: cannot write: {exc.strerror}", connector=self.name
            ) from exc

    def _write_text(self, tmp: Path, values: list[dict[str, Any]]) -> None:
        encoding = self.cfg.encoding or encodings.DEFAULT
        with tmp.open("w", encoding=encoding, newline="") as fh:
            writer = csv.writer(fh, delimiter=self.cfg.delimiter)
            if self.format == "csv":
                try:
                    writer.writerow(self._fields)
                except UnicodeEncodeError as exc:
                    raise self._unencodable(exc, encoding, None, None) from None
            for index, v in enumerate(values):
                try:
                    if self.format == "jsonl":
                        fh.write(dumps(v) + "\n")
                    else:
                        writer.writerow([_csv_text(v.get(name)) for name in self._fields])
                except UnicodeEncodeError as exc:
                    raise self._unencodable(exc, encoding, index, v) from None
            fh.flush()
            os.fsync(fh.fileno())

    def _unencodable(
        self,
        exc: UnicodeEncodeError,
        encoding: str,
        index: int | None,
        value: dict[str, Any] | None,
    ) -> ConnectorDataError:
        """A character the encoding lacks, named with its record and field."""
        bad = exc.object[exc.start : exc.end]
        where = (
            "the header"
            if value is None or index is None
            else f"{_field_holding(value, bad)} of record {index + 1}"
        )
        return ConnectorDataError(
            f"{bad!r} (U+{ord(bad[0]):04X}) in {where} cannot be written in {encoding}: "
            "use encoding gb18030 or utf-8; no file was written",
            file=str(self.cfg.path),
            connector=self.name,
        )

    def _write_sheet(self, tmp: Path, values: list[dict[str, Any]]) -> None:
        from connectors.sheets import SheetWriter  # openpyxl: only for workbooks

        writer = SheetWriter(self.cfg.sheet or self.cfg.resource, list(self._fields))
        for index, v in enumerate(values):
            try:
                writer.append([_sheet_value(v.get(name)) for name in self._fields])
            except (ValueError, TypeError) as exc:
                raise ConnectorDataError(
                    f"record {index + 1} cannot be written to a worksheet: {exc}; "
                    "no file was written",
                    file=str(self.cfg.path),
                    connector=self.name,
                ) from None
        with tmp.open("wb") as fh:
            writer.save(fh)
            fh.flush()
            os.fsync(fh.fileno())

    async def flush(self) -> None:
        """Nothing to do: the file is complete once poll() renamed it into place."""


def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    plain = to_jsonable(value)
    if isinstance(plain, dict | list):
        return json.dumps(plain, ensure_ascii=False)
    return str(plain)


def _sheet_value(value: Any) -> Any:
    """A value as a worksheet cell: dates, times and numbers typed, the rest as text."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.date | decimal.Decimal):
        return value
    return _csv_text(value)


def _field_holding(value: dict[str, Any], text: str) -> str:
    for name, v in value.items():
        if isinstance(v, str) and text in v:
            return f"field {name!r}"
    return "a field"


class _Kept:
    """The values an export writes, in topic order, less what later records deleted."""

    def __init__(self) -> None:
        self.values: list[dict[str, Any] | None] = []
        self._by_key: dict[bytes, list[int]] = {}
        self._by_partition: dict[int, list[int]] = {}

    def add(self, key: bytes | None, partition: int, value: dict[str, Any]) -> None:
        at = len(self.values)
        self.values.append(value)
        if key is not None:
            self._by_key.setdefault(key, []).append(at)
        self._by_partition.setdefault(partition, []).append(at)

    def forget(self, rec: Any, headers: dict[str, bytes]) -> None:
        """A record with no value: a deletion drops the earlier records of its key; a
        grant's retraction with the rule ``delete`` every earlier one of its partition."""
        if RETRACTION in headers:
            if headers.get(AT_REST, b"delete") == b"keep-frozen":
                return
            gone = self._by_partition.pop(rec.partition, [])
        elif rec.key is not None:
            gone = self._by_key.pop(rec.key, [])
        else:
            return
        for at in gone:
            self.values[at] = None

    def written(self) -> list[dict[str, Any]]:
        return [v for v in self.values if v is not None]
