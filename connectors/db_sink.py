"""Database sink: a department's delivered view of a resource, kept in a table of its own.

Reads ``gov.dlv.<department>.<resource>`` (the provider reads its source
topic) in a consumer group, decodes each record with the schema its id
names, and upserts it. A record is read straight into its row's tuple by a
function compiled once per schema id (:mod:`exchange.avro.row_reader`;
fastavro for schemas with arrays, maps or nested records). Per batch::

    fetch ─▶ decode ─▶ upsert every row in one transaction ─▶ COMMIT ─▶ commit Kafka offsets

so a crash before the database commit loses nothing (the batch is read
again) and a crash between the two commits only repeats upserts. The write
of a batch (upsert, COMMIT, offsets) runs while the next batch is fetched and
decoded, so the database's work and the sink's overlap; batches are still
written one at a time, in order, and a fetch that finds nothing waits for the
last write first. A write that fails fails the sink at its next step, and
nothing of that batch or after it is committed.

**Upsert key.** The table's primary key ``gov_key`` is the record's Kafka key:
the resource's key field (``certificate_no``), or, when the view does not
carry that field in clear, the router's keyed hash of it, which is just as
stable. A re-delivered record replaces its own row, and so does a newer
version of the same source row. The record id (``gov_record_id``) is stored
too, but cannot be the key: it is a hash of the record's content, so an
updated source row arrives under a new id and would become a second row.

**Deletions and retractions** (:mod:`connectors.sink_batch`): a deletion
delivered by the router (the provider deleted the record, or it left the
consumer's row filter) deletes the row of its key; a grant's retraction
deletes the rows received on that partition, or keeps them frozen and marked
(``gov_retracted_grant``, ``gov_retracted_at``), as the approval's rule for
data at rest says.

**The table** is created from the view schema when absent: one column per
field (types in :meth:`connectors.sql.Database.ddl_type`, the field's ``doc``
as the column comment, which names any mask), plus ``gov_key``,
``gov_record_id``, ``gov_received_at``, ``gov_partition``,
``gov_retracted_grant`` and ``gov_retracted_at`` (the last three are added to a
table made by an earlier release when the sink starts). Field columns are nullable even
where the field is not: a grant revoked or narrowed later removes fields
from the view, and their old values are then cleared (set NULL) rather than
kept. A field that appears later (a new grant) gets its column added.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from connectors import mapping
from connectors.base import Connector, ConnectorMetrics
from connectors.config import DatabaseTarget, DbSinkConfig, Spot
from connectors.dialects import open_database
from connectors.errors import ConnectorConfigError, ConnectorDataError, ConnectorError
from connectors.mapping import FieldType
from connectors.sink_batch import (
    KEY,
    LATER,
    RECEIVED_AT,
    RECORD_ID_COLUMN,
    TECHNICAL,
    SinkBatch,
    later_column_ddl,
    now_for,
    stamp_type,
)
from connectors.sql import Database
from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.avro.jsoncodec import to_jsonable
from exchange.avro.row_reader import RowReader, compile_reader, fastavro_reader
from exchange.avro.wire import HEADER_SIZE
from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.bus.envelope import AT_REST, RECORD_ID, RETRACTION
from exchange.bus.registry import SchemaRegistry
from exchange.clients.reader import topic_for
from exchange.control.state import ControlState
from exchange.errors import DecodeError, UnknownResource
from exchange.sharing.policy import compute_view, view_schema

log = logging.getLogger(__name__)


def expected_schema(
    state: ControlState, department: str, resource: str, spot: Spot, name: str
) -> avro.Schema:
    """The schema the department receives ``resource`` under now (its view, or the resource)."""
    catalog = state.catalog
    try:
        res = catalog.resource(resource)
        catalog.department(department)
    except UnknownResource as exc:
        raise spot.error(str(exc), "resource", connector=name) from None
    if res.provider == department:
        return res.schema_
    now = dt.datetime.now(dt.UTC)
    view = compute_view(catalog, state.book, department, res.id, at=now)
    if view.denied:
        raise spot.error(
            f"{department!r} receives nothing of {res.id!r}: {view.denied}",
            "department",
            connector=name,
        )
    if department not in state.book.targets(res.id, now):
        raise spot.error(
            f"{department!r} has not subscribed to {res.id!r}, so nothing is delivered to it: "
            f"run 'exchange subscribe --as {department} {res.id}' (or apply for its conditional fields)",
            "department",
            connector=name,
        )
    return view_schema(res, view)


class DbSink(Connector):
    kind = "db_sink"
    pipelined = True  # a batch is written while the next is fetched and decoded

    def __init__(
        self,
        cfg: DbSinkConfig,
        *,
        bus: Connection,
        state: ControlState,
        target: DatabaseTarget,
        metrics: ConnectorMetrics | None = None,
        spot: Spot | None = None,
    ) -> None:
        super().__init__(cfg.name, metrics)
        self.cfg = cfg
        self.bus = bus
        self.state = state
        self.spot = spot or Spot()
        self.group = cfg.group or f"gov-connector-{cfg.name}"
        self.topic = ""
        self.db: Database = open_database(target, autocommit=False)
        self.registry = SchemaRegistry(bus)
        self.ready = False
        self.poll_interval_s = 0.0  # poll() itself waits for records
        self._consumer: Any = None
        self._exists = False
        self._new_schema = False
        self._table_cols: dict[str, mapping.Column] = {}
        self._fields: dict[str, FieldType] = {}  # field columns written by the upsert, in order
        self._docs: dict[str, str] = {}
        self._plans: dict[int, list[tuple[str, Callable[[Any], Any] | None]]] = {}
        self._offsets: dict[TopicPartition, int] = {}
        self._ready_setup = False
        self._written = 0
        self._committed: dict[int, int] = {}
        #: the write of the batch handed over last (upsert, commits), while the next is read
        self._writing: asyncio.Task[None] | None = None
        #: how records are read into rows, by their first five bytes (magic byte, schema id)
        self._readers: dict[bytes, RowReader] = {}

    def _error(
        self, message: str, *keys: str | int, column: str | None = None, field: str | None = None
    ) -> ConnectorConfigError:
        return self.spot.error(message, *keys, connector=self.name, column=column, field=field)

    # --- setup ------------------------------------------------------------------------------

    async def setup(self) -> list[str]:
        cfg = self.cfg
        schema = expected_schema(self.state, cfg.department, cfg.resource, self.spot, self.name)
        self.topic = topic_for(self.state.catalog, cfg.department, cfg.resource)
        wanted = {f["name"]: mapping.field_type(f["type"]) for f in schema["fields"]}
        self._docs = {f["name"]: str(f.get("doc", "")) for f in schema["fields"]}
        for name in wanted:
            if name in TECHNICAL:
                raise self._error(
                    f"field {name!r} clashes with a column the sink adds itself",
                    "table",
                    field=name,
                )
        await self.db.connect()
        self._exists = await self.db.table_exists(cfg.table)
        notes = []
        if self._exists:
            described = await self.db.describe(self.db.quote(cfg.table))
            await self.db.rollback()
            self._table_cols = {c.name: c for c in described}
            missing = [c for c in (KEY, RECORD_ID_COLUMN) if c not in self._table_cols]
            if missing:
                raise self._error(
                    f"table {cfg.table} exists but has no {' or '.join(missing)} column: it was not "
                    "created by this sink; name a new table and the sink creates it",
                    "table",
                    column=missing[0],
                )
            if not await self.db.is_unique(cfg.table, KEY):
                raise self._error(
                    f"column {KEY} of table {cfg.table} is not its primary key: upserts by "
                    "record key need it (ALTER TABLE ... ADD PRIMARY KEY (gov_key))",
                    "table",
                    column=KEY,
                )
            for name, ft in wanted.items():
                self._check_column(name, ft)
            added = [n for n in wanted if n not in self._table_cols]
            notes.append(
                f"table {cfg.table} exists"
                + (
                    f"; columns to add: {', '.join(added)}"
                    if added
                    else "; every field has its column"
                )
            )
        else:
            schema_name = cfg.table.rpartition(".")[0]
            self._new_schema = bool(schema_name) and not await self.db.schema_exists(schema_name)
            if self._new_schema and not cfg.create_schema:
                raise self._error(
                    f"schema {schema_name!r} does not exist in {self.db.where}: run "
                    f"'CREATE SCHEMA {self.db.quote(schema_name)};' there, or set "
                    "create_schema: true to let the sink create it",
                    "table",
                )
            if self._new_schema:
                notes.append(f"schema {schema_name} will be created")
            notes.append(f"table {cfg.table} will be created ({len(wanted)} field columns)")
        self._fields = dict(wanted)
        self._ready_setup = True
        return [
            f"{self.name}: {self.topic} (group {self.group}) → {self.db.where}, "
            f"fields: {', '.join(wanted)}",
            f"{self.name}: {'; '.join(notes)}; upsert by {KEY} (the record's key)",
        ]

    def _check_column(self, name: str, ft: FieldType) -> None:
        col = self._table_cols.get(name)
        if col is None:
            return
        problem = mapping.sink_problem(col, ft)
        if problem:
            raise self._error(problem, "table", column=name, field=name)

    # --- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        self.ready = False
        self._offsets, self._written = {}, 0  # whatever was not flushed is read again
        try:
            await self.db.connect()
            if not self._ready_setup:
                await self.setup()
            if self._new_schema:
                schema_name = self.cfg.table.rpartition(".")[0]
                await self.db.execute(f"CREATE SCHEMA IF NOT EXISTS {self.db.quote(schema_name)}")
                self._new_schema = False
            if not self._exists:
                await self._create_table()
            else:
                await self._add_columns([n for n in self._fields if n not in self._table_cols])
                await self._add_later_columns()
            await self.db.commit()
            described = await self.db.describe(self.db.quote(self.cfg.table))
            await self.db.rollback()
            self._table_cols = {c.name: c for c in described}
            await self.registry.refresh()
            await kafka.ensure_topics(self.bus, [self.topic], partitions=None)
            consumer = kafka.consumer(
                self.bus,
                group_id=self.group,
                max_poll_records=self.cfg.batch_size,
                session_timeout_ms=self.cfg.session_timeout_ms,
                heartbeat_interval_ms=max(300, self.cfg.session_timeout_ms // 5),
            )
            await consumer.start()
            consumer.subscribe([self.topic])
            self._consumer = consumer
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        consumer, self._consumer = self._consumer, None
        try:
            try:  # the batch handed over last is written and committed, or rolled back
                await self.flush()
            except Exception as exc:
                log.warning("sink %s: its last batch was not written: %s", self.name, exc)
            if consumer is not None:
                await consumer.stop()
        finally:
            try:
                await self.db.rollback()
            finally:
                await self.db.close()

    async def _create_table(self) -> None:
        q, db, table = self.db.quote, self.db, self.cfg.table
        cols = [f"{q(KEY)} {db.key_type()} NOT NULL PRIMARY KEY"]
        for name, ft in self._fields.items():
            cols.append(
                f"{q(name)} {db.ddl_type(ft)} NULL{db.inline_comment(self._docs.get(name, ''))}"
            )
        stamp = stamp_type(db)
        cols.append(f"{q(RECORD_ID_COLUMN)} VARCHAR(64) NOT NULL")
        cols.append(f"{q(RECEIVED_AT)} {stamp} NOT NULL")
        cols.extend(f"{q(name)} {later_column_ddl(db, name)}" for name in LATER)
        tail = " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4" if db.dialect == "mysql" else ""
        await db.execute(f"CREATE TABLE {q(table)} ({', '.join(cols)}){tail}")
        comment = db.table_comment(
            table, f"{self.cfg.resource} as delivered to {self.cfg.department} by the exchange bus"
        )
        if comment:
            await db.execute(comment)
        for name in self._fields:
            comment = db.column_comment(table, name, self._docs.get(name, ""))
            if comment:
                await db.execute(comment)
        self._exists = True

    async def _add_columns(self, names: list[str]) -> None:
        q, db = self.db.quote, self.db
        for name in names:
            await db.execute(
                f"ALTER TABLE {q(self.cfg.table)} ADD COLUMN {q(name)} "
                f"{db.ddl_type(self._fields[name])} NULL{db.inline_comment(self._docs.get(name, ''))}"
            )

    async def _add_later_columns(self) -> None:
        """Add the technical columns a table made by an earlier release lacks."""
        q = self.db.quote
        for name in LATER:
            if name not in self._table_cols:
                await self.db.execute(
                    f"ALTER TABLE {q(self.cfg.table)} ADD COLUMN {q(name)} "
                    f"{later_column_ddl(self.db, name)}"
                )

    # --- moving records ----------------------------------------------------------------------

    def _value_converter(self, ft: FieldType) -> Callable[[Any], Any] | None:
        tz = self.db.target.timezone
        if ft.kind in ("record", "array", "map"):
            return lambda v: None if v is None else json.dumps(to_jsonable(v), ensure_ascii=False)
        if self.db.dialect == "mysql" and ft.kind in ("timestamp-millis", "timestamp-micros"):
            return lambda v: None if v is None else v.astimezone(tz).replace(tzinfo=None)
        return None

    async def _plan(self, sid: int) -> list[tuple[str, Callable[[Any], Any] | None]]:
        """How the field columns (in the order of ``self._fields``) are filled from records
        written with schema ``sid`` (None: the value as it is); adds columns for new fields."""
        schema = self.registry.schema(sid)
        new: list[str] = []
        converters: dict[str, Callable[[Any], Any] | None] = {}
        for f in schema["fields"]:
            name, ft = f["name"], mapping.field_type(f["type"])
            known = self._fields.get(name)
            if known is None:
                if name in TECHNICAL:
                    raise ConnectorDataError(
                        f"schema {sid} has a field named like a sink column",
                        connector=self.name,
                        field=name,
                    )
                self._check_column(name, ft)
                self._fields[name] = ft
                self._docs[name] = str(f.get("doc", ""))
                if name not in self._table_cols:
                    new.append(name)
            elif known.text != ft.text:
                col = self._table_cols.get(name)
                if col is None or mapping.sink_problem(col, ft):
                    raise ConnectorDataError(
                        f"the view now delivers this field as {ft.text}, but its column holds "
                        f"{known.text}: change or drop the column, then restart the sink",
                        connector=self.name,
                        column=name,
                        field=name,
                    )
                self._fields[name] = ft
            converters[name] = self._value_converter(ft)
        if new:
            await self._add_columns(new)
        # a field this schema lacks is read as None (a column added for a newer schema)
        plan = [(name, converters.get(name)) for name in self._fields]
        self._plans[sid] = plan
        return plan

    async def poll(self) -> int:
        if self._consumer is None:
            raise ConnectorError(f"connector {self.name!r} is not started")
        fetched = await self._consumer.getmany(timeout_ms=500, max_records=self.cfg.batch_size)
        if not self.ready and self._consumer.assignment():
            self.ready = True
        if not fetched:
            await self.flush()  # nothing more came: the last batch's write is finished
            return 0
        batch = SinkBatch()
        received = now_for(self.db)
        count = 0
        offsets: dict[TopicPartition, int] = {}
        readers, upsert = self._readers, batch.upsert
        for tp, records in fetched.items():
            count += len(records)
            for rec in records:
                value = rec.value
                if value is None:
                    self._tombstone(batch, rec, received)
                    continue
                read = readers.get(value[:HEADER_SIZE])
                if read is None:  # a new schema may add columns: not during a write
                    await self.flush()
                    read = await self._reader(rec)
                upsert(self._row(read, rec, received))
            offsets[tp] = records[-1].offset + 1
        self.metrics.rows_read.labels(self.name).inc(count)
        self.progress.rows_read += count
        columns = [*TECHNICAL, *self._fields]
        await self.flush()  # one write at a time, in order
        self._writing = asyncio.create_task(
            self._write(batch, columns, offsets), name=f"sink-write-{self.name}"
        )
        return count

    async def _write(
        self, batch: SinkBatch, columns: list[str], offsets: dict[TopicPartition, int]
    ) -> None:
        """Upsert ``batch`` in one transaction, COMMIT, then commit ``offsets``."""
        self._written = await batch.apply(self.db, self.cfg.table, columns)
        if batch.deleted:
            self.metrics.deleted.labels(self.name).inc(batch.deleted)
        self._offsets.update(offsets)
        await self._commit()

    def _tombstone(self, batch: SinkBatch, rec: Any, received: Any) -> None:
        """A record with no value: a grant's retraction, or the deletion of a key."""
        headers = {k: v.decode("utf-8", "replace") for k, v in rec.headers or ()}
        grant = headers.get(RETRACTION)
        if grant:
            batch.retract(rec.partition, headers.get(AT_REST, "delete"), grant, received)
            return
        if rec.key is None:
            raise ConnectorDataError(
                f"record {self._where(rec)} has neither a key nor a value", connector=self.name
            )
        batch.delete(rec.key.decode("utf-8", "replace"))

    async def _reader(self, rec: Any) -> RowReader:
        """The reader of records framed like ``rec`` (its schema id), made on first sight."""
        try:
            sid, _ = wire.unframe(rec.value)
            parsed = await self.registry.resolve(sid)
        except DecodeError as exc:
            raise ConnectorDataError(
                f"record {self._where(rec)} cannot be decoded: {exc}", connector=self.name
            ) from exc
        plan = self._plans.get(sid) or await self._plan(sid)
        columns = [name for name, _ in plan]
        read = compile_reader(self.registry.schema(sid), columns, dict(plan)) or fastavro_reader(
            parsed, plan
        )
        self._readers[bytes(rec.value[:HEADER_SIZE])] = read
        return read

    def _row(self, read: RowReader, rec: Any, received: Any) -> tuple[Any, ...]:
        """(key, record id, received at, partition, retraction marks, *field values)."""
        rid = b""
        for name, header in rec.headers or ():
            if name == RECORD_ID:
                rid = header
                break
        record_id = rid.decode("utf-8", "replace")
        key = rec.key.decode("utf-8", "replace") if rec.key is not None else record_id
        if not key:
            raise ConnectorDataError(
                f"record {self._where(rec)} has neither a key nor a record id",
                connector=self.name,
            )
        try:
            # not retracted: the two marks are None
            return read(
                rec.value, HEADER_SIZE, (key, record_id, received, rec.partition, None, None)
            )
        except DecodeError as exc:
            raise ConnectorDataError(
                f"record {self._where(rec)} cannot be decoded: {exc}", connector=self.name
            ) from exc

    @staticmethod
    def _where(rec: Any) -> str:
        return f"{rec.topic}[{rec.partition}]@{rec.offset}"

    async def flush(self) -> None:
        """Wait for the write of the batch handed over last; raises what failed it."""
        writing, self._writing = self._writing, None
        if writing is not None:
            await writing

    async def _commit(self) -> None:
        if not self._offsets:
            return
        await self.db.commit()
        written, self._written = self._written, 0
        self.metrics.written.labels(self.name).inc(written)
        self.progress.written += written
        offsets, self._offsets = self._offsets, {}
        await self._consumer.commit(offsets)
        self._committed.update({tp.partition: off for tp, off in offsets.items()})
        self.progress.checkpoint = "offsets " + " ".join(
            f"p{p}:{off}" for p, off in sorted(self._committed.items())
        )
        self.metrics.checkpoints.labels(self.name).inc()
        self.metrics.last_checkpoint.labels(self.name).set_to_current_time()
