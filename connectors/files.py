"""File import: a department's JSON Lines, CSV or ``.xlsx`` file, published as records of a resource.

The whole file is read and checked first, row by row with bounded memory:
every row converted (:mod:`connectors.cells`), normalised as the schema
declares (:mod:`connectors.normalise`), checked against the schema and its
size against Kafka's and the router's limits (:mod:`exchange.bus.limits`),
encoded, and put in a temporary spool (:mod:`connectors.spool`). Any row
that does not fit refuses the whole file: the error names the first one
(file and line, or sheet, row and cell; the column and field), the import
report lists them all, and nothing of the file is sent. Then the spool goes
out ``batch_size`` records at a time, each batch acknowledged by the broker
before the next; a broker that fails part way leaves the acknowledged batches
published. Importing the same file again is safe: the same records get the
same record ids, which consumers drop as duplicates.

CSV and worksheets: the header names the columns; ``mapping`` (field:
column) renames, a field not mapped is read from the column of its own
name, a column that feeds no field is refused unless listed in
``ignore_columns``. An empty cell is NULL. Text files are read in the
connector's ``encoding`` (default UTF-8), with a hint when they look like
another (:mod:`connectors.encodings`).

When a run ends, the import report (:mod:`connectors.import_report`) is
written beside the file and summarised in an audit entry.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from connectors import encodings, mapping, normalise
from connectors.base import Connector, ConnectorMetrics
from connectors.cells import from_typed
from connectors.config import FileImportConfig, Spot
from connectors.errors import ConnectorDataError, ConnectorError
from connectors.file_export import FileExport
from connectors.formats import file_format
from connectors.import_report import ImportReport, Refusal
from connectors.spool import Spool
from connectors.tabular import CsvTable, Place, Table, XlsxTable
from exchange.audit.writer import AuditWriter
from exchange.avro.jsoncodec import FieldProblem, from_json
from exchange.bus import kafka, limits, topics
from exchange.bus.connection import Connection
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog, Resource
from exchange.clients.publisher import Prepared, Publisher
from exchange.errors import ExchangeError, RecordInvalid, UnknownResource

__all__ = ["FileExport", "FileImport", "file_format"]


@dataclass(frozen=True)
class _Columns:
    """Which column feeds which field: (field, column index or None for its default, type)."""

    header: list[str]
    wanted: dict[str, str]  # field: column
    plan: list[tuple[str, int | None, mapping.FieldType]]


class _Refused(Exception):
    """One row does not fit; the scan goes on to find the others."""

    def __init__(self, refusal: Refusal, error: ConnectorDataError) -> None:
        super().__init__(str(error))
        self.refusal = refusal
        self.error = error


def file_digest(path: Path) -> str:
    """SHA-256 of the file, for the report and the audit entry."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
        self.format = ""
        self.report: ImportReport | None = None
        self._publisher: Publisher | None = None
        self._spool: Spool | None = None
        self._first_error: ConnectorDataError | None = None
        self._chunk: list[Prepared] | None = None
        self._column_of: dict[str, str] = {}
        self._started = False
        self._ended = False

    # -- setup: the whole file checked, nothing sent ------------------------------------------

    def _resource(self) -> Resource:
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
        return res

    def _check_options(self, res: Resource) -> dict[str, tuple[str, ...]]:
        cfg, fmt = self.cfg, self.format
        if cfg.mapping and fmt == "jsonl":
            raise self.spot.error(
                "mapping applies to CSV and .xlsx files only", "mapping", connector=self.name
            )
        if fmt == "xlsx" and cfg.encoding is not None:
            raise self.spot.error(
                "encoding does not apply to .xlsx workbooks (they hold Unicode text)",
                "encoding",
                connector=self.name,
            )
        if fmt != "xlsx" and (cfg.sheet is not None or cfg.header_row != 1):
            raise self.spot.error(
                "sheet and header_row apply to .xlsx workbooks only", "sheet", connector=self.name
            )
        fields = {f["name"] for f in res.schema_["fields"]}
        unknown = sorted(set(cfg.mapping) - fields)
        if unknown:
            raise self.spot.error(
                f"{unknown[0]!r} is not a field of {res.id!r}",
                "mapping",
                unknown[0],
                connector=self.name,
                field=unknown[0],
            )
        try:
            return normalise.declared(res.schema_)
        except normalise.RuleError as exc:
            raise ConnectorError(
                f"the schema of {res.id!r} declares {exc}", connector=self.name
            ) from None

    async def setup(self) -> list[str]:
        cfg = self.cfg
        res = self._resource()
        self.format = file_format(cfg.path, cfg.format)
        rules = self._check_options(res)
        publisher = Publisher(self.bus, self.catalog, cfg.department)
        self._discard_spool()
        self._first_error = None
        report = ImportReport(
            connector=self.name,
            department=cfg.department,
            resource=res.id,
            file=cfg.path,
            format=self.format,
            encoding=None if self.format == "xlsx" else cfg.encoding or encodings.DEFAULT,
        )
        self.report = report
        spool = Spool(topics.source(res.provider, res.id), res.id, cfg.department)
        self._spool = spool
        try:
            # reading and checking a whole file is CPU work: off the event loop
            await asyncio.to_thread(self._scan, publisher, res, rules, spool, report)
        except ConnectorError as exc:
            self._discard_spool()
            report.failure = report.failure or exc.reason
            raise
        except ExchangeError as exc:
            self._discard_spool()
            report.failure = str(exc)
            raise ConnectorDataError(str(exc), connector=self.name) from None
        if self._first_error is not None:
            self._discard_spool()
            more = report.refused_rows - 1
            extra = f" (and {more} more row(s) refused: see {report.path.name})" if more else ""
            first = self._first_error
            raise ConnectorDataError(
                first.reason + extra,
                **{k: v for k, v in first.facts.items() if k != "connector"},
                connector=self.name,
            )
        self._publisher = publisher
        norm = ", ".join(f"{k} {v}" for k, v in sorted(report.normalised.items()))
        where = f" sheet {report.sheet!r}" if report.sheet else ""
        return [
            f"{self.name}: {cfg.path}{where} ({self.format}) → {res.id}: {spool.count} records, "
            f"all valid" + (f"; normalised: {norm}" if norm else "")
        ]

    def _scan(
        self,
        publisher: Publisher,
        res: Resource,
        rules: dict[str, tuple[str, ...]],
        spool: Spool,
        report: ImportReport,
    ) -> None:
        """Read, convert, check and spool every row; every row that does not fit is reported."""
        try:
            report.digest = file_digest(self.cfg.path)
        except OSError as exc:
            raise ConnectorError(
                f"{self.cfg.path}: cannot read: {exc.strerror}", connector=self.name
            ) from exc
        normaliser = normalise.Normaliser(rules)
        for place, build in self._rows(res, normaliser, report):
            report.rows_read += 1
            try:
                record = build()
                p = self._prepare(publisher, res, record, place)
            except _Refused as refused:
                report.refuse(refused.refusal)
                if self._first_error is None:
                    self._first_error = refused.error
                continue
            spool.append(p)
        report.normalised.update(normaliser.counts)

    def _refuse(
        self,
        place: Place,
        reason: str,
        column: str | None = None,
        letter: str | None = None,
        field: str | None = None,
        **facts: Any,
    ) -> _Refused:
        error = place.error(
            reason, column=column, letter=letter, field=field, connector=self.name, **facts
        )
        return _Refused(Refusal(place, reason, column, field), error)

    def _prepare(
        self, publisher: Publisher, res: Resource, record: dict[str, Any], place: Place
    ) -> Prepared:
        try:
            p = publisher.prepare(res.id, record, line=place.number)
            limits.check([p], {})  # the topic's own limit is checked once the broker is asked
        except RecordInvalid as exc:  # RecordTooLarge too
            field = exc.facts.get("field")
            column = self._column_of.get(str(field)) if field else None
            size = {k: exc.facts[k] for k in ("size", "limit") if k in exc.facts}
            raise self._refuse(place, exc.reason, column, None, field, **size) from None
        return p

    # -- rows of each format ----------------------------------------------------------------------

    def _rows(
        self, res: Resource, normaliser: normalise.Normaliser, report: ImportReport
    ) -> Iterator[tuple[Place, Callable[[], dict[str, Any]]]]:
        """(place, a function building the row's record) for every row of the file."""
        if self.format == "jsonl":
            yield from self._json_rows(res, normaliser)
            return
        cfg = self.cfg
        table: Table
        if self.format == "xlsx":
            table = XlsxTable(cfg.path, sheet=cfg.sheet, header_row=cfg.header_row)
            report.sheet = table.sheet_name
        else:
            table = CsvTable(
                cfg.path, encoding=cfg.encoding or encodings.DEFAULT, delimiter=cfg.delimiter
            )
        with table:
            columns = self._columns(table, res)
            self._column_of = dict(columns.wanted)
            for place, cells in table.rows():
                yield place, partial(self._record, table, columns, res, normaliser, place, cells)

    def _columns(self, table: Table, res: Resource) -> _Columns:
        """Which column feeds which field: no column twice, none unused, none missing."""
        cfg, header, at = self.cfg, table.header, table.header_place
        fields = {f["name"]: f for f in res.schema_["fields"]}
        index: dict[str, int] = {}
        for i, name in enumerate(header):
            if name in index:
                raise at.error(
                    f"column {name!r} appears twice in the header",
                    column=name,
                    letter=table.letter(i),
                    connector=self.name,
                )
            index[name] = i
        wanted = {f: cfg.mapping.get(f, f) for f in fields}
        used = set(wanted.values()) | set(cfg.ignore_columns)
        for i, name in enumerate(header):
            if name not in used:
                raise at.error(
                    f"column {name!r} feeds no field of {res.id!r}: map it (mapping: FIELD: "
                    f"{name}) or list it under ignore_columns",
                    column=name,
                    letter=table.letter(i),
                    connector=self.name,
                )
        plan: list[tuple[str, int | None, mapping.FieldType]] = []
        for fname, column in wanted.items():
            ft = mapping.field_type(fields[fname]["type"])
            if column not in index:
                if fname not in cfg.mapping and "default" in fields[fname]:
                    plan.append((fname, None, ft))
                    continue
                raise at.error(
                    f"no column {column!r} for field {fname!r}",
                    column=column,
                    field=fname,
                    connector=self.name,
                )
            plan.append((fname, index[column], ft))
        return _Columns(header, wanted, plan)

    def _record(
        self,
        table: Table,
        columns: _Columns,
        res: Resource,
        normaliser: normalise.Normaliser,
        place: Place,
        cells: list[Any],
    ) -> dict[str, Any]:
        """One row as a record (Python form); its problems name place, column and field."""
        header = columns.header
        if len(cells) != len(header):
            raise self._refuse(
                place, f"{len(cells)} cells, but the header names {len(header)} columns"
            )
        data: dict[str, Any] = {}
        for fname, idx, ft in columns.plan:
            if idx is None:
                continue
            try:
                data[fname] = from_typed(normaliser.apply(fname, cells[idx]), ft)
            except ValueError as exc:
                raise self._refuse(place, str(exc), header[idx], table.letter(idx), fname) from None
        try:
            return from_json(res.schema_, data)
        except FieldProblem as exc:
            column = columns.wanted.get(exc.path)
            letter = table.letter(header.index(column)) if column in header else None
            raise self._refuse(place, exc.message, column, letter, exc.path) from None

    def _json_rows(
        self, res: Resource, normaliser: normalise.Normaliser
    ) -> Iterator[tuple[Place, Callable[[], dict[str, Any]]]]:
        path, encoding = self.cfg.path, self.cfg.encoding or encodings.DEFAULT
        wrong = encodings.utf8_under_another(path, encoding)
        if wrong is not None:
            raise Place(str(path), 1).error(wrong, connector=self.name)
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise ConnectorError(
                f"{path}: cannot read: {exc.strerror}", connector=self.name
            ) from exc
        with fh:
            try:
                for number, text in enumerate(encodings.text_lines(fh, encoding), start=1):
                    if text.strip():
                        place = Place(str(path), number)
                        yield place, partial(self._json_record, res, normaliser, place, text)
            except encodings.Undecodable as exc:
                message = encodings.decode_problem(path, encoding, exc)
                raise Place(str(path), exc.line).error(message, connector=self.name) from None

    def _json_record(
        self, res: Resource, normaliser: normalise.Normaliser, place: Place, text: str
    ) -> dict[str, Any]:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise self._refuse(place, f"not valid JSON: {exc.msg}") from None
        if isinstance(data, dict):
            for name in normaliser.rules:
                if name in data:
                    try:
                        data[name] = normaliser.apply(name, data[name])
                    except ValueError as exc:
                        raise self._refuse(place, str(exc), field=name) from None
        try:
            return from_json(res.schema_, data)
        except FieldProblem as exc:
            raise self._refuse(place, exc.message, field=exc.path) from None

    # -- run: send the spool, then report ---------------------------------------------------------

    async def start(self) -> None:
        if self._publisher is None:
            try:
                await self.setup()
            except ConnectorError:
                await self._end()
                raise
        assert self._publisher is not None
        assert self._spool is not None
        if not self._started:
            if self._spool.largest is not None:
                try:  # the largest record against its topic's limit, before the first batch goes
                    await self._publisher.check([self._spool.largest])
                except RecordInvalid as exc:
                    error = ConnectorDataError(
                        f"{exc.reason}; nothing of the file was published",
                        file=str(self.cfg.path),
                        line=exc.facts.get("line"),
                        connector=self.name,
                        size=exc.facts.get("size"),
                        limit=exc.facts.get("limit"),
                    )
                    if self.report is not None:
                        self.report.failure = error.reason
                    await self._end()
                    raise error from None
            await self._publisher.start()
            self._started = True

    async def stop(self) -> None:
        """Stop sending; a started import keeps its spool, so a restart resumes where it stopped."""
        if self._publisher is not None and self._started:
            self._started = False
            await self._publisher.stop()
            if not self.finished:
                return
        self._publisher = None  # checked but never started (connect check): checked again
        self._discard_spool()

    def _discard_spool(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None

    async def poll(self) -> int:
        if self._publisher is None or self._spool is None or not self._started:
            raise ConnectorError(f"connector {self.name!r} is not started")
        # a chunk the broker did not take whole is sent again after a retry (same record ids)
        chunk = self._chunk or await asyncio.to_thread(self._spool.batch, self.cfg.batch_size)
        self._chunk = chunk
        if not chunk:
            await self._finish()
            return 0
        self.metrics.rows_read.labels(self.name).inc(len(chunk))
        self.progress.rows_read += len(chunk)
        await self._publisher.send(chunk)
        self._chunk = None
        self.metrics.published.labels(self.name).inc(len(chunk))
        self.progress.published += len(chunk)
        total = self._spool.count
        self.progress.checkpoint = f"{self.progress.published} of {total} records"
        if self.progress.published >= total:
            await self._finish()
        return len(chunk)

    async def _finish(self) -> None:
        self.finished = True
        if self.report is not None:
            self.report.published = self.progress.published
        await self._end()
        self._discard_spool()

    async def flush(self) -> None:
        """Nothing to do: poll() returns once the broker acknowledged the chunk."""

    async def _end(self) -> None:
        """Write the import report beside the file and its audit entry (once per run)."""
        report = self.report
        if report is None or self._ended:
            return
        self._ended = True
        if self.cfg.report:
            try:
                path = await asyncio.to_thread(report.write)
            except OSError as exc:
                self.notes.append(f"{self.name}: the import report was not written: {exc}")
            else:
                self.progress.checkpoint = (
                    f"{self.progress.checkpoint or 'nothing sent'}; report {path}"
                )
        # the entry's schema was registered by the catalog load; a department may read the
        # schemas topic, not write it, so the registry must know it before the writer asks
        registry = SchemaRegistry(self.bus)
        await registry.refresh()
        async with kafka.producer(self.bus, linger_ms=0) as producer:
            writer = AuditWriter(producer, registry, role=f"import-{self.name}")
            await writer.write(report.audit_draft())
