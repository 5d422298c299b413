"""Errors of the connectors, each naming where to look: file and line, connector, column, field.

``ConnectorConfigError``: the configuration does not fit the catalog or the
database (checked before any data moves). ``ConnectorDataError``: a row or a
line does not fit the schema; its batch was not sent. ``DatabaseUnavailable``:
the database could not be reached (worth retrying).
"""

from __future__ import annotations

from typing import Any

from exchange.errors import ExchangeError


def _where(
    *,
    file: str | None = None,
    line: int | None = None,
    connector: str | None = None,
    column: str | None = None,
    field: str | None = None,
    row: str | None = None,
    sheet: str | None = None,
    cell: str | None = None,
) -> str:
    parts = []
    if file:
        parts.append(f"{file}:{line}" if line else file)
    elif line:
        parts.append(f"line {line}")
    if sheet is not None:
        parts.append(f"sheet {sheet!r}")
    if connector:
        parts.append(f"connector {connector!r}")
    if row:
        parts.append(f"row {row}")
    if cell:
        parts.append(f"cell {cell}")
    if column:
        parts.append(f"column {column!r}")
    if field:
        parts.append(f"field {field!r}")
    return ", ".join(parts) + ": " if parts else ""


class ConnectorError(ExchangeError):
    """Root of the connectors' errors; the message starts with where the problem is."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        connector: str | None = None,
        column: str | None = None,
        field: str | None = None,
        row: str | None = None,
        sheet: str | None = None,
        cell: str | None = None,
        **facts: Any,
    ) -> None:
        where = _where(
            file=file,
            line=line,
            connector=connector,
            column=column,
            field=field,
            row=row,
            sheet=sheet,
            cell=cell,
        )
        super().__init__(
            where + message,
            file=file,
            line=line,
            connector=connector,
            column=column,
            field=field,
            row=row,
            sheet=sheet,
            cell=cell,
            **facts,
        )
        self.reason = message
        self.column = column
        self.field = field
        self.line = line


class ConnectorConfigError(ConnectorError):
    """The configuration does not fit the catalog, the database or the file; nothing moved."""


class ConnectorConfigErrors(ExchangeError):
    """Several configuration problems found at once; nothing was started."""

    def __init__(self, errors: list[ConnectorConfigError]) -> None:
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"connector configuration rejected, {len(errors)} error(s):\n{lines}")


class ConnectorDataError(ConnectorError):
    """A row or line does not fit the resource schema; its whole batch was not sent."""


class DatabaseUnavailable(ConnectorError):
    """The database could not be reached, or the connection was lost."""

    retriable = True
