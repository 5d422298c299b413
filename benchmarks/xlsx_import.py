"""Importing an .xlsx sheet with the file connector, beside a plain openpyxl read of the same sheet.

    python benchmarks/xlsx_import.py [--rows 1000000] [--batch 2000] [--no-publish]

One sheet of ``--rows`` minimum living allowance rows (13 columns, typed as
a clerk's Excel types them: text, numbers, dates) is written once, then
read three ways, each in a fresh process so that its peak memory (max RSS)
is its own:

* plain openpyxl: ``load_workbook(read_only=True)`` and ``iter_rows(values_only=True)``,
  every row touched: what reading the sheet costs at all;
* check: the file_import connector's whole-file check (``exchange connect check``):
  every row read, converted, normalised, validated, Avro-encoded and spooled to disk;
* import: check, then everything published with acks=all (``exchange connect run``),
  on an embedded broker started here unless EXCHANGE_BOOTSTRAP_SERVERS is set.

Printed: rows/s and the ratio to plain openpyxl's rows/s, and each process's peak
memory. Not part of the test suite (tests/unit/test_file_import.py checks memory on a
small sheet).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# run as a script, this folder comes first on sys.path, and its connectors.py (the database
# connector benchmark) would hide the connectors package
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
RESOURCE = "minimum_living_allowance"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def plain(path: str) -> tuple[int, float, float]:
    import openpyxl

    started = time.perf_counter()
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    n = 0
    for row in book.worksheets[0].iter_rows(values_only=True):
        n += row[0] is not None
    book.close()
    return n - 1, time.perf_counter() - started, _peak_mb()


def connector(path: str, publish: bool, batch: int, bus: Any) -> tuple[int, float, float]:
    from connectors.config import FileImportConfig
    from connectors.files import FileImport
    from exchange.bus.connection import Connection
    from exchange.catalog.loader import load_catalog

    catalog = load_catalog(ROOT / "schemas")
    cfg = FileImportConfig(
        name="bench",
        type="file_import",
        department="civil_affairs",
        resource=RESOURCE,
        path=Path(path),
        batch_size=batch,
        report=False,
    )
    imp = FileImport(cfg, bus=bus or Connection("127.0.0.1:9"), catalog=catalog)

    async def go() -> int:
        if not publish:
            await imp.setup()
            assert imp._spool is not None
            n = imp._spool.count
            await imp.stop()
            return n
        async with imp:
            await imp.run(idle_exit_s=0)
        return imp.progress.published

    started = time.perf_counter()
    n = asyncio.run(go())
    return n, time.perf_counter() - started, _peak_mb()


def write_sheet(path: Path, rows: int) -> None:
    from exchange.catalog.loader import load_catalog
    from exchange.dev import department_files as files
    from exchange.dev import sample

    catalog = load_catalog(ROOT / "schemas")
    schema = catalog.resource(RESOURCE).schema_
    base = list(files.awkward(sample.generate(schema, 500, seed=26)))
    for r in base:
        r["updated_at"] = r["updated_at"].replace(microsecond=0)
    records = ({**base[i % 500], "certificate_no": f"{i:012d}"} for i in range(rows))
    files.write_xlsx_fast(path, catalog.resource(RESOURCE).field_names(), records, sheet="名册")


def in_child(fn: Any, *args: Any) -> Any:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--no-publish", action="store_true", help="check only, no broker")
    args = parser.parse_args()
    given = os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "allowances.xlsx"
        started = time.perf_counter()
        write_sheet(path, args.rows)
        print(
            f"{args.rows} rows written in {time.perf_counter() - started:.1f} s, "
            f"{path.stat().st_size / 1e6:.1f} MB"
        )
        results = [("plain openpyxl read-only", *in_child(plain, str(path)))]
        results.append(
            ("file_import check", *in_child(connector, str(path), False, args.batch, None))
        )
        if not args.no_publish:
            from exchange.catalog.loader import load_catalog
            from exchange.control import catalog_store
            from exchange.dev.broker import given_or_embedded

            bus, broker = given_or_embedded(given)
            try:
                catalog = load_catalog(ROOT / "schemas")
                asyncio.run(
                    catalog_store.load(
                        bus, catalog, actor="bench", unsigned_override="benchmark catalog"
                    )
                )
                results.append(
                    (
                        "file_import run (check + publish)",
                        *in_child(connector, str(path), True, args.batch, bus),
                    )
                )
            finally:
                if broker is not None:
                    broker.stop()
    base_rate = results[0][1] / results[0][2]
    print(f"\n{'what':<36} {'rows':>9} {'seconds':>8} {'rows/s':>9} {'vs plain':>9} {'peak MB':>8}")
    for what, n, seconds, peak in results:
        rate = n / seconds
        print(
            f"{what:<36} {n:>9} {seconds:>8.1f} {rate:>9,.0f} {rate / base_rate:>9.2f} {peak:>8.0f}"
        )
    print("\nvs plain: rows/s divided by plain openpyxl's rows/s on the same sheet, this run")
    print(
        json.dumps(
            {w: {"rows": n, "seconds": round(s, 2), "peak_mb": round(p)} for w, n, s, p in results}
        )
    )


if __name__ == "__main__":
    main()
