"""The two archive databases: SQLite (a file, the default) and PostgreSQL (psycopg 3).

They differ in placeholders, the type of ``at`` (epoch milliseconds in
SQLite, ``timestamptz`` in PostgreSQL), ``details`` (JSON text or ``jsonb``),
transactions and bulk loading (``executemany`` or ``COPY``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from exchange.audit.archive import COLUMN_LIST, INSERT_SQL, Archive, Row
from exchange.audit.entry import from_millis, to_millis


class SQLiteArchive(Archive):
    dialect = "sqlite"
    at_type = "INTEGER"  # epoch milliseconds

    def at_param(self, at: dt.datetime) -> int:
        return to_millis(at)

    def at_value(self, value: Any) -> dt.datetime:
        return from_millis(int(value))

    def transaction(self) -> AbstractContextManager[Any]:
        return _SQLiteTransaction(self.conn)

    def bulk_insert(self, rows: Iterable[Row]) -> None:
        with self.transaction() as cur:
            cur.executemany(INSERT_SQL, rows)


class _SQLiteTransaction:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Cursor:
        self.cur = self.conn.cursor()
        self.cur.execute("BEGIN")
        return self.cur

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.conn.commit()
        else:
            self.conn.rollback()
        self.cur.close()


class PostgresArchive(Archive):
    dialect = "postgresql"
    at_type = "TIMESTAMPTZ"
    json_type = "JSONB"

    def sql(self, text: str) -> str:
        return text.replace("?", "%s")

    def at_param(self, at: dt.datetime) -> dt.datetime:
        return at

    def at_value(self, value: Any) -> dt.datetime:
        return value.astimezone(dt.UTC)  # type: ignore[no-any-return]

    def details_param(self, details: dict[str, str]) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(details)

    def transaction(self) -> AbstractContextManager[Any]:
        return _PostgresTransaction(self.conn)

    def bulk_insert(self, rows: Iterable[Row]) -> None:
        with (
            self.transaction() as cur,
            cur.copy(f"COPY audit_entries ({COLUMN_LIST}) FROM STDIN") as copy,
        ):
            for r in rows:
                copy.write_row(r)


class _PostgresTransaction:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        self.tx = self.conn.transaction()
        self.tx.__enter__()
        self.cur = self.conn.cursor()
        return self.cur

    def __exit__(self, *exc: Any) -> None:
        self.cur.close()
        self.tx.__exit__(*exc)
