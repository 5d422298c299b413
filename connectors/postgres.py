"""PostgreSQL through psycopg 3 (native asyncio)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from connectors import mapping as m
from connectors.config import DatabaseTarget
from connectors.errors import ConnectorError, DatabaseUnavailable
from connectors.mapping import Column, FieldType
from connectors.sql import Database, literal

_PG_FAMILY = {
    "text": m.TEXT,
    "varchar": m.TEXT,
    "bpchar": m.TEXT,
    "char": m.TEXT,
    "name": m.TEXT,
    "citext": m.TEXT,
    "uuid": m.UUID,
    "int2": m.INT2,
    "int4": m.INT4,
    "int8": m.INT8,
    "bool": m.BOOL,
    "numeric": m.NUMERIC,
    "float4": m.FLOAT4,
    "float8": m.FLOAT8,
    "date": m.DATE,
    "timestamp": m.TIMESTAMP,
    "timestamptz": m.TIMESTAMPTZ,
    "time": m.TIME,
    "bytea": m.BYTES,
    "json": m.JSON,
    "jsonb": m.JSON,
}

_PG_DDL = {
    "string": "text",
    "uuid": "text",
    "enum": "text",
    "boolean": "boolean",
    "int": "integer",
    "long": "bigint",
    "float": "real",
    "double": "double precision",
    "date": "date",
    "timestamp-millis": "timestamptz",
    "timestamp-micros": "timestamptz",
    "local-timestamp-millis": "timestamp",
    "local-timestamp-micros": "timestamp",
    "time-millis": "time",
    "time-micros": "time",
    "bytes": "bytea",
    "fixed": "bytea",
}


#: the temporary table a sink's batch is copied into (dropped at commit)
_STAGE = "gov_exchange_stage"

# invalid_authorization_specification, invalid_password
_LOGIN_REFUSED = frozenset(["28000", "28P01"])


class PostgresDatabase(Database):
    dialect = "postgresql"

    def __init__(self, target: DatabaseTarget, *, autocommit: bool) -> None:
        super().__init__(target, autocommit=autocommit)
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None

    @property
    def conn(self) -> psycopg.AsyncConnection[tuple[Any, ...]]:
        if self._conn is None:
            raise ConnectorError(f"not connected to {self.where}")
        return self._conn

    async def connect(self) -> None:
        if self._conn is not None:
            return
        t = self.target
        try:
            self._conn = await psycopg.AsyncConnection.connect(
                host=t.host,
                port=t.port,
                user=t.user,
                password=t.password.get_secret_value() if t.password else None,
                dbname=t.database,
                connect_timeout=max(1, round(t.connect_timeout_s)),
                autocommit=self.autocommit,
                application_name="gov-exchange-connector",
            )
        except psycopg.Error as exc:
            message = _pg_message(exc)
            refused = getattr(exc, "sqlstate", None) in _LOGIN_REFUSED or "password" in message
            hint = t.refused_hint() if refused else ""
            raise DatabaseUnavailable(f"cannot connect to {self.where}: {message}{hint}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await conn.close()

    def quote(self, name: str) -> str:
        return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))

    async def _run(self, sql: str, params: Sequence[Any], *, fetch: bool) -> list[tuple[Any, ...]]:
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(sql, params)
                return await cur.fetchall() if fetch else []
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"{self.where}: {_pg_message(exc)}") from exc
        except psycopg.Error as exc:
            raise ConnectorError(f"{self.where}: {_pg_message(exc)}") from exc

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._run(sql, params, fetch=True)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._run(sql, params, fetch=False)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            async with self.conn.cursor() as cur:
                await cur.executemany(sql, rows)
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"{self.where}: {_pg_message(exc)}") from exc
        except psycopg.Error as exc:
            raise ConnectorError(f"{self.where}: {_pg_message(exc)}") from exc

    async def commit(self) -> None:
        try:
            await self.conn.commit()
        except psycopg.Error as exc:
            raise DatabaseUnavailable(f"{self.where}: commit failed: {_pg_message(exc)}") from exc

    async def rollback(self) -> None:
        if self._conn is not None and not self._conn.closed:
            try:
                await self._conn.rollback()
            except psycopg.Error as exc:
                raise DatabaseUnavailable(f"{self.where}: {_pg_message(exc)}") from exc

    async def describe(self, from_sql: str) -> list[Column]:
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(f"SELECT * FROM {from_sql} LIMIT 0")  # noqa: S608
                desc = list(cur.description or [])
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"{self.where}: {_pg_message(exc)}") from exc
        except psycopg.Error as exc:
            raise ConnectorError(f"{self.where}: {_pg_message(exc)}") from exc
        finally:
            if not self.autocommit and self._conn is not None:
                await self._conn.rollback()
        oids = sorted({d.type_code for d in desc})
        types = {
            int(oid): (str(name), str(kind), str(cat))
            for oid, name, kind, cat in await self.fetch(
                "SELECT oid::int, typname::text, typtype::text, typcategory::text "
                "FROM pg_type WHERE oid = ANY(%s)",
                (oids,),
            )
        }
        if not self.autocommit:
            await self.conn.rollback()
        out = []
        for d in desc:
            name, kind, cat = types.get(d.type_code, ("unknown", "b", "X"))
            family = _PG_FAMILY.get(name)
            if family is None:
                family = m.TEXT if kind == "e" or cat == "S" else f"other:{name}"
            type_name = name
            if name == "numeric" and d.precision is not None:
                type_name = f"numeric({d.precision},{d.scale or 0})"
            out.append(Column(d.name, family, type_name, d.precision, d.scale, None))
        return out

    async def not_null_columns(self, table: str) -> set[str]:
        rows = await self.fetch(
            "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass(%s) "
            "AND attnum > 0 AND NOT attisdropped AND attnotnull",
            (self.quote(table),),
        )
        if not self.autocommit:
            await self.conn.rollback()
        return {r[0] for r in rows}

    async def is_unique(self, table: str, column: str) -> bool:
        rows = await self.fetch(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a "
            "ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] "
            "WHERE i.indrelid = to_regclass(%s) AND i.indisunique AND i.indnkeyatts = 1 "
            "AND i.indpred IS NULL AND a.attname = %s",
            (self.quote(table), column),
        )
        if not self.autocommit:
            await self.conn.rollback()
        return bool(rows)

    async def schema_exists(self, schema: str) -> bool:
        rows = await self.fetch("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        if not self.autocommit:
            await self.conn.rollback()
        return bool(rows)

    async def table_exists(self, table: str) -> bool:
        rows = await self.fetch("SELECT to_regclass(%s) IS NOT NULL", (self.quote(table),))
        if not self.autocommit:
            await self.conn.rollback()
        return bool(rows[0][0])

    async def estimate_rows(self, table: str) -> int | None:
        rows = await self.fetch(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            (self.quote(table),),
        )
        if not self.autocommit:
            await self.conn.rollback()
        # -1: never vacuumed or analysed, so not known
        return int(rows[0][0]) if rows and rows[0][0] is not None and rows[0][0] >= 0 else None

    def after(self, columns: Sequence[str]) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join("%s" for _ in columns)
        return f"({cols}) > ({marks})"

    def upsert(self, table: str, columns: Sequence[str], key: str) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join("%s" for _ in columns)
        sets = ", ".join(f"{self.quote(c)} = EXCLUDED.{self.quote(c)}" for c in columns if c != key)
        return (
            f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({marks}) "  # noqa: S608
            f"ON CONFLICT ({self.quote(key)}) DO UPDATE SET {sets}"
        )

    async def upsert_rows(
        self, table: str, columns: Sequence[str], key: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """COPY the rows into a temporary table dropped at commit, then upsert them from it in
        one statement: several times faster than one INSERT per row, same result."""
        q = self.quote
        cols = ", ".join(q(c) for c in columns)
        sets = ", ".join(f"{q(c)} = EXCLUDED.{q(c)}" for c in columns if c != key)
        try:
            async with self.conn.cursor() as cur:
                await cur.execute(
                    f"CREATE TEMPORARY TABLE {_STAGE} ON COMMIT DROP AS "  # noqa: S608
                    f"SELECT {cols} FROM {q(table)} WITH NO DATA"
                )
                async with cur.copy(f"COPY {_STAGE} ({cols}) FROM STDIN") as copy:
                    for row in rows:
                        await copy.write_row(row)
                await cur.execute(
                    f"INSERT INTO {q(table)} ({cols}) SELECT {cols} FROM {_STAGE} "  # noqa: S608
                    f"ON CONFLICT ({q(key)}) DO UPDATE SET {sets}"
                )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(f"{self.where}: {_pg_message(exc)}") from exc
        except psycopg.Error as exc:
            raise ConnectorError(f"{self.where}: {_pg_message(exc)}") from exc

    def ddl_type(self, ft: FieldType) -> str:
        if ft.kind == "decimal":
            return f"numeric({ft.precision},{ft.scale})"
        return _PG_DDL.get(ft.kind, "jsonb")

    def table_comment(self, table: str, text: str) -> str | None:
        return f"COMMENT ON TABLE {self.quote(table)} IS {literal(text, backslash_escapes=False)}"

    def column_comment(self, table: str, column: str, text: str) -> str | None:
        return f"COMMENT ON COLUMN {self.quote(table)}.{self.quote(column)} IS {literal(text, backslash_escapes=False)}"


def _pg_message(exc: psycopg.Error) -> str:
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        return str(primary)
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
