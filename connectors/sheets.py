"""Excel workbooks (``.xlsx``) through openpyxl: streamed reading, streamed writing.

Reading uses openpyxl's read-only mode, which parses a worksheet row by row
from the zip archive: memory stays bounded whatever the number of rows.
Writing uses its write-only mode for the same reason. Text is written as
text cells formatted ``@`` (Text), so Excel keeps the leading zeros of a
region code or a certificate number when the file is opened and saved again.
"""

from __future__ import annotations

import datetime as dt
import decimal
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.workbook.workbook import Workbook
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet._reader import WorkSheetParser
from openpyxl.xml.constants import SHEET_MAIN_NS
from openpyxl.xml.functions import iterparse

from connectors.errors import ConnectorDataError, ConnectorError
from exchange.avro.jsoncodec import CHINA_TZ

#: Excel's own limits: a sheet holds at most this many rows, a cell this many characters
MAX_ROWS = 1_048_576
MAX_CELL_CHARS = 32_767
_EXACT_DIGITS = 15  # what an Excel number keeps; longer numbers are written as text


def open_book(path: Path) -> Workbook:
    """The workbook at ``path``, opened for streaming; errors name the file."""
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except OSError as exc:
        raise ConnectorError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ConnectorDataError(
            f"not an .xlsx workbook ({exc}); an old .xls file must be saved as .xlsx in Excel",
            file=str(path),
        ) from None


def worksheet(book: Workbook, path: Path, sheet: str | int | None) -> ReadOnlyWorksheet:
    """The sheet named ``sheet``, or at position ``sheet`` counting from 1; default the first."""
    names = book.sheetnames
    if sheet is None:
        chosen = names[0]
    elif isinstance(sheet, int):
        if not 1 <= sheet <= len(names):
            raise ConnectorDataError(
                f"the workbook has {len(names)} sheet(s) ({', '.join(names)}): no sheet {sheet}",
                file=str(path),
            )
        chosen = names[sheet - 1]
    elif sheet in names:
        chosen = sheet
    else:
        raise ConnectorDataError(
            f"no sheet named {sheet!r}; the workbook has: {', '.join(names)}", file=str(path)
        )
    ws = book[chosen]
    if not isinstance(ws, ReadOnlyWorksheet):  # a chart sheet
        raise ConnectorDataError(f"sheet {chosen!r} is not a worksheet", file=str(path))
    return ws


_ROW = f"{{{SHEET_MAIN_NS}}}row"
_DATA = f"{{{SHEET_MAIN_NS}}}sheetData"


class _RowParser(WorkSheetParser):
    """openpyxl's worksheet parser, reading rows only and forgetting each one once read.

    openpyxl's own read-only loop clears each row element but leaves it in the
    tree ElementTree builds (about 75 bytes a row: 75 MB for a million rows);
    here the rows read are removed from ``sheetData``, so memory stays flat.
    """

    def rows(self) -> Iterator[tuple[int, list[dict[str, Any]]]]:
        data = None
        for event, element in iterparse(self.source, events=("start", "end")):
            if event == "start":
                if element.tag == _DATA:
                    data = element
                continue
            if element.tag == _ROW:
                number, cells = self.parse_row(element)
                self.row_dimensions.clear()  # heights and styles of rows: not needed here
                (data if data is not None else element).clear()
                yield number, cells
            elif element.tag == _DATA:
                return  # what follows the data (merged cells, print setup ...) holds no values


def values(ws: ReadOnlyWorksheet, min_row: int) -> Iterator[tuple[int, list[Any]]]:
    """(row number, cell values from column A) of every row from ``min_row``, streamed."""
    # openpyxl has no public row stream: these are the attributes its own read-only
    # loop (ReadOnlyWorksheet._cells_by_row) passes to the parser; pinned to openpyxl 3.1
    sheet: Any = ws
    book: Any = ws.parent
    with sheet._get_source() as src:
        parser = _RowParser(
            src,
            sheet._shared_strings,
            data_only=True,
            epoch=book.epoch,
            date_formats=book._date_formats,
            timedelta_formats=book._timedelta_formats,
        )
        for number, cells in parser.rows():
            if number < min_row or not cells:
                continue
            row: list[Any] = [None] * max(c["column"] for c in cells)
            for c in cells:
                row[c["column"] - 1] = c["value"]
            yield number, row


class SheetWriter:
    """Writes one worksheet row by row to a new workbook (openpyxl's write-only mode)."""

    def __init__(self, title: str, header: list[str]) -> None:
        self._book = openpyxl.Workbook(write_only=True)
        self._sheet = self._book.create_sheet(title=title[:31] or "Sheet1")
        self._rows = 0
        self.append(header)

    def append(self, values: Iterable[Any]) -> None:
        if self._rows >= MAX_ROWS:
            raise ValueError(f"more than {MAX_ROWS} rows: Excel cannot open such a sheet")
        self._sheet.append([self._cell(v) for v in values])
        self._rows += 1

    def _cell(self, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            if len(value) > MAX_CELL_CHARS:
                raise ValueError(f"{len(value)} characters: an Excel cell holds {MAX_CELL_CHARS}")
            cell = WriteOnlyCell(self._sheet, value=value)
            cell.number_format = "@"
            return cell
        if isinstance(value, dt.datetime):
            # Excel has no time zones: China time, as the department reads it
            local = value.astimezone(CHINA_TZ) if value.tzinfo else value
            cell = WriteOnlyCell(self._sheet, value=local.replace(tzinfo=None))
            cell.number_format = "yyyy-mm-dd hh:mm:ss"
            return cell
        if isinstance(value, dt.date):
            cell = WriteOnlyCell(self._sheet, value=dt.datetime.combine(value, dt.time(0)))
            cell.number_format = "yyyy-mm-dd"
            return cell
        if isinstance(value, bool | float):
            return value
        if isinstance(value, decimal.Decimal | int):
            if (
                len(
                    value.as_tuple().digits
                    if isinstance(value, decimal.Decimal)
                    else str(abs(value))
                )
                > _EXACT_DIGITS
            ):
                return self._cell(str(value))
            return value
        raise TypeError(f"{type(value).__name__} has no worksheet form")

    def save(self, target: IO[bytes]) -> None:
        self._book.save(target)  # openpyxl takes a file object too
