"""File imports read files as departments have them (issue 26): encodings, .xlsx, whole-file checks.

No broker: :meth:`FileImport.setup` reads, checks and spools the whole file
and sends nothing; the spooled records are decoded here and compared with
what was written.
"""

from __future__ import annotations

import datetime as dt
import tracemalloc
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from connectors.config import FileImportConfig, Spot
from connectors.errors import ConnectorDataError
from connectors.files import FileImport
from connectors.spool import Spool
from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.dev import department_files as files
from exchange.dev import sample

ALLOWANCES = "minimum_living_allowance"


def records(catalog: Catalog, n: int, seed: int = 26) -> list[dict[str, Any]]:
    return list(files.awkward(sample.generate(catalog.resource(ALLOWANCES).schema_, n, seed=seed)))


def importer(catalog: Catalog, path: Path, **extra: Any) -> FileImport:
    cfg = FileImportConfig(
        name="imp",
        type="file_import",
        department="civil_affairs",
        resource=ALLOWANCES,
        path=path,
        **extra,
    )
    return FileImport(cfg, bus=Connection("127.0.0.1:9"), catalog=catalog, spot=Spot())


async def spooled(imp: FileImport, catalog: Catalog) -> list[dict[str, Any]]:
    """Check the file, then decode what would be sent."""
    await imp.setup()
    assert imp._spool is not None
    parsed = avro.parse(catalog.resource(ALLOWANCES).schema_)
    out = [wire.decode(parsed, wire.unframe(p.value)[1]) for p in imp._spool.batch(1_000_000)]
    await imp.stop()
    return out


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
async def test_csv_in_each_encoding_reads_back_exactly(
    tmp_path: Path, sample_catalog: Catalog, encoding: str
) -> None:
    written = records(sample_catalog, 40)
    fields = sample_catalog.resource(ALLOWANCES).field_names()
    path = tmp_path / "allowances.csv"
    files.write_csv(path, fields, written, encoding=encoding)
    setting = "utf-8" if encoding == "utf-8-sig" else encoding  # utf-8 skips a BOM
    assert (
        await spooled(importer(sample_catalog, path, encoding=setting), sample_catalog) == written
    )
    got = await spooled(importer(sample_catalog, path, encoding=setting), sample_catalog)
    assert {r["name"] for r in got} >= {"李𠈌", "王𡒄"}
    assert all(r["certificate_no"].startswith("00") for r in got)


async def test_a_gb18030_file_under_the_utf8_setting_names_the_fix(
    tmp_path: Path, sample_catalog: Catalog
) -> None:
    fields = sample_catalog.resource(ALLOWANCES).field_names()
    path = tmp_path / "allowances.csv"
    files.write_csv(path, fields, records(sample_catalog, 5), encoding="gb18030")
    with pytest.raises(ConnectorDataError) as info:
        await importer(sample_catalog, path).setup()
    message = str(info.value)
    assert f"{path}:2" in message  # the header is ASCII: the first name is on line 2
    assert "not utf-8 text" in message
    assert "the file looks like gb18030: set encoding: gb18030" in message
    # and a UTF-8 file read as GB18030: no decoding error, but mojibake; refused with the fix
    files.write_csv(path, fields, records(sample_catalog, 5), encoding="utf-8")
    for wrong in ("gb18030", "gbk"):
        with pytest.raises(ConnectorDataError, match=r"UTF-8 text.*set encoding: utf-8"):
            await importer(sample_catalog, path, encoding=wrong).setup()


async def test_an_xlsx_sheet_reads_back_exactly_with_typed_cells(
    tmp_path: Path, sample_catalog: Catalog
) -> None:
    written = [
        {**r, "updated_at": r["updated_at"].replace(microsecond=0)}  # Excel keeps seconds
        for r in records(sample_catalog, 40)
    ]
    fields = sample_catalog.resource(ALLOWANCES).field_names()
    path = tmp_path / "低保名册.xlsx"
    files.write_xlsx(path, fields, written, sheet="名册", title="2024年低保名册", before=("说明",))
    got = await spooled(importer(sample_catalog, path, sheet="名册", header_row=2), sample_catalog)
    assert got == written
    by_index = await spooled(importer(sample_catalog, path, sheet=2, header_row=2), sample_catalog)
    assert by_index == written
    with pytest.raises(
        ConnectorDataError, match="no sheet named '低保'; the workbook has: 说明, 名册"
    ):
        await importer(sample_catalog, path, sheet="低保").setup()


async def test_every_bad_row_of_a_sheet_is_named_and_nothing_is_kept(
    tmp_path: Path, sample_catalog: Catalog
) -> None:
    written = records(sample_catalog, 10)
    written[3] = {**written[3], "household_size": "三口"}
    written[7] = {**written[7], "approval_date": "2024年3月5日"}  # no 'date' normalisation
    fields = sample_catalog.resource(ALLOWANCES).field_names()
    path = tmp_path / "book.xlsx"
    files.write_xlsx(path, fields, written, sheet="名册")
    imp = importer(sample_catalog, path)
    with pytest.raises(ConnectorDataError) as info:
        await imp.setup()
    message = str(info.value)
    assert "sheet '名册'" in message
    assert "row 5, cell D5, column 'household_size'" in message  # header row 1: record 3 is row 5
    assert "'三口' is not an integer" in message
    assert "(and 1 more row(s) refused: see book.xlsx.import-report.json)" in message
    assert imp.report is not None
    assert [r.as_dict() for r in imp.report.refused] == [
        {
            "sheet": "名册",
            "row": 5,
            "column": "household_size",
            "field": "household_size",
            "reason": "'三口' is not an integer",
        },
        {
            "sheet": "名册",
            "row": 9,
            "column": "approval_date",
            "field": "approval_date",
            "reason": "expected a date 'YYYY-MM-DD', got '2024年3月5日'",
        },
    ]
    assert imp.report.rows_read == 10
    assert imp._spool is None  # nothing kept to send


async def test_an_18_digit_number_in_a_text_column_is_refused(
    tmp_path: Path, sample_catalog: Catalog
) -> None:
    written = records(sample_catalog, 2)
    fields = sample_catalog.resource(ALLOWANCES).field_names()
    path = tmp_path / "book.xlsx"
    files.write_xlsx(path, fields, written)
    book = openpyxl.load_workbook(path)
    book.active["B3"] = 330102199001011234  # typed as a number: Excel keeps 15 digits
    book.save(path)
    with pytest.raises(ConnectorDataError) as info:
        await importer(sample_catalog, path).setup()
    assert "row 3, cell B3, column 'id_number'" in str(info.value)
    assert "format the column as text" in str(info.value)


@pytest.mark.timeout(300)  # traced allocations: slow on a busy machine
def test_memory_stays_bounded_whatever_the_number_of_rows(
    tmp_path: Path, sample_catalog: Catalog, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Checking a 4,000-row sheet holds no more in memory after row 4,000 than after row 1,000.

    The traced memory is sampled as rows reach the spool. Tracing makes the
    check several times slower, so the sheet is small; the benchmark
    (benchmarks/xlsx_import.py) measures a million rows without tracing.
    """
    import asyncio

    base = records(sample_catalog, 200)
    fields = sample_catalog.resource(ALLOWANCES).field_names()
    rows = 4_000
    path = tmp_path / "big.xlsx"
    many = ({**base[i % 200], "certificate_no": f"{i:010d}"} for i in range(rows))
    files.write_xlsx_fast(path, fields, many)
    samples: dict[int, int] = {}
    append = Spool.append

    def sampled(self: Spool, p: Any) -> None:
        append(self, p)
        if self.count in (1_000, rows):
            samples[self.count] = tracemalloc.get_traced_memory()[0]

    monkeypatch.setattr(Spool, "append", sampled)
    imp = importer(sample_catalog, path)
    tracemalloc.start()
    try:
        asyncio.run(imp.setup())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert imp._spool is not None
    assert imp._spool.count == rows
    asyncio.run(imp.stop())
    # 3,000 more records kept in memory would be about 2.7 MB (Prepared objects and bodies)
    assert samples[rows] - samples[1_000] < 1_000_000, samples
    assert peak < 8_000_000, peak


def test_dates_as_departments_write_them_with_the_rule_declared(
    tmp_path: Path, sample_catalog: Catalog
) -> None:
    import asyncio
    import copy

    catalog = copy.deepcopy(sample_catalog)
    res = catalog.resource(ALLOWANCES)
    for f in res.schema_["fields"]:
        if f["name"] == "approval_date":
            f["normalise"] = ["half_width", "date"]
        if f["name"] in ("id_number", "name"):
            f["normalise"] = ["half_width", "trim", "id_check_letter"][
                : 3 if f["name"] == "id_number" else 2
            ]
    written = records(catalog, 6)
    forms = [
        "2024年3月5日",
        "2024/3/5",
        "2024.3.5",
        45356,
        "２０２４年３月５日",
        dt.date(2024, 3, 5),
    ]
    rows = [{**r, "approval_date": form} for r, form in zip(written, forms, strict=True)]
    rows[0]["id_number"] = "　" + rows[0]["id_number"][:17] + "x "
    rows[1]["name"] = "　王　芳　"
    fields = res.field_names()
    path = tmp_path / "book.xlsx"
    files.write_xlsx(path, fields, rows)
    imp = importer(catalog, path)
    got = asyncio.run(spooled(imp, catalog))
    assert {r["approval_date"] for r in got} == {dt.date(2024, 3, 5)}
    assert got[0]["id_number"] == written[0]["id_number"][:17] + "X"
    assert got[1]["name"] == "王 芳"
    assert imp.report is not None
    assert dict(imp.report.normalised) == {
        "date": 5,
        "half_width": 3,
        "trim": 2,
        "id_check_letter": 1,
    }
