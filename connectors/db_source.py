"""Database source: rows of a department's table or query, published as records of a resource.

Reads in order of ``(incremental column, *unique key)`` and strictly after the
saved position, ``batch_size`` rows at a time::

    SELECT cols FROM src WHERE (updated_at, id) > (:last_updated_at, :last_id)
    ORDER BY updated_at, id LIMIT :batch_size

Ties: many rows may share one ``updated_at`` (a bulk insert in one
transaction gives them all the same ``now()``). Ordering by the unique key as
well makes the position exact: a batch boundary inside a run of equal
timestamps resumes at the next key, never skipping or repeating a row.

A batch is converted and validated as a whole before anything is sent; a
row that does not fit (NULL in a non-nullable field, an unknown enum symbol)
stops the source with an error naming the row, the column and the field,
and the batch is not published. The position is saved only after the broker
acknowledged every record of the batch (see :mod:`connectors.checkpoint`).

The incremental column must grow in the order rows become visible: a value
given by a sequence or ``now()`` inside a transaction that commits after a
later one has been read is missed. Index ``(column, unique key)`` so each
batch is an index range scan.

Soft deletes (删除): a row whose ``soft_delete`` column is true is published as
a deletion of its key (a tombstone, :meth:`Publisher.prepare_deletion`), so the
router deletes the record from every consumer's view and the sinks delete the
row; only its key column is read. Counted as deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import fastavro
from fastavro.validation import validate

from connectors import encoding, mapping, row_encoder
from connectors.base import Connector, ConnectorMetrics
from connectors.checkpoint import (
    LEGACY_TABLE,
    CheckpointStore,
    FileCheckpoints,
    Position,
    TableCheckpoints,
    default_table,
)
from connectors.config import DatabaseTarget, DbSourceConfig, Spot
from connectors.dialects import open_database
from connectors.errors import ConnectorConfigError, ConnectorDataError, ConnectorError
from connectors.mapping import Column
from connectors.sql import Database
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog, Resource
from exchange.clients.publisher import Prepared, Publisher
from exchange.errors import UnknownResource

ORDERABLE = (
    *mapping.INTS,
    mapping.NUMERIC,
    mapping.TEXT,
    mapping.DATE,
    mapping.TIMESTAMP,
    mapping.TIMESTAMPTZ,
    mapping.UUID,
    mapping.BLOB,
)


@dataclass(frozen=True)
class _FieldPlan:
    field: str
    column: str | None  # None: not in the source, the field's default is used
    index: int
    nullable: bool
    convert: Callable[[Any], Any]
    default: Any = None
    #: the Avro type to check a converted value against; None: the converter checked it
    check: Any = None
    #: the checked value to its Avro primitive (connectors.encoding); None: kept as it is
    primitive: Callable[[Any], Any] | None = None
    #: a value of exactly this class needs no conversion (mapping.KEPT_AS_IS)
    kept: type | None = None


def _steps(plans: list[_FieldPlan], res: Resource) -> list[row_encoder.FieldStep]:
    """The plans as the compiled row encoder reads them (types without resolved logicals)."""
    types = {f["name"]: f["type"] for f in encoding.primitive_schema(res.schema_)["fields"]}
    return [
        row_encoder.FieldStep(
            p.field,
            p.index if p.column is not None else -1,
            p.nullable,
            p.convert,
            types[p.field],
            default=p.default,
            check=p.check,
            primitive=p.primitive,
            kept=p.kept,
        )
        for p in plans
    ]


_Risk = tuple[str, str | None, tuple[str | int, ...]]  # column, field (None: ordering), config keys


def _resource_for(catalog: Catalog, cfg: DbSourceConfig, spot: Spot) -> Resource:
    try:
        res = catalog.resource(cfg.resource)
        catalog.department(cfg.department)
    except UnknownResource as exc:
        raise spot.error(str(exc), "resource", connector=cfg.name) from None
    if res.provider != cfg.department:
        raise spot.error(
            f"department {cfg.department!r} cannot publish {res.id!r}: its provider is "
            f"{res.provider!r}",
            "department",
            connector=cfg.name,
        )
    return res


class DbSource(Connector):
    kind = "db_source"

    def __init__(
        self,
        cfg: DbSourceConfig,
        *,
        bus: Connection,
        catalog: Catalog,
        target: DatabaseTarget,
        metrics: ConnectorMetrics | None = None,
        spot: Spot | None = None,
    ) -> None:
        super().__init__(cfg.name, metrics)
        self.cfg = cfg
        self.bus = bus
        self.catalog = catalog
        self.spot = spot or Spot()
        self.poll_interval_s = cfg.poll_interval_s
        self.db: Database = open_database(target, autocommit=True)
        self.store: CheckpointStore = (
            FileCheckpoints(cfg.checkpoint.file)
            if cfg.checkpoint.file
            else TableCheckpoints(
                self.db,
                cfg.checkpoint.table or default_table(self.db.dialect),
                legacy=None if cfg.checkpoint.table else LEGACY_TABLE,
            )
        )
        self.position: Position | None = None
        self._pending: Position | None = None
        #: the page after a position, being read while the page before it is published
        #: (during a first load only: then a full page is almost always followed by another)
        self._prefetch: tuple[Position, asyncio.Task[list[tuple[Any, ...]]]] | None = None
        self._publisher: Publisher | None = None
        self._plans: list[_FieldPlan] = []
        self._order: list[str] = []
        self._order_idx: list[int] = []
        self._deleted_idx: int | None = None
        self._select = ""
        self._select_after = ""
        self._ready = False
        self._encoder: encoding.Encoder | None = None
        self._row_to_avro: Callable[[tuple[Any, ...]], tuple[str, bytes]] | None = None
        self._key_field = ""
        self._caught_up = False  # read everything there was once (the first load is over)

    def _error(
        self, message: str, *keys: str | int, column: str | None = None, field: str | None = None
    ) -> ConnectorConfigError:
        return self.spot.error(message, *keys, connector=self.name, column=column, field=field)

    # --- setup: everything checked before a row moves ----------------------------------

    async def setup(self) -> list[str]:
        cfg = self.cfg
        res = _resource_for(self.catalog, cfg, self.spot)
        await self.db.connect()
        from_sql, columns, not_null = await self._describe()
        order = self._ordering(res, columns)
        deleted = self._soft_delete(columns)
        select: list[str] = []

        def index_of(column: str) -> int:
            if column not in select:
                select.append(column)
            return select.index(column)

        plans, risky = self._plan(res, columns, not_null, index_of)
        self._encoder, self._key_field = encoding.Encoder(res.schema_), res.key
        self._row_to_avro = row_encoder.compile_row(_steps(plans, res), res.key)
        order_idx = [index_of(c) for c in order]
        self._deleted_idx = index_of(deleted.name) if deleted is not None else None
        risky += [(c, None, ("incremental",)) for c in order if c not in not_null]
        await self._no_nulls(from_sql, order, risky)

        self.position = await self.store.load(self.name)
        if self.position is not None and list(self.position.columns) != order:
            raise self._error(
                f"the saved position ({self.store.describe()}) is by "
                f"({', '.join(self.position.columns)}) but the source now reads by "
                f"({', '.join(order)}): delete that checkpoint to start over",
                "incremental",
            )
        q = self.db.quote
        cols = ", ".join(q(c) for c in select)
        by = ", ".join(q(c) for c in order)
        # identifiers are quoted; a query is the operator's own SQL, like a view
        base = f"SELECT {cols} FROM {from_sql}"  # noqa: S608
        self._select = f"{base} ORDER BY {by} LIMIT %s"
        self._select_after = f"{base} WHERE {self.db.after(order)} ORDER BY {by} LIMIT %s"
        self._plans, self._order, self._order_idx = plans, order, order_idx
        self._ready = True
        self.progress.checkpoint = self.position.describe() if self.position else None
        what = f"table {cfg.table}" if cfg.table else "the query"
        mapped = sum(1 for p in plans if p.column is not None)
        skipped = f"; rows with {deleted.name} true are skipped" if deleted is not None else ""
        where = (
            self.position.describe() if self.position else "none yet (starts from the first row)"
        )
        return [
            f"{self.name}: {self.db.where}, {what} → {res.id} (provider {res.provider}); "
            f"{mapped} of {len(res.fields)} fields from columns; "
            f"incremental by ({', '.join(order)}){skipped}",
            f"{self.name}: position in {self.store.describe()}: {where}",
        ]

    async def _describe(self) -> tuple[str, dict[str, Column], set[str]]:
        """FROM clause, columns by name, and the columns known to be NOT NULL."""
        cfg = self.cfg
        if cfg.table is not None:
            if not await self.db.table_exists(cfg.table):
                raise self._error(f"table {cfg.table} does not exist in {self.db.where}", "table")
            from_sql = f"{self.db.quote(cfg.table)} AS src"
            not_null = await self.db.not_null_columns(cfg.table)
        else:
            from_sql = f"({cfg.query}) AS src"
            not_null = set()  # a query's columns: checked by scanning, below
        try:
            described = await self.db.describe(from_sql)
        except ConnectorError as exc:
            if isinstance(exc, ConnectorConfigError) or exc.retriable:
                raise
            raise self._error(f"the query does not run: {exc.reason}", "query") from None
        return from_sql, {c.name: c for c in described}, not_null

    def _need(
        self, columns: dict[str, Column], column: str, *keys: str | int, field: str | None = None
    ) -> Column:
        if column not in columns:
            what = f"table {self.cfg.table}" if self.cfg.table else "the query"
            raise self._error(
                f"column {column!r} does not exist in {what} (it has: {', '.join(columns)})",
                *keys,
                column=column,
                field=field,
            )
        return columns[column]

    def _ordering(self, res: Resource, columns: dict[str, Column]) -> list[str]:
        """The columns rows are read in order of: incremental column, then the unique key."""
        inc = self.cfg.incremental
        key_cols = list(inc.unique_key or [self.cfg.mapping.get(res.key, res.key)])
        order = [inc.column, *[k for k in key_cols if k != inc.column]]
        for i, name in enumerate(order):
            keys = ("incremental", "column") if i == 0 else ("incremental", "unique_key")
            col = self._need(columns, name, *keys)
            if col.family not in ORDERABLE:
                raise self._error(
                    f"column {name!r} ({col.type_name}) cannot order rows for incremental reads",
                    *keys,
                    column=name,
                )
        return order

    def _soft_delete(self, columns: dict[str, Column]) -> Column | None:
        if self.cfg.soft_delete is None:
            return None
        deleted = self._need(columns, self.cfg.soft_delete.column, "soft_delete", "column")
        if deleted.family not in (mapping.BOOL, mapping.INT1):
            raise self._error(
                f"soft-delete column {deleted.name!r} is {deleted.type_name}, not a boolean",
                "soft_delete",
                "column",
                column=deleted.name,
            )
        return deleted

    def _plan(
        self,
        res: Resource,
        columns: dict[str, Column],
        not_null: set[str],
        index_of: Callable[[str], int],
    ) -> tuple[list[_FieldPlan], list[_Risk]]:
        """How each field is read; and the columns that must be scanned for NULLs."""
        cfg = self.cfg
        unknown = sorted(set(cfg.mapping) - set(res.field_names()))
        if unknown:
            raise self._error(
                f"{unknown[0]!r} is not a field of resource {res.id!r} "
                f"(its fields: {', '.join(res.field_names())})",
                "mapping",
                unknown[0],
                field=unknown[0],
            )
        plans: list[_FieldPlan] = []
        risky: list[_Risk] = []
        defaults = {f["name"]: f for f in res.schema_["fields"] if "default" in f}
        for f in res.fields:
            ft = mapping.field_type(f.avro_type)
            column = cfg.mapping.get(f.name, f.name)
            mapped = f.name in cfg.mapping
            keys = ("mapping", f.name) if mapped else ("table" if cfg.table else "query",)
            if column not in columns and not mapped and f.name in defaults:
                # a field with a default (say a nullable one added later) need not have a column
                default = defaults[f.name]["default"]
                plans.append(_FieldPlan(f.name, None, -1, True, lambda v: v, default))
                continue
            col = self._need(columns, column, *keys, field=f.name)
            problem = mapping.source_problem(col, ft)
            if problem:
                raise self._error(problem, *keys, column=column, field=f.name)
            if not ft.nullable and column not in not_null:
                risky.append((column, f.name, keys))
            convert = mapping.converter(col, ft, self.db.target.timezone)
            check = None if ft.kind in mapping.CHECKED_KINDS else fastavro.parse_schema(f.avro_type)
            plans.append(
                _FieldPlan(
                    f.name,
                    column,
                    index_of(column),
                    ft.nullable,
                    convert,
                    check=check,
                    primitive=encoding.to_primitive(f.avro_type),
                    kept=mapping.KEPT_AS_IS.get(ft.kind),
                )
            )
        return plans, risky

    async def _no_nulls(
        self,
        from_sql: str,
        order: list[str],
        risky: list[_Risk],
    ) -> None:
        """Refuse to start if a column feeding a non-nullable field, or an ordering column,
        holds NULL (one scan for all of them)."""
        if not risky:
            return
        q = self.db.quote
        flags = ", ".join(f"{q(c)} IS NULL" for c, _f, _k in risky)
        cond = " OR ".join(f"{q(c)} IS NULL" for c, _f, _k in risky)
        shown = ", ".join(q(c) for c in order)
        rows = await self.db.fetch(
            f"SELECT {shown}, {flags} FROM {from_sql} WHERE {cond} LIMIT 1"  # noqa: S608
        )
        if not rows:
            return
        row = ", ".join(f"{c}={v}" for c, v in zip(order, rows[0], strict=False))
        nulls = rows[0][len(order) :]
        column, field, keys = next(r for r, isnull in zip(risky, nulls, strict=True) if isnull)
        if field is None:
            raise self._error(
                f"ordering column is NULL in row ({row}): such rows could never be read "
                "incrementally; make the column NOT NULL",
                *keys,
                column=column,
            )
        raise self._error(
            f"NULL in row ({row}), but the field is not nullable in the resource schema",
            *keys,
            column=column,
            field=field,
        )

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.db.connect()
            if not self._ready:
                await self.setup()
            await self.store.ensure()
            await self._estimate()
            if self._publisher is None:
                publisher = Publisher(self.bus, self.catalog, self.cfg.department)
                await publisher.start()
                self._publisher = publisher
        except BaseException:
            await self.stop()
            raise

    async def _estimate(self) -> None:
        """For a first load of a table: how many rows it will read, from table statistics."""
        if self.position is not None or self.cfg.table is None or self._caught_up:
            return
        if self.progress.estimated_total is None:
            self.progress.estimated_total = await self.db.estimate_rows(self.cfg.table)
        self._show_remaining()

    def _show_remaining(self) -> None:
        left = self.progress.remaining()
        self.metrics.snapshot_remaining.labels(self.name).set(left or 0)

    async def stop(self) -> None:
        publisher, self._publisher = self._publisher, None
        await self._drop_prefetch()
        try:
            if publisher is not None:
                await publisher.stop()
        finally:
            await self.db.close()

    async def poll(self) -> int:
        if self._publisher is None:
            raise ConnectorError(f"connector {self.name!r} is not started")
        rows = await self._page(self._pending or self.position)
        if not rows:
            if not self._caught_up:  # the first load is done: what follows is incremental
                self._caught_up = True
                self.progress.estimated_total = None
                self._show_remaining()
            return 0
        self.metrics.rows_read.labels(self.name).inc(len(rows))
        self.progress.rows_read += len(rows)
        if self.progress.estimated_total is not None:
            self._show_remaining()
        last = rows[-1]
        after = Position(tuple(self._order), tuple(last[i] for i in self._order_idx))
        if not self._caught_up and len(rows) == self.cfg.batch_size:
            self._prefetch = (after, asyncio.create_task(self._read(after)))
        prepared = self._prepare(rows)
        await self._publisher.send(prepared)
        self._pending = after
        skipped = sum(1 for p in prepared if p.value is None)  # deletions (tombstones)
        self.metrics.published.labels(self.name).inc(len(prepared) - skipped)
        self.progress.published += len(prepared) - skipped
        if skipped:
            self.metrics.skipped.labels(self.name).inc(skipped)
            self.progress.skipped += skipped
        return len(rows)

    async def _page(self, position: Position | None) -> list[tuple[Any, ...]]:
        """The rows after ``position`` (the first page if None): read ahead, or read now."""
        ahead, self._prefetch = self._prefetch, None
        if ahead is not None:
            if ahead[0] == position:
                return await ahead[1]
            await self._drop(ahead[1])  # read after another position (a batch refused)
        return await self._read(position)

    async def _read(self, position: Position | None) -> list[tuple[Any, ...]]:
        if position is None:
            return await self.db.fetch(self._select, (self.cfg.batch_size,))
        params = [*self.db.after_params(position.values), self.cfg.batch_size]
        return await self.db.fetch(self._select_after, params)

    async def _drop_prefetch(self) -> None:
        ahead, self._prefetch = self._prefetch, None
        if ahead is not None:
            await self._drop(ahead[1])

    @staticmethod
    async def _drop(task: asyncio.Task[Any]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task

    async def flush(self) -> None:
        if self._pending is None:
            return
        await self.store.save(self.name, self._pending)
        self.position, self._pending = self._pending, None
        self.progress.checkpoint = self.position.describe()
        self.metrics.checkpoints.labels(self.name).inc()
        self.metrics.last_checkpoint.labels(self.name).set_to_current_time()

    # --- rows to records ---------------------------------------------------------------------

    def _row_text(self, row: tuple[Any, ...]) -> str:
        return (
            "("
            + ", ".join(f"{c}={row[i]}" for c, i in zip(self._order, self._order_idx, strict=True))
            + ")"
        )

    def _prepare(self, rows: list[tuple[Any, ...]]) -> list[Prepared]:
        """Convert and check a whole batch, then encode it; the first bad row raises (naming
        its position, column and field) and nothing of the batch is sent.

        Every value is checked as it is converted (see :data:`mapping.CHECKED_KINDS`), or
        against its field's Avro type for the other kinds, then put in its Avro primitive
        form, so the records are only encoded (:mod:`connectors.encoding`).
        """
        assert self._publisher is not None
        deleted_idx = self._deleted_idx
        fast = self._row_to_avro
        out: list[tuple[str, bytes]] = []
        gone: list[str] = []
        for row in rows:
            if deleted_idx is not None and row[deleted_idx]:
                gone.append(self._key_of(row))
            elif fast is None:
                out.append(self._encoded(row))
            else:
                try:
                    out.append(fast(row))
                except row_encoder.RowFailed as failed:
                    raise self._row_error(row, self._plans[failed.step], failed.cause) from None
        records = self._publisher.prepare_encoded(self.cfg.resource, out)
        resource = self.cfg.resource
        return records + [self._publisher.prepare_deletion(resource, k) for k in gone]

    def _encoded(self, row: tuple[Any, ...]) -> tuple[str, bytes]:
        """A row's key and Avro body by the general path: a dict, encoded by fastavro."""
        assert self._encoder is not None
        key, record = self._record(row)
        try:
            return key, self._encoder.encode(record)
        except Exception as exc:  # a value fastavro cannot write after all
            field = self._encoder.culprit(record)
            plan = next((p for p in self._plans if p.field == field), None)
            raise self._row_error(row, plan, exc) from None

    def _row_error(
        self, row: tuple[Any, ...], plan: _FieldPlan | None, exc: BaseException
    ) -> ConnectorDataError:
        """The error of a row that cannot be published, naming its column and field."""
        checked = isinstance(exc, (ValueError, TypeError, ArithmeticError, OverflowError))
        problem = str(exc) if checked else f"cannot be encoded: {exc}"
        return ConnectorDataError(
            f"{problem}; nothing of this batch was published",
            connector=self.name,
            row=self._row_text(row),
            column=plan.column if plan is not None else None,
            field=plan.field if plan is not None else None,
        )

    def _key_of(self, row: tuple[Any, ...]) -> str:
        """The key of a soft-deleted row: its key column, converted as for a record."""
        plan = next(p for p in self._plans if p.field == self._key_field)
        value = row[plan.index] if plan.column is not None else plan.default
        try:
            if value is None:
                raise ValueError("NULL: a deleted row needs its key to be deleted on the bus")
            return str(plan.convert(value))
        except (ValueError, TypeError, ArithmeticError, OverflowError) as exc:
            raise ConnectorDataError(
                f"{exc}; nothing of this batch was published",
                connector=self.name,
                row=self._row_text(row),
                column=plan.column,
                field=plan.field,
            ) from None

    def _record(self, row: tuple[Any, ...]) -> tuple[str, dict[str, Any]]:
        """One row as the record's key and the record in Avro primitive form, every value
        checked."""
        record: dict[str, Any] = {}
        key: Any = None
        key_field = self._key_field
        p: _FieldPlan | None = None
        try:
            for p in self._plans:
                if p.column is None:
                    record[p.field] = p.default
                    continue
                value = row[p.index]
                if value is None:
                    if not p.nullable:
                        raise ValueError(
                            "NULL, but the field is not nullable in the resource schema"
                        )
                    record[p.field] = None
                    continue
                value = p.convert(value)
                if p.check is not None and not validate(value, p.check, raise_errors=False):
                    raise ValueError(f"{value!r} is not a valid {p.check}")
                if p.field == key_field:
                    key = value
                record[p.field] = value if p.primitive is None else p.primitive(value)
        except (ValueError, TypeError, ArithmeticError, OverflowError) as exc:
            raise self._row_error(row, p, exc) from None
        return str(key if key is not None else record.get(key_field)), record
