"""The two databases departments run, behind one small async interface.

PostgreSQL through psycopg 3 (native asyncio); MySQL/MariaDB through PyMySQL,
whose blocking calls run in a worker thread so the event loop keeps
serving Kafka. Both use ``%s`` placeholders. Identifiers come from the
configuration, already restricted to ``[A-Za-z_][A-Za-z0-9_]*`` (see
:mod:`connectors.config`), and are always quoted, so they are taken
exactly as written (PostgreSQL folds unquoted names to lower case: write
them in lower case).

Driver errors become :class:`DatabaseUnavailable` (connection refused or
lost: worth retrying) or :class:`ConnectorError` with the database's own
message.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from connectors.config import DatabaseTarget
from connectors.mapping import Column, FieldType


class Database(ABC):
    """One connection to a department's database."""

    dialect: ClassVar[str]

    def __init__(self, target: DatabaseTarget, *, autocommit: bool) -> None:
        self.target = target
        self.autocommit = autocommit

    @property
    def where(self) -> str:
        return self.target.where

    @abstractmethod
    async def connect(self) -> None: ...

    @abstractmethod
    async def close(self) -> None:
        """Close the connection (idempotent); an open transaction is rolled back."""

    @abstractmethod
    def quote(self, name: str) -> str:
        """Quote a column or a (possibly schema-qualified) table name."""

    @abstractmethod
    async def describe(self, from_sql: str) -> list[Column]:
        """Columns of ``SELECT * FROM <from_sql>``, without reading a row."""

    @abstractmethod
    async def table_exists(self, table: str) -> bool: ...

    @abstractmethod
    async def schema_exists(self, schema: str) -> bool: ...

    @abstractmethod
    async def is_unique(self, table: str, column: str) -> bool:
        """Whether ``column`` alone is the primary key or a unique key of ``table``."""

    @abstractmethod
    async def not_null_columns(self, table: str) -> set[str]:
        """Columns of ``table`` declared NOT NULL."""

    @abstractmethod
    async def fetch(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...

    @abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def rollback(self) -> None: ...

    @abstractmethod
    def after(self, columns: Sequence[str]) -> str:
        """Predicate: the row's ``columns`` come strictly after a position (one %s each, in order)."""

    def after_params(self, position: Sequence[Any]) -> list[Any]:
        return list(position)

    @abstractmethod
    def upsert(self, table: str, columns: Sequence[str], key: str) -> str:
        """INSERT of one row that replaces the row with the same ``key``."""

    async def estimate_rows(self, table: str) -> int | None:
        """Rows in ``table`` by the database's statistics (cheap, approximate); None: unknown."""
        return None

    async def upsert_rows(
        self, table: str, columns: Sequence[str], key: str, rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` (distinct ``key`` values), replacing rows with the same key, inside
        the open transaction; the database's bulk path where it has one."""
        await self.executemany(self.upsert(table, columns, key), rows)

    @abstractmethod
    def ddl_type(self, ft: FieldType) -> str:
        """Column type that holds an Avro field of type ``ft``."""

    def key_type(self) -> str:
        return "VARCHAR(255)"

    def table_comment(self, table: str, text: str) -> str | None:
        return None

    def column_comment(self, table: str, column: str, text: str) -> str | None:
        return None

    def inline_comment(self, text: str) -> str:
        return ""

    async def __aenter__(self) -> Database:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def literal(text: str, *, backslash_escapes: bool) -> str:
    """A SQL string literal, for comments (DDL takes no parameters)."""
    if backslash_escapes:  # MySQL's default sql_mode
        text = text.replace("\\", "\\\\")
    return "'" + text.replace("'", "''") + "'"
