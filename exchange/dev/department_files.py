"""Files as departments have them, for tests and benchmarks: CSV in any encoding, .xlsx sheets.

Records come from :mod:`exchange.dev.sample`; :func:`awkward` makes them
look like a real export: names with characters beyond the basic plane
(𠈌, 𡒄: the GB18030-2005 extension B characters of people's names), and
certificate numbers and phone numbers with leading zeros. The worksheet
writer types cells as Excel does when a clerk types them: text as text,
counts and amounts as numbers, dates and times as dates.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from exchange.avro.jsoncodec import CHINA_TZ, dumps

RARE_NAMES = ("李𠈌", "王𡒄", "陈𠮷", "张䶮")


def awkward(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Sample allowance records with rare characters in names and leading-zero codes."""
    for i, r in enumerate(records):
        out = dict(r)
        out["certificate_no"] = f"00{i:08d}"
        if "name" in out and i % 3 == 0:
            out["name"] = RARE_NAMES[i % len(RARE_NAMES)]
        if out.get("phone"):
            out["phone"] = "0571" + str(out["phone"])[-8:]
        yield out


def cells(record: dict[str, Any], fields: list[str]) -> list[str]:
    """The record as CSV cells: the JSON form of each value, empty for NULL."""
    plain = json.loads(dumps(record))
    return ["" if plain[f] is None else str(plain[f]) for f in fields]


def write_csv(
    path: Path, fields: list[str], records: Iterable[dict[str, Any]], *, encoding: str = "utf-8"
) -> None:
    with path.open("w", encoding=encoding, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for r in records:
            w.writerow(cells(r, fields))


def sheet_value(value: Any) -> Any:
    """A record's value as a clerk's Excel cell holds it."""
    if isinstance(value, dt.datetime):
        return value.astimezone(CHINA_TZ).replace(tzinfo=None)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(0))
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def write_xlsx(
    path: Path,
    fields: list[str],
    records: Iterable[dict[str, Any]],
    *,
    sheet: str = "Sheet1",
    title: str | None = None,
    before: tuple[str, ...] = (),
) -> None:
    """One sheet (after empty sheets named ``before``); ``title``: a title row above the header."""
    import openpyxl  # only for workbooks
    from openpyxl.cell import WriteOnlyCell

    book = openpyxl.Workbook(write_only=True)
    for name in before:
        book.create_sheet(name)
    ws = book.create_sheet(sheet)
    if title is not None:
        ws.append([title])
    ws.append(fields)
    for r in records:
        row: list[Any] = []
        for f in fields:
            v = sheet_value(r.get(f))
            if isinstance(v, str):
                cell = WriteOnlyCell(ws, value=v)
                cell.number_format = "@"
                row.append(cell)
            elif isinstance(v, dt.datetime):
                cell = WriteOnlyCell(ws, value=v)
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
                row.append(cell)
            else:
                row.append(v)
        ws.append(row)
    book.save(path)


_CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/styles.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>
</Types>"""
_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="xl/workbook.xml"/>
</Relationships>"""
_BOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="{name}" sheetId="1" r:id="rId1"/></sheets></workbook>"""
_BOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet1.xml"/>
<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" Target="styles.xml"/>
</Relationships>"""
# style 0: general; 1: text (@); 2: date; 3: date and time
_STYLES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>
<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>
<fills count="1"><fill><patternFill patternType="none"/></fill></fills>
<borders count="1"><border/></borders>
<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>
<cellXfs count="4"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>
<xf numFmtId="49" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="14" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/>
<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>
<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>
</styleSheet>"""
_EXCEL_EPOCH = dt.datetime(1899, 12, 30)


def _column(index: int) -> str:
    out = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        out = chr(65 + rem) + out
    return out


def _xml_cell(ref: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return f'<c r="{ref}" t="inlineStr" s="1"><is><t>{escape(value)}</t></is></c>'
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, dt.datetime):
        days = (value - _EXCEL_EPOCH) / dt.timedelta(days=1)
        style = 2 if value.time() == dt.time(0) else 3
        return f'<c r="{ref}" s="{style}"><v>{days!r}</v></c>'
    return f'<c r="{ref}"><v>{value!r}</v></c>'


def write_xlsx_fast(
    path: Path, fields: list[str], records: Iterable[dict[str, Any]], *, sheet: str = "Sheet1"
) -> int:
    """The workbook :func:`write_xlsx` writes, streamed as XML: fast enough for a million rows.

    The cells are the same (text cells formatted as text, numbers, dates and
    times as dates); no dimension is written, as many tools do not. Returns the rows written.
    """
    letters = [_column(i) for i in range(len(fields))]
    count = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("[Content_Types].xml", _CONTENT_TYPES)
        z.writestr("_rels/.rels", _RELS)
        z.writestr("xl/workbook.xml", _BOOK.format(name=escape(sheet, {'"': "&quot;"})))
        z.writestr("xl/_rels/workbook.xml.rels", _BOOK_RELS)
        z.writestr("xl/styles.xml", _STYLES)
        with z.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as out:
            out.write(
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet '
                b'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
            )
            rows: Iterable[list[Any]] = ([sheet_value(r.get(f)) for f in fields] for r in records)
            for number, values in enumerate(_with_header(fields, rows), start=1):
                cells = "".join(_xml_cell(f"{letters[i]}{number}", v) for i, v in enumerate(values))
                out.write(f'<row r="{number}">{cells}</row>'.encode())
                count = number - 1
            out.write(b"</sheetData></worksheet>")
    return count


def _with_header(fields: list[str], rows: Iterable[list[Any]]) -> Iterator[list[Any]]:
    yield list(fields)
    yield from rows
