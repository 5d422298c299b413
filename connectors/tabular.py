"""Tables in files, read row by row with bounded memory: CSV text and ``.xlsx`` worksheets.

A table has a header (the names of its columns) and rows of cells, each
row with its :class:`Place` (file and line for CSV; file, sheet and row
number for a worksheet), so every error names where to look. CSV cells
are text; worksheet cells are typed (see :mod:`connectors.cells`).
Problems with the file's structure (not text in its encoding, a broken
quote, no header, a cell beyond the header) raise
:class:`~connectors.errors.ConnectorDataError` at once.
"""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors import encodings
from connectors.errors import ConnectorDataError, ConnectorError

NOTHING_SENT = "nothing of the file was published"


@dataclass(frozen=True)
class Place:
    """Where a row is: a CSV or JSON Lines line, or a worksheet's row."""

    file: str
    number: int
    sheet: str | None = None

    def error(
        self,
        message: str,
        *,
        column: str | None = None,
        letter: str | None = None,
        field: str | None = None,
        connector: str | None = None,
        **facts: Any,
    ) -> ConnectorDataError:
        """The error for a problem in this row (``letter``: the worksheet column)."""
        if self.sheet is None:
            return ConnectorDataError(
                f"{message}; {NOTHING_SENT}",
                file=self.file,
                line=self.number,
                connector=connector,
                column=column,
                field=field,
                **facts,
            )
        return ConnectorDataError(
            f"{message}; {NOTHING_SENT}",
            file=self.file,
            sheet=self.sheet,
            row=str(self.number),
            cell=f"{letter}{self.number}" if letter else None,
            connector=connector,
            column=column,
            field=field,
            **facts,
        )

    def facts(self) -> dict[str, Any]:
        """The place as report fields."""
        if self.sheet is None:
            return {"line": self.number}
        return {"sheet": self.sheet, "row": self.number}


class Table(ABC):
    """A table being read: header first, then the rows; a context manager that closes the file."""

    path: Path
    header: list[str]
    header_place: Place

    @abstractmethod
    def rows(self) -> Iterator[tuple[Place, list[Any]]]:
        """Every non-empty row after the header, with its place."""

    def letter(self, index: int) -> str | None:
        """The worksheet column letter of cell ``index`` (None for CSV)."""
        return None

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Table:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CsvTable(Table):
    """A CSV file in any text encoding; the first line names the columns."""

    def __init__(self, path: Path, *, encoding: str, delimiter: str) -> None:
        self.path = path
        self.encoding = encoding
        wrong = encodings.utf8_under_another(path, encoding)
        if wrong is not None:
            raise Place(str(path), 1).error(wrong)
        try:
            self._fh = path.open("rb")
        except OSError as exc:
            raise ConnectorError(f"{path}: cannot read: {exc.strerror}") from exc
        self._lines = encodings.text_lines(self._fh, encoding)
        self._reader = csv.reader(self._lines, delimiter=delimiter, strict=True)
        self.header_place = Place(str(path), 1)
        first = self._next()
        if first is None:
            self.close()
            raise self.header_place.error("the file is empty: the first line must name the columns")
        self.header = first

    def _next(self) -> list[str] | None:
        try:
            return next(self._reader, None)
        except csv.Error as exc:
            raise Place(str(self.path), self._reader.line_num).error(
                f"not valid CSV: {exc}"
            ) from None
        except encodings.Undecodable as exc:
            message = encodings.decode_problem(self.path, self.encoding, exc)
            raise Place(str(self.path), exc.line).error(message) from None

    def rows(self) -> Iterator[tuple[Place, list[Any]]]:
        end = self._reader.line_num
        while True:
            cells = self._next()
            if cells is None:
                return
            line, end = end + 1, self._reader.line_num
            if any(cells):
                yield Place(str(self.path), line), cells

    def close(self) -> None:
        self._fh.close()


def sheet_letter(index: int) -> str:
    """Excel's column letter of a 0-based column index (0 → A, 26 → AA)."""
    out = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


class XlsxTable(Table):
    """One worksheet of an ``.xlsx`` workbook, streamed (openpyxl's read-only mode).

    ``sheet``: its name, or its position counting from 1 (default: the first).
    ``header_row``: the row naming the columns; rows above it (titles) are skipped.
    """

    def __init__(self, path: Path, *, sheet: str | int | None, header_row: int) -> None:
        from connectors import sheets  # openpyxl: loaded only by processes that read workbooks

        self.path = path
        self._book = sheets.open_book(path)
        try:
            self._sheet = sheets.worksheet(self._book, path, sheet)
            self.sheet_name = self._sheet.title
            self.header_place = Place(str(path), header_row, self.sheet_name)
            self._rows = sheets.values(self._sheet, header_row)
            number, first = next(self._rows, (0, None))
            if first is None or number != header_row or all(_blank(c) for c in first):
                raise self.header_place.error(
                    f"row {header_row} is empty: it must name the columns (set header_row)"
                )
            self.header = self._header(first)
        except BaseException:
            self.close()
            raise

    def _header(self, cells: list[Any]) -> list[str]:
        names = [None if _blank(c) else str(c).strip() for c in cells]
        while names and names[-1] is None:
            names.pop()
        for i, name in enumerate(names):
            if name is None:
                raise self.header_place.error(
                    "a column without a name in the header", letter=sheet_letter(i)
                )
        return [n for n in names if n is not None]

    def letter(self, index: int) -> str | None:
        return sheet_letter(index)

    def rows(self) -> Iterator[tuple[Place, list[Any]]]:
        width = len(self.header)
        for number, values in self._rows:
            if all(_blank(c) for c in values):
                continue
            place = Place(str(self.path), number, self.sheet_name)
            for i in range(width, len(values)):
                if not _blank(values[i]):
                    raise place.error(
                        f"a value beyond the last named column ({sheet_letter(width - 1)}): "
                        "name the column in the header row or clear the cell",
                        letter=sheet_letter(i),
                    )
            row = list(values[:width])
            row.extend([None] * (width - len(row)))
            yield place, row

    def close(self) -> None:
        self._book.close()


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip() == "")
