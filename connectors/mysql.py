"""MySQL and MariaDB through PyMySQL, its blocking calls in a worker thread.

One call at a time per connection (a lock), so a connector's statements keep
their order while the event loop goes on serving Kafka.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pymysql
from pymysql.constants import FIELD_TYPE

from connectors import mapping as m
from connectors.config import DatabaseTarget
from connectors.errors import ConnectorError, DatabaseUnavailable
from connectors.mapping import Column, FieldType
from connectors.sql import Database, literal

_MY_DDL = {
    "string": "LONGTEXT",
    "uuid": "VARCHAR(36)",
    "enum": "VARCHAR(255)",
    "boolean": "BOOLEAN",
    "int": "INT",
    "long": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "date": "DATE",
    "timestamp-millis": "DATETIME(3)",
    "timestamp-micros": "DATETIME(6)",
    "local-timestamp-millis": "DATETIME(3)",
    "local-timestamp-micros": "DATETIME(6)",
    "time-millis": "TIME(3)",
    "time-micros": "TIME(6)",
    "bytes": "LONGBLOB",
    "fixed": "LONGBLOB",
}

_UNAVAILABLE_CODES = {2002, 2003, 2005, 2006, 2013, 2055}
_ACCESS_DENIED = 1045


def _my_column(d: Sequence[Any]) -> Column:
    name, code, _display, length, _internal, scale, null_ok = d[:7]
    length = int(length or 0)
    family: str
    precision: int | None = None
    if code == FIELD_TYPE.TINY:
        family, type_name = m.INT1, ("TINYINT(1)" if length == 1 else "TINYINT")
    elif code in (FIELD_TYPE.SHORT, FIELD_TYPE.YEAR):
        family, type_name = m.INT2, "SMALLINT"
    elif code == FIELD_TYPE.INT24:
        family, type_name = m.INT4, "MEDIUMINT"
    elif code == FIELD_TYPE.LONG:
        # INT UNSIGNED is 10 characters wide, INT 11: only the signed one fits 32 bits
        family, type_name = (m.INT8, "INT UNSIGNED") if length == 10 else (m.INT4, "INT")
    elif code == FIELD_TYPE.LONGLONG:
        family, type_name = m.INT8, "BIGINT"
    elif code in (FIELD_TYPE.DECIMAL, FIELD_TYPE.NEWDECIMAL):
        scale = int(scale or 0)
        precision = length - (1 if scale else 0) - 1
        family, type_name = m.NUMERIC, f"DECIMAL({precision},{scale})"
    elif code == FIELD_TYPE.FLOAT:
        family, type_name = m.FLOAT4, "FLOAT"
    elif code == FIELD_TYPE.DOUBLE:
        family, type_name = m.FLOAT8, "DOUBLE"
    elif code in (FIELD_TYPE.DATE, FIELD_TYPE.NEWDATE):
        family, type_name = m.DATE, "DATE"
    elif code in (FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP):
        family, type_name = m.TIMESTAMP, "DATETIME" if code == FIELD_TYPE.DATETIME else "TIMESTAMP"
    elif code == FIELD_TYPE.TIME:
        family, type_name = m.TIME, "TIME"
    elif code in (FIELD_TYPE.VARCHAR, FIELD_TYPE.VAR_STRING, FIELD_TYPE.STRING):
        family, type_name = m.BLOB, "VARCHAR/CHAR"  # text or binary: told apart per value
    elif code in (FIELD_TYPE.ENUM, FIELD_TYPE.SET):
        family, type_name = m.TEXT, "ENUM"
    elif code in (
        FIELD_TYPE.TINY_BLOB,
        FIELD_TYPE.MEDIUM_BLOB,
        FIELD_TYPE.LONG_BLOB,
        FIELD_TYPE.BLOB,
    ):
        family, type_name = m.BLOB, "TEXT/BLOB"
    elif code == FIELD_TYPE.JSON:
        family, type_name = m.JSON, "JSON"
    elif code == FIELD_TYPE.BIT:
        family, type_name = m.INT1 if length == 1 else f"other:BIT({length})", f"BIT({length})"
    else:
        family, type_name = f"other:{code}", f"type code {code}"
    return Column(
        str(name),
        family,
        type_name,
        precision,
        scale if family == m.NUMERIC else None,
        bool(null_ok),
    )


class MySQLDatabase(Database):
    dialect = "mysql"

    def __init__(self, target: DatabaseTarget, *, autocommit: bool) -> None:
        super().__init__(target, autocommit=autocommit)
        self._conn: pymysql.connections.Connection[Any] | None = None
        self._lock = asyncio.Lock()

    @property
    def conn(self) -> pymysql.connections.Connection[Any]:
        if self._conn is None:
            raise ConnectorError(f"not connected to {self.where}")
        return self._conn

    def _error(self, exc: pymysql.MySQLError) -> ConnectorError:
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        text = exc.args[1] if len(exc.args) > 1 else str(exc)
        if code in _UNAVAILABLE_CODES or isinstance(exc, pymysql.err.InterfaceError):
            return DatabaseUnavailable(f"{self.where}: {text}")
        return ConnectorError(f"{self.where}: {text}")

    async def _call(self, fn: Any, *args: Any) -> Any:
        async with self._lock:
            try:
                return await asyncio.to_thread(fn, *args)
            except pymysql.MySQLError as exc:
                raise self._error(exc) from exc

    async def connect(self) -> None:
        if self._conn is not None:
            return
        t = self.target

        def open_conn() -> pymysql.connections.Connection[Any]:
            return pymysql.connect(
                host=t.host,
                port=t.port,
                user=t.user,
                password=t.password.get_secret_value() if t.password else "",
                database=t.database,
                connect_timeout=max(1, round(t.connect_timeout_s)),
                autocommit=self.autocommit,
                charset="utf8mb4",
            )

        try:
            self._conn = await asyncio.to_thread(open_conn)
        except pymysql.MySQLError as exc:
            text = exc.args[1] if len(exc.args) > 1 else str(exc)
            hint = t.refused_hint() if exc.args and exc.args[0] == _ACCESS_DENIED else ""
            raise DatabaseUnavailable(f"cannot connect to {self.where}: {text}{hint}") from exc

    async def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            if conn.open:
                await asyncio.to_thread(conn.close)

    def quote(self, name: str) -> str:
        return ".".join("`" + part.replace("`", "``") + "`" for part in name.split("."))

    def _fetch_sync(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            return list(cur.fetchall())

    def _execute_sync(self, sql: str, params: Sequence[Any]) -> None:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params))

    def _executemany_sync(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, [tuple(r) for r in rows])

    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await self._call(self._fetch_sync, sql, params)  # type: ignore[no-any-return]

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self._call(self._execute_sync, sql, params)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._call(self._executemany_sync, sql, rows)

    async def commit(self) -> None:
        await self._call(self.conn.commit)

    async def rollback(self) -> None:
        if self._conn is not None and self._conn.open:
            await self._call(self._conn.rollback)

    async def describe(self, from_sql: str) -> list[Column]:
        def run() -> list[Column]:
            with self.conn.cursor() as cur:
                cur.execute(f"SELECT * FROM {from_sql} LIMIT 0")  # noqa: S608
                return [_my_column(d) for d in cur.description or ()]

        return await self._call(run)  # type: ignore[no-any-return]

    async def not_null_columns(self, table: str) -> set[str]:
        return {c.name for c in await self.describe(self.quote(table)) if c.nullable is False}

    async def is_unique(self, table: str, column: str) -> bool:
        schema, _, name = table.rpartition(".")
        rows = await self.fetch(
            "SELECT index_name FROM information_schema.statistics "
            "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s AND non_unique = 0 "
            "GROUP BY index_name HAVING COUNT(*) = 1 AND MAX(column_name) = %s",
            (schema or None, name, column),
        )
        return bool(rows)

    async def schema_exists(self, schema: str) -> bool:
        rows = await self.fetch(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = %s", (schema,)
        )
        return bool(rows)

    async def table_exists(self, table: str) -> bool:
        schema, _, name = table.rpartition(".")
        rows = await self.fetch(
            "SELECT 1 FROM information_schema.tables "
            "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s",
            (schema or None, name),
        )
        return bool(rows)

    async def estimate_rows(self, table: str) -> int | None:
        schema, _, name = table.rpartition(".")
        rows = await self.fetch(
            "SELECT table_rows FROM information_schema.tables "
            "WHERE table_schema = COALESCE(%s, DATABASE()) AND table_name = %s",
            (schema or None, name),
        )
        return int(rows[0][0]) if rows and rows[0][0] is not None else None

    def after(self, columns: Sequence[str]) -> str:
        # (a, b) > (x, y) spelled out: MariaDB's range optimiser uses an index for this form
        def expand(i: int) -> str:
            col = self.quote(columns[i])
            if i == len(columns) - 1:
                return f"{col} > %s"
            return f"({col} > %s OR ({col} = %s AND {expand(i + 1)}))"

        return expand(0)

    def after_params(self, position: Sequence[Any]) -> list[Any]:
        out: list[Any] = []
        for i, value in enumerate(position):
            out.append(value)
            if i < len(position) - 1:
                out.append(value)
        return out

    def upsert(self, table: str, columns: Sequence[str], key: str) -> str:
        cols = ", ".join(self.quote(c) for c in columns)
        marks = ", ".join("%s" for _ in columns)
        sets = ", ".join(f"{self.quote(c)} = VALUES({self.quote(c)})" for c in columns if c != key)
        return (
            f"INSERT INTO {self.quote(table)} ({cols}) VALUES ({marks}) "  # noqa: S608
            f"ON DUPLICATE KEY UPDATE {sets}"
        )

    def ddl_type(self, ft: FieldType) -> str:
        if ft.kind == "decimal":
            return f"DECIMAL({min(ft.precision, 65)},{min(ft.scale, 30)})"
        return _MY_DDL.get(ft.kind, "JSON")

    def inline_comment(self, text: str) -> str:
        return f" COMMENT {literal(text[:1000], backslash_escapes=True)}"
