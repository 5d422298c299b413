"""Connector configuration, type mapping and file validation: errors an operator can act on.

No broker and no database: everything here is checked before a connector
touches either.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors import mapping
from connectors.checkpoint import FileCheckpoints, Position
from connectors.config import (
    DatabaseConfig,
    DbSourceConfig,
    FileImportConfig,
    Spot,
    load,
    resolve_database,
    tz_of,
)
from connectors.db_source import DbSource
from connectors.errors import ConnectorConfigError, ConnectorConfigErrors, ConnectorDataError
from connectors.files import FileImport
from connectors.mapping import Column, field_type
from connectors.mysql import MySQLDatabase
from connectors.postgres import PostgresDatabase
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "connectors"

SOURCE = {
    "name": "health-births",
    "type": "db_source",
    "department": "health",
    "resource": "birth_medical_certificate",
    "database": {"url": "postgresql://postgres@127.0.0.1:5432/test"},
    "table": "health.birth_certificates",
    "incremental": {"column": "updated_at", "unique_key": ["id"]},
}


def write(tmp_path: Path, data: Any, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def errors_of(path: Path) -> list[ConnectorConfigError]:
    with pytest.raises(ConnectorConfigErrors) as info:
        load(path)
    return info.value.errors


@pytest.mark.parametrize("example", sorted(p.name for p in DEPLOY.glob("*.yaml")))
def test_the_deploy_examples_are_valid(example: str) -> None:
    loaded = load(DEPLOY / example)
    assert loaded.connectors
    for c in loaded.connectors:
        assert loaded.spots[c.name].line("name") is not None


def test_a_misspelt_key_is_named_with_its_file_line_and_connector(tmp_path: Path) -> None:
    text = yaml.safe_dump({"connectors": [SOURCE]}, sort_keys=False)
    text = text.replace("  table: health", "  tabel: health")
    path = tmp_path / "c.yaml"
    path.write_text(text)
    errors = errors_of(path)
    line = next(i for i, t in enumerate(text.splitlines(), start=1) if "tabel:" in t)
    messages = [str(e) for e in errors]
    assert any(
        f"c.yaml:{line}" in m and "'health-births'" in m and "unknown setting 'tabel'" in m
        for m in messages
    ), messages


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"query": "SELECT * FROM t"}, "exactly one of 'table' or 'query'"),
        ({"table": "births; DROP TABLE x"}, "table: String should match pattern"),
        ({"database": {"url": "postgresql://u:secret@h:5432/db"}}, "use password_env"),
        ({"database": {"url": "oracle://u@h/db"}}, "postgresql://, mysql:// or mariadb://"),
        ({"database": {"url": "postgresql://u@h:5432/db", "timezone": "CST"}}, "UTC offset"),
        ({"mapping": {"child_name": "baby name"}}, "mapping.child_name: String should match"),
        ({"batch_size": 0}, "batch_size: Input should be greater than or equal to 1"),
        ({"type": "db_source_x"}, "does not match any of the expected tags"),
    ],
    ids=[
        "table-and-query",
        "table-injection",
        "password-in-url",
        "unknown-database",
        "bad-timezone",
        "column-with-space",
        "batch-size",
        "unknown-type",
    ],
)
def test_bad_settings_are_refused_with_the_reason(
    tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    errors = errors_of(write(tmp_path, {"connectors": [{**SOURCE, **change}]}))
    assert any(expected in str(e) for e in errors), [str(e) for e in errors]
    assert all("c.yaml:" in str(e) for e in errors)


def test_a_query_must_be_one_select(tmp_path: Path) -> None:
    src = {k: v for k, v in SOURCE.items() if k != "table"}
    bad = errors_of(write(tmp_path, [{**src, "query": "DELETE FROM births"}]))
    assert "query must be a SELECT" in str(bad[0])
    two = errors_of(write(tmp_path, [{**src, "query": "SELECT 1; DROP TABLE births"}]))
    assert "one statement" in str(two[0])
    ok = load(write(tmp_path, [{**src, "query": "SELECT * FROM births WHERE region LIKE '33%';"}]))
    assert isinstance(ok.connectors[0], DbSourceConfig)


def test_names_must_be_unique(tmp_path: Path) -> None:
    errors = errors_of(write(tmp_path, {"connectors": [SOURCE, json.loads(json.dumps(SOURCE))]}))
    assert "'health-births' is used twice" in str(errors[0])


def test_yaml_aliases_and_broken_yaml_are_refused_with_the_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("connectors:\n  - &a {name: x}\n  - *a\n")
    assert "anchors" in str(errors_of(path)[0])
    path.write_text("connectors:\n  - name: [unclosed\n")
    error = errors_of(path)[0]
    assert error.line is not None
    assert "not valid YAML" in str(error)


def test_the_password_comes_from_the_environment_only() -> None:
    cfg = DatabaseConfig(url="mysql://exchange@db.example:3307/market", password_env="MARKET_PW")
    target = resolve_database(cfg, {"MARKET_PW": "s3cret"})
    assert (target.dialect, target.host, target.port, target.user, target.database) == (
        "mysql",
        "db.example",
        3307,
        "exchange",
        "market",
    )
    assert target.password is not None
    assert target.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(target)
    assert target.password_note is None
    assert target.refused_hint() == ""
    # named but unset: no password is sent (trust or peer authentication), and it is said
    unset = resolve_database(cfg, {})
    assert unset.password is None
    assert unset.password_note == (
        "environment variable MARKET_PW (database.password_env) is not set: "
        "connecting without a password"
    )
    assert "MARKET_PW (database.password_env) is not set: set it" in unset.refused_hint()
    none = resolve_database(DatabaseConfig(url="postgresql://u@h/db"), {})
    assert none.password is None
    assert none.password_note is None
    assert "name the variable holding it in database.password_env" in none.refused_hint()
    assert tz_of("+08:00").utcoffset(None) == dt.timedelta(hours=8)
    assert tz_of("-03:30").utcoffset(None) == -dt.timedelta(hours=3, minutes=30)


def test_relative_paths_are_taken_from_the_config_files_directory(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        [
            {**SOURCE, "checkpoint": {"file": "state/births.json"}},
            {
                "name": "imp",
                "type": "file_import",
                "department": "health",
                "resource": "birth_medical_certificate",
                "path": "in/births.csv",
            },
        ],
    )
    source, imp = load(path).connectors
    assert isinstance(source, DbSourceConfig)
    assert source.checkpoint.file == tmp_path / "state" / "births.json"
    assert isinstance(imp, FileImportConfig)
    assert imp.path == tmp_path / "in" / "births.csv"


# --- column types against Avro field types --------------------------------------------


def col(
    family: str, type_name: str = "", precision: int | None = None, scale: int | None = None
) -> Column:
    return Column("c", family, type_name or family, precision, scale)


DATE = {"type": "int", "logicalType": "date"}
DECIMAL_10_2 = {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2}


@pytest.mark.parametrize(
    ("column", "avro_type", "problem"),
    [
        (col(mapping.TEXT), "string", None),
        (col(mapping.UUID), "string", None),
        (col(mapping.TEXT, "text"), DATE, "column type text cannot feed an Avro date field"),
        (col(mapping.DATE), DATE, None),
        (col(mapping.INT8, "bigint"), "int", "may not fit a 32-bit int"),
        (col(mapping.INT4), "long", None),
        (col(mapping.NUMERIC, "numeric(10,2)", 10, 2), DECIMAL_10_2, None),
        (col(mapping.NUMERIC, "numeric(12,2)", 12, 2), DECIMAL_10_2, "up to 10 integer digits"),
        (col(mapping.NUMERIC, "numeric(10,3)", 10, 3), DECIMAL_10_2, "3 decimal places"),
        (col(mapping.NUMERIC, "numeric"), DECIMAL_10_2, None),
        (col(mapping.INT8, "bigint"), DECIMAL_10_2, "more than 8 integer digits"),
        (col(mapping.TIMESTAMP), {"type": "long", "logicalType": "timestamp-millis"}, None),
        (
            col(mapping.DATE, "date"),
            {"type": "long", "logicalType": "timestamp-millis"},
            "cannot feed",
        ),
        (col(mapping.INT1, "TINYINT(1)"), "boolean", None),
        (col(mapping.TEXT), {"type": "enum", "name": "E", "symbols": ["A"]}, None),
        (
            col(mapping.JSON),
            {"type": "array", "items": "string"},
            "cannot be read from a database column",
        ),
        (col(mapping.TEXT), ["null", "string"], None),
    ],
)
def test_which_columns_can_feed_which_fields(
    column: Column, avro_type: Any, problem: str | None
) -> None:
    found = mapping.source_problem(column, field_type(avro_type))
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


@pytest.mark.parametrize(
    ("column", "avro_type", "ok"),
    [
        (col(mapping.TEXT), "string", True),
        (col(mapping.INT4), "long", False),
        (col(mapping.INT8), "int", True),
        (col(mapping.NUMERIC, "numeric(18,2)", 18, 2), DECIMAL_10_2, True),
        (col(mapping.NUMERIC, "numeric(8,2)", 8, 2), DECIMAL_10_2, False),
        (col(mapping.DATE), "string", False),
        (col(mapping.TIMESTAMPTZ), {"type": "long", "logicalType": "timestamp-millis"}, True),
    ],
)
def test_which_columns_can_hold_which_fields(column: Column, avro_type: Any, ok: bool) -> None:
    assert (mapping.sink_problem(column, field_type(avro_type)) is None) is ok


def test_values_are_converted_or_refused_with_the_reason() -> None:
    china = tz_of("+08:00")
    enum = field_type({"type": "enum", "name": "G", "symbols": ["MALE", "FEMALE"]})
    to_enum = mapping.converter(col(mapping.TEXT), enum, china)
    assert to_enum("MALE") == "MALE"
    with pytest.raises(ValueError, match=r"'M' is not one of \['MALE', 'FEMALE'\]"):
        to_enum("M")
    to_dec = mapping.converter(col(mapping.NUMERIC), field_type(DECIMAL_10_2), china)
    assert to_dec(decimal.Decimal("1.500")) == decimal.Decimal("1.50")
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        to_dec(decimal.Decimal("1.505"))
    with pytest.raises(ValueError, match="more than 8 integer digits"):
        to_dec(decimal.Decimal("123456789"))
    ts = mapping.converter(
        col(mapping.TIMESTAMP),
        field_type({"type": "long", "logicalType": "timestamp-millis"}),
        china,
    )
    assert ts(dt.datetime(2026, 1, 2, 8, 0)) == dt.datetime(2026, 1, 2, 8, 0, tzinfo=china)
    to_bool = mapping.converter(col(mapping.INT1), field_type("boolean"), china)
    assert to_bool(1) is True
    with pytest.raises(ValueError, match="not a boolean"):
        to_bool(2)
    to_int = mapping.converter(col(mapping.INT8), field_type("long"), china)
    with pytest.raises(ValueError, match="does not fit"):
        to_int(2**64)


# --- positions and incremental predicates -----------------------------------------------


def test_positions_keep_their_exact_values(tmp_path: Path) -> None:
    china = tz_of("+08:00")
    pos = Position(
        ("updated_at", "id", "code"),
        (dt.datetime(2026, 11, 26, 9, 30, 0, 123456, tzinfo=china), 42, "A-1"),
    )
    assert Position.from_json(pos.to_json()) == pos
    naive = Position(("d", "n"), (dt.datetime(2026, 1, 1, 0, 0, 0, 5), decimal.Decimal("10.50")))
    assert Position.from_json(naive.to_json()) == naive

    async def roundtrip() -> Position | None:
        store = FileCheckpoints(tmp_path / "state" / "positions.json")
        await store.ensure()
        await store.save("a", pos)
        await store.save("b", naive)
        return await store.load("a")

    import asyncio

    assert asyncio.run(roundtrip()) == pos
    saved = json.loads((tmp_path / "state" / "positions.json").read_text())
    assert set(saved) == {"a", "b"}
    assert not list((tmp_path / "state").glob(".*.tmp"))


def test_reading_strictly_after_a_position() -> None:
    target = resolve_database(DatabaseConfig(url="postgresql://u@h:5432/db"), {})
    pg = PostgresDatabase(target, autocommit=True)
    assert pg.after(["updated_at", "id"]) == '("updated_at", "id") > (%s, %s)'
    assert pg.after_params((1, 2)) == [1, 2]
    my = MySQLDatabase(resolve_database(DatabaseConfig(url="mysql://u@h/db"), {}), autocommit=True)
    assert my.after(["a", "b", "c"]) == (
        "(`a` > %s OR (`a` = %s AND (`b` > %s OR (`b` = %s AND `c` > %s))))"
    )
    assert my.after_params((1, 2, 3)) == [1, 1, 2, 2, 3]
    assert my.quote("db.t`x") == "`db`.`t``x`"
    assert pg.quote('s.t"x') == '"s"."t""x"'


# --- checks that fail before a database is contacted -----------------------------------


async def test_a_source_must_be_the_resources_provider(
    tmp_path: Path, sample_catalog: Catalog
) -> None:
    path = write(tmp_path, [{**SOURCE, "department": "police"}])
    loaded = load(path)
    cfg = loaded.connectors[0]
    assert isinstance(cfg, DbSourceConfig)
    source = DbSource(
        cfg,
        bus=Connection("127.0.0.1:9"),
        catalog=sample_catalog,
        target=resolve_database(cfg.database, {}),
        spot=loaded.spots[cfg.name],
    )
    with pytest.raises(ConnectorConfigError) as info:
        await source.setup()
    assert "its provider is 'health'" in str(info.value)
    assert f"c.yaml:{loaded.spots[cfg.name].line('department')}" in str(info.value)
    await source.stop()


# --- file imports: the whole file is checked first, errors carry line numbers -------------


def file_import(tmp_path: Path, catalog: Catalog, name: str, text: str, **extra: Any) -> FileImport:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    cfg = FileImportConfig(
        name="imp",
        type="file_import",
        department="health",
        resource="birth_medical_certificate",
        path=path,
        **extra,
    )
    return FileImport(cfg, bus=Connection("127.0.0.1:9"), catalog=catalog, spot=Spot())


HEADER = (
    "cert,child_name,gender,birth_date,hospital_name,region_code,mother_name,mother_id_number,"
    "father_name,father_id_number,address,birth_weight_grams,gestational_weeks,issued_at\n"
)
ROW = (
    "C{n},王小明,MALE,2026-03-01,杭州市妇产科医院,330102,李芳,330102199001011234,,,"
    '"浙江省杭州市上城区\n清波街道1号",3200,39,2026-03-02T10:00:00\n'
)


async def test_a_csv_file_is_validated_whole_and_mapped(
    tmp_path: Path, sample_catalog: Catalog
) -> None:
    text = HEADER + ROW.format(n=1) + ROW.format(n=2)
    imp = file_import(tmp_path, sample_catalog, "b.csv", text, mapping={"certificate_no": "cert"})
    lines = await imp.setup()
    assert "2 records, all valid" in lines[0]
    assert imp._spool is not None
    assert [p.key for p in imp._spool.batch(10)] == [b"C1", b"C2"]
    await imp.stop()
    assert imp._spool is None  # the temporary spool is gone


@pytest.mark.parametrize(
    ("bad", "line", "needle"),
    [
        (ROW.format(n=3).replace(",3200,", ",heavy,"), 6, "column 'birth_weight_grams'"),
        (ROW.format(n=3).replace(",MALE,", ",M,"), 6, "'M' is not one of"),
        (ROW.format(n=3).replace(",李芳,", ",,"), 6, "is null but the field is not nullable"),
        (ROW.format(n=3).replace("2026-03-01", "2026-02-30"), 6, "expected a date"),
        ("C9,only,three\n", 6, "3 cells, but the header names 14 columns"),
    ],
    ids=["not-an-integer", "unknown-enum", "null-not-nullable", "bad-date", "short-row"],
)
async def test_a_bad_csv_line_stops_the_import_with_its_line_number(
    tmp_path: Path, sample_catalog: Catalog, bad: str, line: int, needle: str
) -> None:
    # rows 1 and 2 take two lines each (a quoted address with a line break): the bad one is line 6
    text = HEADER + ROW.format(n=1) + ROW.format(n=2) + bad
    imp = file_import(tmp_path, sample_catalog, "b.csv", text, mapping={"certificate_no": "cert"})
    with pytest.raises(ConnectorDataError) as info:
        await imp.setup()
    message = str(info.value)
    assert f"b.csv:{line}" in message, message
    assert needle in message, message
    assert "nothing of the file was published" in message
    assert imp._publisher is None  # not ready to send anything


async def test_csv_columns_must_match_fields(tmp_path: Path, sample_catalog: Catalog) -> None:
    imp = file_import(tmp_path, sample_catalog, "b.csv", HEADER + ROW.format(n=1))
    with pytest.raises(ConnectorDataError, match=r"b.csv:1.*column 'cert' feeds no field"):
        await imp.setup()
    header = HEADER.replace("hospital_name,", "")
    row = ROW.format(n=1).replace("杭州市妇产科医院,", "")
    imp = file_import(
        tmp_path, sample_catalog, "c.csv", header + row, mapping={"certificate_no": "cert"}
    )
    with pytest.raises(
        ConnectorDataError, match="no column 'hospital_name' for field 'hospital_name'"
    ):
        await imp.setup()


async def test_a_bad_json_line_is_reported_with_its_number(
    tmp_path: Path, sample_catalog: Catalog
) -> None:
    from exchange.dev import sample

    records = sample.iter_json_lines(
        sample_catalog.resource("birth_medical_certificate").schema_, 3, 1
    )
    good = list(records)
    broken = json.loads(good[2])
    broken["birth_weight_grams"] = "3 kg"
    text = "\n".join([good[0], good[1], json.dumps(broken, ensure_ascii=False)]) + "\n"
    imp = file_import(tmp_path, sample_catalog, "b.jsonl", text)
    with pytest.raises(ConnectorDataError, match=r"b.jsonl:3.*field 'birth_weight_grams'"):
        await imp.setup()
