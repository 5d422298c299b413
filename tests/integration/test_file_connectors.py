"""Files as departments have them, through the bus (issue 26).

A GB18030 CSV, a UTF-8 one with a byte order mark and an ``.xlsx`` workbook
are imported by 民政 civil affairs as its own principal (its own SASL user
and ACLs on the Kafka lane), exported back in the same form, and compared
with what was written: rare characters beyond the basic plane (𠈌) and
leading zeros survive. The catalog declares normalisation on some fields;
the declaration survives the catalog's trip through the control topics and
is applied. Every run leaves an import report beside the file and an audit entry.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import yaml
from cli_support import EXCHANGE, cli_env

from connectors import runner
from connectors.config import load
from connectors.errors import ConnectorDataError
from exchange.admin import users
from exchange.audit.entry import Action, AuditEntry
from exchange.audit.log import entries_only, read_log
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.control import catalog_store
from exchange.dev import department_files as files
from exchange.dev import sample

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALLOWANCES = "minimum_living_allowance"
RULES = {"id_number": ["half_width", "trim", "id_check_letter"], "approval_date": ["date"]}


@pytest.fixture(scope="module")
def rules_catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    """The sample catalog, with normalisation declared on two fields of the allowance schema."""
    root = tmp_path_factory.mktemp("catalog") / "schemas"
    shutil.copytree(ROOT / "schemas", root)
    avsc = root / "avro" / f"{ALLOWANCES}.avsc"
    schema = json.loads(avsc.read_text(encoding="utf-8"))
    for f in schema["fields"]:
        if f["name"] in RULES:
            f["normalise"] = RULES[f["name"]]
    avsc.write_text(json.dumps(schema, ensure_ascii=False, indent=2), encoding="utf-8")
    return load_catalog(root)


@pytest.fixture(scope="module")
async def civil_affairs(
    bus: Connection, principals: users.Principals, rules_catalog: Catalog
) -> Connection:
    await catalog_store.load(bus, rules_catalog, actor="tests", unsigned_override="test suite")
    return principals.of("civil_affairs")


def records(catalog: Catalog, n: int, prefix: str, seed: int) -> list[dict[str, Any]]:
    base = sample.generate(catalog.resource(ALLOWANCES).schema_, n, seed=seed)
    out = list(files.awkward(base))
    for r in out:
        r["certificate_no"] = prefix + r["certificate_no"]
        r["updated_at"] = r["updated_at"].replace(microsecond=0)  # what a worksheet keeps
    return out


def write_config(folder: Path, entries: list[dict[str, Any]]) -> Path:
    base = {"department": "civil_affairs", "resource": ALLOWANCES}
    path = folder / "connectors.yaml"
    data = {"connectors": [{**base, **e} for e in entries]}
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def run(config: Path, bus: Connection, name: str) -> Any:
    (c,) = await runner.build(load(config), bus, environ={}, only=[name])
    async with c:
        await c.run(idle_exit_s=0)
    return c


async def audit(bus: Connection, *actions: Action) -> list[AuditEntry]:
    return [e for _, e in entries_only(await read_log(bus)) if e.action in actions]


def csv_rows(path: Path, encoding: str) -> Iterator[list[str]]:
    with path.open(encoding=encoding, newline="") as fh:
        yield from csv.reader(fh)


async def test_csv_and_xlsx_files_round_trip_through_the_bus(
    bus: Connection, civil_affairs: Connection, rules_catalog: Catalog, tmp_path: Path
) -> None:
    fields = rules_catalog.resource(ALLOWANCES).field_names()
    written = {
        "gb": records(rules_catalog, 30, "GB", seed=1),
        "bom": records(rules_catalog, 30, "BOM", seed=2),
        "xl": records(rules_catalog, 30, "XL", seed=3),
    }
    files.write_csv(tmp_path / "gb.csv", fields, written["gb"], encoding="gb18030")
    files.write_csv(tmp_path / "bom.csv", fields, written["bom"], encoding="utf-8-sig")
    files.write_xlsx(tmp_path / "xl.xlsx", fields, written["xl"], sheet="低保名册")
    (tmp_path / "out").mkdir()
    config = write_config(
        tmp_path,
        [
            {"name": "gb", "type": "file_import", "path": "gb.csv", "encoding": "gb18030"},
            {"name": "bom", "type": "file_import", "path": "bom.csv"},  # utf-8 skips the BOM
            {"name": "xl", "type": "file_import", "path": "xl.xlsx", "sheet": "低保名册"},
            {"name": "out-gb", "type": "file_export", "path": "out/gb.csv", "encoding": "gb18030"},
            {
                "name": "out-bom",
                "type": "file_export",
                "path": "out/b.csv",
                "encoding": "utf-8-sig",
            },
            {"name": "out-xl", "type": "file_export", "path": "out/xl.xlsx", "sheet": "低保"},
        ],
    )
    for name in ("gb", "bom", "xl"):
        c = await run(config, civil_affairs, name)
        assert c.progress.published == 30
    everything = [r for rs in written.values() for r in rs]
    expected = sorted(files.cells(r, fields) for r in everything)

    # the provider's export reads its own source topic, which the generated ACLs do not let
    # a department read (it may only write gov.src.<dept>.*): exported with the super user
    await run(config, bus, "out-gb")
    raw = (tmp_path / "out" / "gb.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")  # really GB18030, rare characters included
    gb = list(csv_rows(tmp_path / "out" / "gb.csv", "gb18030"))
    assert gb[0] == fields
    assert sorted(gb[1:]) == expected

    await run(config, bus, "out-bom")
    assert (tmp_path / "out" / "b.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    assert sorted(list(csv_rows(tmp_path / "out" / "b.csv", "utf-8-sig"))[1:]) == expected

    await run(config, bus, "out-xl")
    book = openpyxl.load_workbook(tmp_path / "out" / "xl.xlsx")
    sheet = book["低保"]
    header, *rows = list(sheet.iter_rows(values_only=True))
    assert list(header) == fields
    by_key = {r[0]: dict(zip(fields, r, strict=True)) for r in rows}
    for r in everything:
        got = by_key[r["certificate_no"]]
        assert got["certificate_no"].startswith(("GB00", "BOM00", "XL00"))  # text, zeros kept
        assert got["name"] == r["name"]
        assert got["approval_date"] == dt.datetime.combine(r["approval_date"], dt.time(0))
        assert got["household_size"] == r["household_size"]
    assert sheet["A2"].number_format == "@"  # Excel keeps it text when the file is saved again
    assert {"李𠈌", "王𡒄"} <= {r["name"] for r in by_key.values()}

    # an export of the workbook imports again as the same records: a true round trip
    again = write_config(
        tmp_path, [{"name": "again", "type": "file_import", "path": "out/xl.xlsx", "sheet": 1}]
    )
    c = await run(again, civil_affairs, "again")
    assert c.progress.published == 90
    report = json.loads((tmp_path / "out" / "xl.xlsx.import-report.json").read_text("utf-8"))
    assert (report["outcome"], report["rows_read"], report["published"]) == ("published", 90, 90)


async def test_normalised_values_are_counted_and_a_bad_file_is_refused_whole(
    bus: Connection, civil_affairs: Connection, rules_catalog: Catalog, tmp_path: Path
) -> None:
    fields = rules_catalog.resource(ALLOWANCES).field_names()
    rows = records(rules_catalog, 8, "NORM", seed=4)
    raw: list[dict[str, Any]] = [dict(r) for r in rows]
    raw[0]["id_number"] = "　" + rows[0]["id_number"][:17] + "x"  # as a clerk typed it
    raw[1]["approval_date"] = "2024年3月5日"
    raw[2]["approval_date"] = "2024/3/5"
    raw[3]["approval_date"] = "45356"  # an Excel serial number exported as text
    source = topics.source("civil_affairs", ALLOWANCES)
    before = len(await kafka.read_to_end(bus, source, timeout_s=30))

    bad = [dict(r) for r in raw]
    bad[5]["household_size"] = "三"
    bad[6]["approval_date"] = "去年"
    with (tmp_path / "bad.csv").open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for r in bad:
            w.writerow(
                [str(r[f]) if isinstance(r[f], str) else files.cells(r, [f])[0] for f in fields]
            )
    files.write_csv(tmp_path / "good.csv", fields, [])
    with (tmp_path / "good.csv").open("a", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        for r in raw:
            w.writerow(
                [str(r[f]) if isinstance(r[f], str) else files.cells(r, [f])[0] for f in fields]
            )
    config = write_config(
        tmp_path,
        [
            {"name": "bad", "type": "file_import", "path": "bad.csv"},
            {"name": "good", "type": "file_import", "path": "good.csv"},
        ],
    )
    with pytest.raises(ConnectorDataError) as info:
        await run(config, civil_affairs, "bad")
    assert "bad.csv:7" in str(info.value)  # the first bad row; the header is line 1
    assert "(and 1 more row(s) refused" in str(info.value)
    assert len(await kafka.read_to_end(bus, source, timeout_s=30)) == before  # nothing sent
    report = json.loads((tmp_path / "bad.csv.import-report.json").read_text("utf-8"))
    assert report["outcome"] == "refused"
    assert report["published"] == 0
    assert [(r["line"], r["field"]) for r in report["refused"]] == [
        (7, "household_size"),
        (8, "approval_date"),
    ]

    c = await run(config, civil_affairs, "good")
    assert c.progress.published == 8
    report = json.loads((tmp_path / "good.csv.import-report.json").read_text("utf-8"))
    assert report["normalised"] == {"date": 3, "half_width": 1, "id_check_letter": 1, "trim": 1}
    assert report["rows_read"] == report["published"] == 8

    entries = await audit(bus, Action.FILE_IMPORTED, Action.FILE_IMPORT_REFUSED)
    mine = [e for e in entries if e.details.get("file", "").startswith(str(tmp_path))]
    assert [(e.action, e.decision, e.actor) for e in mine] == [
        (Action.FILE_IMPORT_REFUSED, "denied", "civil_affairs"),
        (Action.FILE_IMPORTED, "published", "civil_affairs"),
    ]
    assert mine[0].details["refused_rows"] == "2"
    assert mine[0].details["first_refused"] == "column=household_size,field=household_size,line=7"
    assert mine[1].details["normalised"] == "date=3,half_width=1,id_check_letter=1,trim=1"
    assert mine[1].resource == ALLOWANCES


@pytest.mark.embedded_only("one command-line run is enough; the lanes differ in the broker only")
async def test_the_gb18030_hint_on_the_command_line(
    bus: Connection, civil_affairs: Connection, rules_catalog: Catalog, tmp_path: Path
) -> None:
    """The issue's own case: a GB18030 export refused as not UTF-8, fixed by one line."""
    fields = rules_catalog.resource(ALLOWANCES).field_names()
    files.write_csv(
        tmp_path / "allowances.csv", fields, records(rules_catalog, 5, "CLI", 5), encoding="gb18030"
    )
    entry = {"name": "imp", "type": "file_import", "path": "allowances.csv"}
    config = write_config(tmp_path, [entry])
    args = [EXCHANGE, "connect", "run", str(config)]
    refused = await asyncio.to_thread(
        subprocess.run, args, env=cli_env(bus), capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 2, refused.stderr
    assert "not utf-8 text" in refused.stderr
    assert "the file looks like gb18030: set encoding: gb18030 for this connector" in refused.stderr

    config = write_config(tmp_path, [{**entry, "encoding": "gb18030"}])
    done = await asyncio.to_thread(
        subprocess.run, args, env=cli_env(bus), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "published 5" in done.stdout
