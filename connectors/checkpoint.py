"""Durable positions of database sources: how far a source has published.

A position is the tuple ``(incremental column, *unique key)`` of the last row
whose batch the broker acknowledged. It is saved only after that
acknowledgement, so a crash between the two re-sends one batch (same
records, same record ids: consumers drop them, sinks upsert them) and never
skips one.

Two stores, chosen per source:

* **table** (default): a table in the source database itself:
  ``gov_exchange.checkpoints`` on PostgreSQL (the connector's own schema,
  created if missing when the account may), ``gov_exchange_checkpoints`` in
  the connection's database on MySQL/MariaDB (where a schema is a database).
  The position lives and is backed up with the data it points into, and
  nothing is kept on the connector's host, which can be replaced at will.
  Columns: ``position`` (``jsonb``/``JSON``) and ``saved_at_utc``
  (``timestamptz``/``DATETIME(6)`` in UTC).
* An older table (``text`` and ``timestamp`` on PostgreSQL) is converted in
  place when the source starts, and positions in the old default table
  ``gov_exchange_checkpoints`` (PostgreSQL's ``public``) are read, then copied
  to the new one: no position is lost.
* **file**: a small JSON file, replaced atomically (write, fsync, rename,
  fsync the directory), for a connector that may only read its database.

A position also records the columns it is made of; a source whose
``incremental`` settings changed refuses the old position instead of
misreading it.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import logging
import os
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.errors import ConnectorError
from connectors.sql import Database

log = logging.getLogger(__name__)

#: the connector's own schema on PostgreSQL
SCHEMA = "gov_exchange"
#: the default table before positions moved to the connector's schema
LEGACY_TABLE = "gov_exchange_checkpoints"


def default_table(dialect: str) -> str:
    """Where a source keeps its positions unless ``checkpoint.table`` says otherwise."""
    return f"{SCHEMA}.checkpoints" if dialect == "postgresql" else LEGACY_TABLE


@dataclass(frozen=True)
class Position:
    columns: tuple[str, ...]
    values: tuple[Any, ...]

    def to_json(self) -> str:
        return json.dumps(
            {"columns": list(self.columns), "values": [_encode(v) for v in self.values]},
            ensure_ascii=False,
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | dict[str, Any]) -> Position:
        """From :meth:`to_json`'s text (or the object a ``jsonb`` column reads back as)."""
        data = json.loads(text) if isinstance(text, str) else text
        return cls(tuple(data["columns"]), tuple(_decode(v) for v in data["values"]))

    def describe(self) -> str:
        return ", ".join(f"{c}={_show(v)}" for c, v in zip(self.columns, self.values, strict=True))


def _show(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _encode(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"bool": value}
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        return {"float": repr(value)}
    if isinstance(value, decimal.Decimal):
        return {"decimal": str(value)}
    if isinstance(value, str):
        return {"str": value}
    if isinstance(value, dt.datetime):
        return {"datetime": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, dt.time):
        return {"time": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"uuid": str(value)}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
    raise ConnectorError(
        f"a position cannot hold a {type(value).__name__} value: use a column of a simple "
        "type (integer, numeric, text, date, timestamp) for incremental reads"
    )


def _decode(item: dict[str, Any]) -> Any:
    ((kind, text),) = item.items()
    if kind == "bool":
        return bool(text)
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "decimal":
        return decimal.Decimal(text)
    if kind == "str":
        return text
    if kind == "datetime":
        return dt.datetime.fromisoformat(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "time":
        return dt.time.fromisoformat(text)
    if kind == "uuid":
        return uuid.UUID(text)
    if kind == "bytes":
        return base64.b64decode(text)
    raise ValueError(f"unknown value kind {kind!r} in a position")


class CheckpointStore(ABC):
    """Where positions are kept, per connector name."""

    @abstractmethod
    def describe(self) -> str: ...

    @abstractmethod
    async def ensure(self) -> None:
        """Create what the store needs (idempotent)."""

    @abstractmethod
    async def load(self, connector: str) -> Position | None: ...

    @abstractmethod
    async def save(self, connector: str, position: Position) -> None:
        """Store durably; returns only once it would survive a crash."""


def _parse(text: str | dict[str, Any], where: str) -> Position:
    try:
        return Position.from_json(text)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConnectorError(f"{where}: the stored position is unreadable: {exc}") from exc


class TableCheckpoints(CheckpointStore):
    """Positions in a table of the source database (autocommit: each save is its own commit).

    ``legacy``: an older table whose positions are read when this one has none,
    and copied into this one by :meth:`ensure`.
    """

    def __init__(self, db: Database, table: str, *, legacy: str | None = None) -> None:
        self.db = db
        self.table = table
        self.legacy = legacy if legacy != table else None
        self._from_legacy = False

    def describe(self) -> str:
        if self._from_legacy:
            return (
                f"table {self.legacy} in {self.db.where} (the old place: copied to "
                f"{self.table} when the source runs)"
            )
        return f"table {self.table} in {self.db.where}"

    async def ensure(self) -> None:
        db, q = self.db, self.db.quote
        schema = self.table.rpartition(".")[0]
        if schema and db.dialect == "postgresql" and not await db.schema_exists(schema):
            try:
                await db.execute(f"CREATE SCHEMA IF NOT EXISTS {q(schema)}")
            except ConnectorError as exc:
                raise ConnectorError(
                    f"cannot create schema {schema} for the checkpoint table {self.table} in "
                    f"{db.where}: {exc.reason}. Run 'CREATE SCHEMA {q(schema)} AUTHORIZATION "
                    f"{q(db.target.user)};' as an owner of the database, or set checkpoint.table "
                    "(or checkpoint.file)"
                ) from exc
        saved, doc = (
            ("timestamptz", "jsonb") if db.dialect == "postgresql" else ("DATETIME(6)", "JSON")
        )
        await db.execute(
            f"CREATE TABLE IF NOT EXISTS {q(self.table)} ("
            f"{q('connector')} VARCHAR(200) NOT NULL PRIMARY KEY, "
            f"{q('position')} {doc} NOT NULL, "
            f"{q('saved_at_utc')} {saved} NOT NULL)"
        )
        if db.dialect == "postgresql":
            await self._upgrade()
        await self._adopt_legacy()

    async def _upgrade(self) -> None:
        """Convert a table of the old shape (text, timestamp without time zone) in place."""
        rows = await self.db.fetch(
            "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
            (self.db.quote(self.table),),
        )
        types = dict(rows)
        changes = []
        if types.get("position") != "jsonb":
            changes.append('ALTER COLUMN "position" TYPE jsonb USING "position"::jsonb')
        if types.get("saved_at_utc") == "timestamp without time zone":
            changes.append(
                "ALTER COLUMN saved_at_utc TYPE timestamptz USING saved_at_utc AT TIME ZONE 'UTC'"
            )
        if changes:
            await self.db.execute(f"ALTER TABLE {self.db.quote(self.table)} {', '.join(changes)}")
            log.warning(
                "checkpoint table %s in %s converted to jsonb and timestamptz (positions kept)",
                self.table,
                self.db.where,
            )

    async def _adopt_legacy(self) -> None:
        """Copy positions of the old default table that this one does not have yet."""
        if self.legacy is None or not await self.db.table_exists(self.legacy):
            return
        q = self.db.quote
        select = f"SELECT {q('connector')}, {q('position')} FROM "  # noqa: S608
        have = {r[0] for r in await self.db.fetch(select + q(self.table))}
        moved = [r for r in await self.db.fetch(select + q(self.legacy)) if r[0] not in have]
        for name, text in moved:
            await self.save(name, _parse(text, f"table {self.legacy} in {self.db.where}"))
        if moved:
            log.warning(
                "copied %d position(s) from the old checkpoint table %s to %s in %s; the old "
                "table is no longer read: drop it once no older connector uses it",
                len(moved),
                self.legacy,
                self.table,
                self.db.where,
            )
        self._from_legacy = False

    async def _read(self, table: str, connector: str) -> Position | None:
        if not await self.db.table_exists(table):
            return None
        q = self.db.quote
        rows = await self.db.fetch(
            f"SELECT {q('position')} FROM {q(table)} WHERE {q('connector')} = %s",  # noqa: S608
            (connector,),
        )
        return _parse(rows[0][0], f"table {table} in {self.db.where}") if rows else None

    async def load(self, connector: str) -> Position | None:
        position = await self._read(self.table, connector)
        if position is None and self.legacy is not None:
            position = await self._read(self.legacy, connector)
            self._from_legacy = position is not None
        return position

    async def save(self, connector: str, position: Position) -> None:
        sql = self.db.upsert(self.table, ["connector", "position", "saved_at_utc"], "connector")
        now = dt.datetime.now(dt.UTC)
        if self.db.dialect != "postgresql":
            now = now.replace(tzinfo=None)  # DATETIME(6) in UTC
        await self.db.execute(sql, (connector, position.to_json(), now))


class FileCheckpoints(CheckpointStore):
    """Positions in a JSON file, replaced atomically."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def describe(self) -> str:
        return f"file {self.path}"

    async def ensure(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectorError(f"{self.path.parent}: cannot create: {exc.strerror}") from exc

    def _read_all(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConnectorError(f"{self.path}: cannot read: {exc.strerror}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ConnectorError(f"{self.path}: not a checkpoint file: {exc}") from exc
        if not isinstance(data, dict):
            raise ConnectorError(f"{self.path}: not a checkpoint file")
        return data

    async def load(self, connector: str) -> Position | None:
        entry = self._read_all().get(connector)
        return _parse(entry, self.describe()) if isinstance(entry, str) else None

    async def save(self, connector: str, position: Position) -> None:
        data = self._read_all()
        data[connector] = position.to_json()
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(data, fh, ensure_ascii=False, indent=1, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise ConnectorError(f"{self.path}: cannot save the position: {exc.strerror}") from exc
