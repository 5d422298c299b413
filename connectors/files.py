"""Files in and out of the bus: JSON Lines and CSV.

**Import** publishes a file as records of a resource the department
provides. The whole file is read and checked first (every line converted,
checked against the schema and its size against Kafka's and the router's
limits, :mod:`exchange.bus.limits`); the first bad line stops the import with
its line number (and the column and field, or the size and the limit), and
nothing of the file is sent. Then it goes out ``batch_size`` records at a
time, each batch acknowledged by the broker before the next; a broker that
fails part way leaves the acknowledged batches published. Importing the same
file again is safe: the same records get the same record ids, which
consumers drop as duplicates.

CSV: the first line names the columns; ``mapping`` (field: column) renames,
a field not mapped is read from the column of its own name, a column that
feeds no field is refused unless listed in ``ignore_columns``. An empty cell
is NULL. Cells are read as JSON Lines values are (:mod:`exchange.avro.jsoncodec`):
dates ``YYYY-MM-DD``, timestamps ISO-8601 (without an offset: China time),
decimals as written, booleans ``true``/``false`` (or ``1``/``0``), bytes in
base64, records, arrays and maps as JSON.

**Export** writes everything the department has received of a resource
(its delivery topic; the provider's own source topic) to a file, one record
per line in topic order, duplicates dropped by record id. The file is
written beside its final name and renamed into place, so a reader never
sees half of it.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors import mapping
from connectors.base import Connector, ConnectorMetrics
from connectors.config import FileExportConfig, FileImportConfig, Spot
from connectors.db_sink import expected_schema
from connectors.errors import ConnectorConfigError, ConnectorDataError, ConnectorError
from exchange.avro import wire
from exchange.avro.jsoncodec import FieldProblem, dumps, from_json, to_jsonable
from exchange.bus import kafka, limits
from exchange.bus.connection import Connection
from exchange.bus.envelope import RECORD_ID
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog, Resource
from exchange.clients.publisher import Prepared, Publisher
from exchange.clients.reader import topic_for
from exchange.control.state import ControlState
from exchange.errors import DecodeError, ExchangeError, RecordInvalid, UnknownResource

_INT = re.compile(r"^[+-]?\d+$")


@dataclass(frozen=True)
class _CsvColumns:
    """A CSV file's header and which column feeds which field (``None``: the field's default)."""

    header: list[str]
    wanted: dict[str, str]  # field: column
    plan: list[tuple[str, int | None, mapping.FieldType]]


def file_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix in (".csv", ".txt"):
        return "csv"
    raise ConnectorConfigError(
        f"{path}: cannot tell the format from the name: set format: jsonl or csv"
    )


class FileImport(Connector):
    kind = "file_import"

    def __init__(
        self,
        cfg: FileImportConfig,
        *,
        bus: Connection,
        catalog: Catalog,
        metrics: ConnectorMetrics | None = None,
        spot: Spot | None = None,
    ) -> None:
        super().__init__(cfg.name, metrics)
        self.cfg = cfg
        self.bus = bus
        self.catalog = catalog
        self.spot = spot or Spot()
        self._publisher: Publisher | None = None
        self._prepared: list[Prepared] | None = None
        self._sent = 0
        self._started = False

    async def setup(self) -> list[str]:
        cfg = self.cfg
        try:
            res = self.catalog.resource(cfg.resource)
            self.catalog.department(cfg.department)
        except UnknownResource as exc:
            raise self.spot.error(str(exc), "resource", connector=self.name) from None
        if res.provider != cfg.department:
            raise self.spot.error(
                f"department {cfg.department!r} cannot publish {res.id!r}: its provider is {res.provider!r}",
                "department",
                connector=self.name,
            )
        fmt = file_format(cfg.path, cfg.format)
        if cfg.mapping and fmt != "csv":
            raise self.spot.error(
                "mapping applies to CSV files only", "mapping", connector=self.name
            )
        publisher = Publisher(self.bus, self.catalog, cfg.department)
        try:
            # reading and validating a whole file is CPU work: off the event loop
            if fmt == "jsonl":
                prepared = await asyncio.to_thread(publisher.prepare_json_lines, res.id, cfg.path)
            else:
                prepared = await asyncio.to_thread(self._read_csv, publisher, res)
            # sizes too, as far as known without a broker (start() adds the topic's limit)
            limits.check(prepared, {})
        except RecordInvalid as exc:  # RecordTooLarge too
            raise self._refused(exc) from None
        except ConnectorError:
            raise
        except ExchangeError as exc:
            raise ConnectorDataError(str(exc), connector=self.name) from None
        self._prepared = prepared
        self._publisher = publisher
        return [f"{self.name}: {cfg.path} ({fmt}) → {res.id}: {len(prepared)} records, all valid"]

    def _refused(self, exc: RecordInvalid) -> ConnectorDataError:
        return ConnectorDataError(
            f"{exc.reason}; nothing of the file was published",
            file=str(self.cfg.path),
            line=exc.facts.get("line"),
            connector=self.name,
            field=exc.facts.get("field"),
            size=exc.facts.get("size"),
            limit=exc.facts.get("limit"),
        )

    def _read_csv(self, publisher: Publisher, res: Resource) -> list[Prepared]:
        """Every record of the CSV file, converted, checked and prepared; the first bad line stops it."""
        cfg, path = self.cfg, self.cfg.path
        fields = {f["name"]: f for f in res.schema_["fields"]}
        unknown = sorted(set(cfg.mapping) - set(fields))
        if unknown:
            raise self.spot.error(
                f"{unknown[0]!r} is not a field of {res.id!r}",
                "mapping",
                unknown[0],
                connector=self.name,
                field=unknown[0],
            )
        try:
            fh = path.open(encoding="utf-8-sig", newline="")
        except OSError as exc:
            raise ConnectorError(
                f"{path}: cannot read: {exc.strerror}", connector=self.name
            ) from exc
        out: list[Prepared] = []
        with fh:
            reader = csv.reader(fh, delimiter=cfg.delimiter, strict=True)
            try:
                header = next(reader, None)
                if header is None:
                    raise self._bad("the file is empty: the first line must name the columns", 1)
                columns = self._csv_columns(header, fields, res)
                end = reader.line_num
                for cells in reader:
                    line, end = end + 1, reader.line_num
                    if any(cells):
                        out.append(self._csv_record(cells, line, columns, publisher, res))
            except csv.Error as exc:
                raise self._bad(f"not valid CSV: {exc}", reader.line_num) from None
            except UnicodeDecodeError as exc:
                raise ConnectorDataError(
                    f"{path}: not UTF-8 text (byte {exc.start})", connector=self.name
                ) from None
        return out

    def _csv_columns(
        self, header: list[str], fields: dict[str, dict[str, Any]], res: Resource
    ) -> _CsvColumns:
        """Which column feeds which field: no column twice, none unused, none missing."""
        cfg = self.cfg
        index: dict[str, int] = {}
        for i, name in enumerate(header):
            if name in index:
                raise self._bad(f"column {name!r} appears twice in the header", 1, column=name)
            index[name] = i
        wanted = {f: cfg.mapping.get(f, f) for f in fields}
        used = set(wanted.values()) | set(cfg.ignore_columns)
        for name in header:
            if name not in used:
                raise self._bad(
                    f"column {name!r} feeds no field of {res.id!r}: map it (mapping: FIELD: "
                    f"{name}) or list it under ignore_columns",
                    1,
                    column=name,
                )
        plan: list[tuple[str, int | None, mapping.FieldType]] = []
        for fname, column in wanted.items():
            ft = mapping.field_type(fields[fname]["type"])
            if column not in index:
                if fname not in cfg.mapping and "default" in fields[fname]:
                    plan.append((fname, None, ft))
                    continue
                raise self._bad(
                    f"no column {column!r} for field {fname!r}", 1, column=column, field=fname
                )
            plan.append((fname, index[column], ft))
        return _CsvColumns(header, wanted, plan)

    def _csv_record(
        self,
        cells: list[str],
        line: int,
        columns: _CsvColumns,
        publisher: Publisher,
        res: Resource,
    ) -> Prepared:
        """One line of the file as a record ready to send; its errors name line, column and field."""
        header, wanted = columns.header, columns.wanted
        if len(cells) != len(header):
            raise self._bad(f"{len(cells)} cells, but the header names {len(header)} columns", line)
        data: dict[str, Any] = {}
        for fname, idx, ft in columns.plan:
            if idx is None:
                continue
            try:
                data[fname] = _cell(cells[idx], ft)
            except ValueError as exc:
                raise self._bad(str(exc), line, column=header[idx], field=fname) from None
        try:
            record = from_json(res.schema_, data)
        except FieldProblem as exc:
            raise self._bad(
                exc.message, line, column=wanted.get(exc.path), field=exc.path
            ) from None
        try:
            return publisher.prepare(res.id, record, line=line)
        except RecordInvalid as exc:
            field = exc.facts.get("field")
            raise self._bad(exc.reason, line, column=wanted.get(str(field)), field=field) from None

    def _bad(
        self, message: str, line: int, column: str | None = None, field: str | None = None
    ) -> ConnectorDataError:
        return ConnectorDataError(
            f"{message}; nothing of the file was published",
            file=str(self.cfg.path),
            line=line,
            connector=self.name,
            column=column,
            field=field,
        )

    async def start(self) -> None:
        if self._prepared is None:
            await self.setup()
        assert self._publisher is not None
        assert self._prepared is not None
        if not self._started:
            try:  # every record against its topic's limit too, before the first batch goes
                await self._publisher.check(self._prepared)
            except RecordInvalid as exc:
                raise self._refused(exc) from None
            await self._publisher.start()
            self._started = True

    async def stop(self) -> None:
        if self._publisher is not None and self._started:
            self._started = False
            await self._publisher.stop()

    async def poll(self) -> int:
        if self._publisher is None or self._prepared is None or not self._started:
            raise ConnectorError(f"connector {self.name!r} is not started")
        chunk = self._prepared[self._sent : self._sent + self.cfg.batch_size]
        if not chunk:
            self.finished = True
            return 0
        self.metrics.rows_read.labels(self.name).inc(len(chunk))
        self.progress.rows_read += len(chunk)
        await self._publisher.send(chunk)
        self._sent += len(chunk)
        self.metrics.published.labels(self.name).inc(len(chunk))
        self.progress.published += len(chunk)
        self.progress.checkpoint = f"{self._sent} of {len(self._prepared)} records"
        if self._sent >= len(self._prepared):
            self.finished = True
        return len(chunk)

    async def flush(self) -> None:
        """Nothing to do: poll() returns once the broker acknowledged the chunk."""


def _cell(text: str, ft: mapping.FieldType) -> Any:
    """The JSON-form value of one CSV cell for a field of type ``ft`` (empty: NULL)."""
    if text == "":
        return None
    kind = ft.kind
    if kind in ("int", "long"):
        if not _INT.match(text.strip()):
            raise ValueError(f"{text!r} is not an integer")
        return int(text)
    if kind in ("float", "double"):
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{text!r} is not a number") from None
    if kind == "boolean":
        lowered = text.strip().lower()
        if lowered in ("true", "1"):
            return True
        if lowered in ("false", "0"):
            return False
        raise ValueError(f"{text!r} is not a boolean (true/false, 1/0)")
    if kind in ("record", "array", "map"):
        try:
            return json.loads(text)
        except ValueError:
            raise ValueError(f"{text!r} is not JSON") from None
    return text


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
        values: list[dict[str, Any]] = []
        for rec in records:
            rid = dict(rec.headers or ()).get(RECORD_ID, b"").decode()
            if rid and rid in seen:
                continue
            seen.add(rid)
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
            values.append(value)
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
            with tmp.open("w", encoding="utf-8", newline="") as fh:
                if self.format == "jsonl":
                    for v in values:
                        fh.write(dumps(v) + "\n")
                else:
                    writer = csv.writer(fh, delimiter=self.cfg.delimiter)
                    writer.writerow(self._fields)
                    for v in values:
                        writer.writerow([_csv_text(v.get(name)) for name in self._fields])
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise ConnectorError(
                f"{path}: cannot write: {exc.strerror}", connector=self.name
            ) from exc

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
