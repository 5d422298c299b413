"""Connectors against a real PostgreSQL and MariaDB (the suite's own) and a real broker.

Each test creates its own PostgreSQL schema or MariaDB database (``cx_<uuid>``)
and drops it afterwards. One router runs in-process for the module, so rows
really travel source table → bus → router → sink table. Each test works on
its own resource, so sinks only ever see the records of their own test.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import json
import signal
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import yaml
from cli_support import EXCHANGE, cli_env
from routing_support import SESSION_MS

from connectors import runner
from connectors.base import Connector
from connectors.checkpoint import Position
from connectors.config import load
from connectors.errors import (
    ConnectorConfigError,
    ConnectorDataError,
    ConnectorError,
    DatabaseUnavailable,
)
from connectors.mapping import field_type
from connectors.postgres import PostgresDatabase
from exchange.avro.jsoncodec import CHINA_TZ, dumps
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.dev import sample
from exchange.dev.broker import free_port
from exchange.dev.databases import ThrowawayMariaDB, ThrowawayPostgres
from exchange.router.loop import Router

pytestmark = pytest.mark.integration

SECRET = b"connector-tests-master-secret-0123456789"

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "connectors"

BIRTHS = "birth_medical_certificate"
ENTERPRISES = "enterprise_registration"
LICENCES = "business_licence"
PEOPLE = "population_basic"
ALLOWANCES = "minimum_living_allowance"
DEATHS = "death_registration"
MARRIAGES = "marriage_registration"


# --- databases ---------------------------------------------------------------------------


class DB:
    """The session's throwaway servers, set by :func:`_databases` before any test runs."""

    pg_dsn = ""
    pg_url = ""
    my_url = ""
    my_port = 0


@pytest.fixture(scope="module", autouse=True)
def _databases(postgres_server: ThrowawayPostgres, mariadb_server: ThrowawayMariaDB) -> None:
    DB.pg_dsn, DB.pg_url = postgres_server.dsn, postgres_server.url
    DB.my_url, DB.my_port = mariadb_server.url, mariadb_server.port
    my("mysql", "CREATE DATABASE IF NOT EXISTS test")


def pg(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(DB.pg_dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description else []


def pg_many(sql: str, rows: list[tuple[Any, ...]]) -> None:
    with psycopg.connect(DB.pg_dsn) as conn, conn.cursor() as cur:
        cur.executemany(sql, rows)  # type: ignore[arg-type]


def my(database: str, sql: str, params: Any = None, *, many: bool = False) -> list[tuple[Any, ...]]:
    conn = pymysql.connect(
        host="127.0.0.1",
        port=DB.my_port,
        user="root",
        password="",
        database=database,
        autocommit=True,
    )
    try:
        with conn.cursor() as cur:
            if many:
                cur.executemany(sql, params)
            else:
                cur.execute(sql, params)
            return list(cur.fetchall())
    finally:
        conn.close()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    name = f"cx_{uuid.uuid4().hex[:12]}"
    pg(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        pg(f'DROP SCHEMA "{name}" CASCADE')


@pytest.fixture
def my_database() -> Iterator[str]:
    name = f"cx_{uuid.uuid4().hex[:12]}"
    my("test", f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield name
    finally:
        my("test", f"DROP DATABASE `{name}`")


def _sql_type(avro_type: Any, dialect: str) -> str:
    ft = field_type(avro_type)
    if ft.kind == "decimal":
        return f"numeric({ft.precision},{ft.scale})"
    pg_types = {"string": "text", "enum": "text", "date": "date", "timestamp-millis": "timestamptz"}
    my_types = {
        "string": "varchar(500)",
        "enum": "varchar(40)",
        "date": "date",
        "timestamp-millis": "datetime(3)",
    }
    common = {"int": "integer", "long": "bigint", "boolean": "boolean"}
    return {**common, **(pg_types if dialect == "pg" else my_types)}[ft.kind]


def create_table(dialect: str, table: str, schema: dict[str, Any], *, database: str = "") -> None:
    """A department table with one column per field, a serial id and a changed_at column."""
    cols = [
        "id bigserial PRIMARY KEY" if dialect == "pg" else "id BIGINT AUTO_INCREMENT PRIMARY KEY"
    ]
    for f in schema["fields"]:
        null = "NULL" if field_type(f["type"]).nullable else "NOT NULL"
        cols.append(f"{f['name']} {_sql_type(f['type'], dialect)} {null}")
    if dialect == "pg":
        cols.append("changed_at timestamptz NOT NULL DEFAULT now()")
        pg(f"CREATE TABLE {table} ({', '.join(cols)})")
        pg(f"CREATE INDEX ON {table} (changed_at, id)")
    else:
        cols.append("changed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)")
        my(database, f"CREATE TABLE {table} ({', '.join(cols)}, KEY (changed_at, id))")


def insert(dialect: str, table: str, records: list[dict[str, Any]], *, database: str = "") -> None:
    """Insert every record in one statement (one transaction): they share one changed_at."""
    names = list(records[0])
    marks = ", ".join(["%s"] * len(names))
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})"
    if dialect == "pg":
        pg_many(sql, [tuple(r.values()) for r in records])
    else:
        rows = [tuple(_my_value(v) for v in r.values()) for r in records]
        my(database, sql, rows, many=True)


def _my_value(v: Any) -> Any:
    if isinstance(v, dt.datetime):
        return v.astimezone(CHINA_TZ).replace(tzinfo=None)
    return v


def generate(
    catalog: Catalog, resource: str, count: int, *, seed: int, key_prefix: str
) -> list[dict[str, Any]]:
    """``count`` records with unique keys, built from 200 realistic samples (generating is slow)."""
    res = catalog.resource(resource)
    base = sample.generate(res.schema_, min(count, 200), seed=seed)
    return [{**base[i % len(base)], res.key: f"{key_prefix}{i:07d}"} for i in range(count)]


# --- bus -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[Router]:
    r = Router(bus, group=f"connector-tests-{uuid.uuid4().hex[:8]}", master_secret=SECRET)
    await r.start()
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    try:
        yield r
    finally:
        stop.set()
        await task
        await r.stop()


async def followed(router: Router, department: str, resource: str, *fields: str) -> None:
    """Wait until the router routes ``resource`` to ``department`` (with ``fields``).

    A policy change reaches the router within a poll, not at once: records
    published before it compiled the new view are routed under the old one.
    """
    deadline = time.monotonic() + 15
    while True:
        views = [v for v in router.views.get(resource, []) if v.consumer == department]
        if views and set(fields) <= set(views[0].view.fields):
            return
        assert time.monotonic() < deadline, f"the router never routed {resource} to {department}"
        await asyncio.sleep(0.05)


async def subscribe(bus: Connection, router: Router, department: str, resource: str) -> None:
    async with Department(bus, department) as d:
        await d.subscribe(resource)
    await followed(router, department, resource)


async def on_topic(bus: Connection, topic: str) -> list[Any]:
    return await kafka.read_to_end(bus, topic, timeout_s=30)


def write_config(
    tmp_path: Path, connectors: list[dict[str, Any]], name: str = "connectors.yaml"
) -> Path:
    path = tmp_path / name
    plain = json.loads(json.dumps(connectors))  # no shared objects: YAML would write anchors
    path.write_text(yaml.safe_dump({"connectors": plain}, allow_unicode=True, sort_keys=False))
    return path


async def one(path: Path, bus: Connection, name: str) -> Connector:
    (c,) = await runner.build(load(path), bus, environ={}, only=[name])
    return c


async def run_source(path: Path, bus: Connection, name: str = "src") -> Connector:
    """Run a source until it has nothing more to read."""
    c = await one(path, bus, name)
    async with c:
        await c.run(idle_exit_s=0)
    return c


async def step_until(c: Connector, done: Callable[[], bool], timeout_s: float = 60) -> None:
    """Move batches of a started connector until ``done()`` (checked between batches)."""
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out: {c.progress.line(c.name)}"
        await c.step()


async def run_until(
    path: Path, bus: Connection, name: str, done: Callable[[], bool], timeout_s: float = 60
) -> Connector:
    c = await one(path, bus, name)
    async with c:
        await step_until(c, done, timeout_s)
    return c


def source_cfg(
    resource: str, department: str, database: dict[str, Any], **extra: Any
) -> dict[str, Any]:
    return {
        "name": "src",
        "type": "db_source",
        "department": department,
        "resource": resource,
        "database": database,
        "incremental": {"column": "changed_at", "unique_key": ["id"]},
        **extra,
    }


def sink_cfg(
    resource: str, department: str, database: dict[str, Any], table: str, **extra: Any
) -> dict[str, Any]:
    return {
        "name": "sink",
        "type": "db_sink",
        "department": department,
        "resource": resource,
        "database": database,
        "table": table,
        "group": f"sink-{uuid.uuid4().hex[:8]}",
        # the embedded broker only hands a restarted sink its partitions once the
        # previous member's session has expired: keep that short here (Kafka: 6 s at least)
        "session_timeout_ms": SESSION_MS,
        **extra,
    }


def ms(ts: dt.datetime) -> dt.datetime:
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


# --- source → bus → router → sink ------------------------------------------------------------

POLICE_VIEW = [
    "certificate_no",
    "child_name",
    "gender",
    "birth_date",
    "hospital_name",
    "region_code",
    "mother_name",
    "mother_id_number",
    "address",
    "issued_at",
]


def births_table(schema: str, records: list[dict[str, Any]], deleted: set[int]) -> None:
    """The deploy example's table (column names differ from the fields), filled in one go."""
    ddl = (DEPLOY / "health-births.sql").read_text()
    pg(ddl.replace("CREATE SCHEMA IF NOT EXISTS health;", "").replace("health.", f"{schema}."))
    pg_many(
        f"INSERT INTO {schema}.birth_certificates (cert_no, baby_name, gender, birth_date, hospital, "
        "region_code, mother_name, mother_id_number, father_name, father_id_number, address, "
        "birth_weight_grams, gestational_weeks, issued_at, is_deleted) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (
                r["certificate_no"],
                r["child_name"],
                r["gender"],
                r["birth_date"],
                r["hospital_name"],
                r["region_code"],
                r["mother_name"],
                r["mother_id_number"],
                r["father_name"],
                r["father_id_number"],
                r["address"],
                r["birth_weight_grams"],
                r["gestational_weeks"],
                r["issued_at"],
                i in deleted,
            )
            for i, r in enumerate(records)
        ],
    )


def police_expected(records: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """What police may see: its view's fields, mother_id_number masked keep:6:4."""
    out = {}
    for r in records:
        masked = (
            r["mother_id_number"][:6]
            + "*" * (len(r["mother_id_number"]) - 10)
            + r["mother_id_number"][-4:]
        )
        row = {**r, "mother_id_number": masked, "issued_at": ms(r["issued_at"])}
        out[r["certificate_no"]] = tuple(row[f] for f in POLICE_VIEW)
    return out


def pg_rows(table: str, fields: list[str]) -> dict[str, tuple[Any, ...]]:
    rows = pg(f"SELECT gov_key, {', '.join(fields)} FROM {table}")
    return {r[0]: tuple(r[1:]) for r in rows}


def pg_columns(schema: str, table: str) -> list[str]:
    rows = pg(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
        "AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    )
    return [r[0] for r in rows]


async def test_a_table_reaches_another_departments_table_as_exactly_its_masked_view(
    bus: Connection, loaded_catalog: Catalog, router: Router, pg_schema: str, tmp_path: Path
) -> None:
    records = generate(loaded_catalog, BIRTHS, 5000, seed=11, key_prefix="B")
    deleted = set(range(0, 5000, 250))  # 20 rows marked deleted: published as deletions
    births_table(pg_schema, records, deleted)
    async with Department(bus, "police") as police:
        app = await police.apply(
            BIRTHS,
            fields=["mother_name", "mother_id_number", "address"],
            purpose="落户 registration",
        )
    async with Department(bus, "health") as health:
        await health.approve(app, masks={"mother_id_number": "keep:6:4"})
    await followed(router, "police", BIRTHS, "mother_name", "mother_id_number", "address")

    database = {"url": DB.pg_url}
    source = yaml.safe_load((DEPLOY / "health-births-source.yaml").read_text())["connectors"][0]
    source.update(
        name="src",
        database=database,
        table=f"{pg_schema}.birth_certificates",
        batch_size=700,  # the 5000 rows share one updated_at: batches end inside the tie
        checkpoint={"table": f"{pg_schema}.checkpoints"},
    )
    sink_table = f"{pg_schema}.police_births"
    path = write_config(tmp_path, [source, sink_cfg(BIRTHS, "police", database, sink_table)])

    src = await run_source(path, bus)
    progress = src.progress
    assert (progress.rows_read, progress.published, progress.skipped) == (5000, 4980, 20)
    metric = src.metrics.registry.get_sample_value
    assert metric("gov_exchange_connector_records_published_total", {"connector": "src"}) == 4980
    assert metric("gov_exchange_connector_rows_skipped_total", {"connector": "src"}) == 20
    live = [r for i, r in enumerate(records) if i not in deleted]

    def count() -> int:
        if not pg(f"SELECT to_regclass('{sink_table}')")[0][0]:
            return 0
        return int(pg(f"SELECT count(*) FROM {sink_table}")[0][0])

    def updated() -> int:
        return int(pg(f"SELECT count(*) FROM {sink_table} WHERE address LIKE '%（已迁居）'")[0][0])

    sink = await one(path, bus, "sink")
    async with sink:
        await step_until(sink, lambda: count() >= len(live))
        assert pg_columns(pg_schema, "police_births") == [
            "gov_key",
            *POLICE_VIEW,
            "gov_record_id",
            "gov_received_at",
            "gov_partition",
            "gov_retracted_grant",
            "gov_retracted_at",
        ]
        assert pg_rows(sink_table, POLICE_VIEW) == police_expected(live)

        # rows updated and inserted after the first run: only they are read and published again
        changed = live[:100]
        pg(
            f"UPDATE {pg_schema}.birth_certificates SET address = address || '（已迁居）', "
            "updated_at = clock_timestamp() WHERE cert_no = ANY(%s)",
            ([r["certificate_no"] for r in changed],),
        )
        for r in changed:
            r["address"] += "（已迁居）"
        fresh = generate(loaded_catalog, BIRTHS, 50, seed=12, key_prefix="N")
        for r in fresh:
            r["father_name"] = r["father_id_number"] = None
        pg_many(
            f"INSERT INTO {pg_schema}.birth_certificates (cert_no, baby_name, gender, birth_date, "
            "hospital, region_code, mother_name, mother_id_number, address, birth_weight_grams, "
            "gestational_weeks, issued_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    r["certificate_no"],
                    r["child_name"],
                    r["gender"],
                    r["birth_date"],
                    r["hospital_name"],
                    r["region_code"],
                    r["mother_name"],
                    r["mother_id_number"],
                    r["address"],
                    r["birth_weight_grams"],
                    r["gestational_weeks"],
                    r["issued_at"],
                )
                for r in fresh
            ],
        )
        again = await run_source(path, bus)  # a new source: resumes from its saved position
        assert (again.progress.rows_read, again.progress.published) == (150, 150)
        await step_until(sink, lambda: updated() == 100 and count() == 5030)
    assert sink.progress.rows_read == 4980 + 20 + 150  # records, deletions, records
    assert pg_rows(sink_table, POLICE_VIEW) == police_expected(live + fresh)


async def test_killed_source_and_sink_resume_without_losing_or_duplicating_a_row(
    bus: Connection, loaded_catalog: Catalog, router: Router, pg_schema: str, tmp_path: Path
) -> None:
    res = loaded_catalog.resource(ENTERPRISES)
    records = generate(loaded_catalog, ENTERPRISES, 6000, seed=21, key_prefix="9133")
    table = f"{pg_schema}.enterprises"
    create_table("pg", table, res.schema_)
    insert("pg", table, records)
    await subscribe(bus, router, "civil_affairs", ENTERPRISES)
    database = {"url": DB.pg_url}
    sink_table = f"{pg_schema}.ca_enterprises"
    path = write_config(
        tmp_path,
        [
            source_cfg(
                ENTERPRISES,
                "market",
                database,
                table=table,
                batch_size=100,
                checkpoint={"table": f"{pg_schema}.checkpoints"},
            ),
            sink_cfg(ENTERPRISES, "civil_affairs", database, sink_table, batch_size=200),
        ],
    )
    env = cli_env(bus, EXCHANGE_STATE_DIR=str(tmp_path / "state"))

    async def start(*args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            EXCHANGE,
            "connect",
            "run",
            str(path),
            "--progress-every",
            "0.5",
            *args,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )

    async def finish(*args: str) -> str:
        proc = await start(*args)
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
        assert proc.returncode == 0, out.decode()
        return out.decode()

    async def kill_when(reached: Callable[[], int], at: int, *args: str) -> int:
        """SIGKILL the connector once ``reached()`` passes ``at``: no chance to clean up."""
        proc = await start(*args)
        drain = asyncio.create_task(proc.communicate())
        deadline = time.monotonic() + 60
        while (n := reached()) < at:
            assert not drain.done(), (await drain)[0].decode()
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        await drain
        assert proc.returncode == -signal.SIGKILL
        return n

    def position() -> int:
        if not pg(f"SELECT to_regclass('{pg_schema}.checkpoints')")[0][0]:
            return 0
        rows = pg(f"SELECT position FROM {pg_schema}.checkpoints")
        return int(Position.from_json(rows[0][0]).values[1]) if rows else 0

    killed_at = await kill_when(position, 1500, "--only", "src")
    assert killed_at < 6000, "the source finished before it could be killed"
    out = await finish("--only", "src", "--until-idle", "0.5")
    assert "[src] stopped, read " in out
    assert position() == 6000

    on_bus = [r.key.decode() for r in await on_topic(bus, topics.source("market", ENTERPRISES))]
    assert set(on_bus) == {r["credit_code"] for r in records}  # nothing lost
    assert len(on_bus) <= 6000 + 100  # at most one batch was sent twice

    def rows_in_sink() -> int:
        if not pg(f"SELECT to_regclass('{sink_table}')")[0][0]:
            return 0
        return int(pg(f"SELECT count(*) FROM {sink_table}")[0][0])

    port = free_port()

    def scraped() -> int:
        """Rows written, as the running sink's Prometheus endpoint says."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=1) as page:
                text = page.read().decode()
        except OSError:
            return 0
        for line in text.splitlines():
            if line.startswith('gov_exchange_connector_rows_written_total{connector="sink"}'):
                return int(float(line.split()[-1]))
        return 0

    metrics_seen = 0

    def rows_and_metrics() -> int:
        nonlocal metrics_seen
        n = rows_in_sink()
        if n and not metrics_seen:
            metrics_seen = scraped()
        return n if metrics_seen else 0

    killed_at = await kill_when(
        rows_and_metrics, 1000, "--only", "sink", "--metrics-port", str(port)
    )
    assert metrics_seen > 0
    assert killed_at < 6000, "the sink finished before it could be killed"
    await finish("--only", "sink", "--until-idle", "2")
    fields = res.field_names()
    got = pg_rows(sink_table, fields)
    assert len(got) == 6000
    expected = {
        r["credit_code"]: tuple(ms(r[f]) if f == "updated_at" else r[f] for f in fields)
        for r in records
    }
    assert got == expected


async def test_mariadb_table_to_mariadb_table(
    bus: Connection, loaded_catalog: Catalog, router: Router, my_database: str, tmp_path: Path
) -> None:
    res = loaded_catalog.resource(LICENCES)
    records = generate(loaded_catalog, LICENCES, 2000, seed=31, key_prefix="L")
    create_table("my", "licences", res.schema_, database=my_database)
    insert("my", "licences", records, database=my_database)
    await subscribe(bus, router, "hrss", LICENCES)
    database = {"url": DB.my_url + my_database, "timezone": "+08:00"}
    path = write_config(
        tmp_path,
        [
            source_cfg(LICENCES, "market", database, table="licences", batch_size=300),
            sink_cfg(LICENCES, "hrss", database, "hrss_licences"),
        ],
    )
    src = await run_source(path, bus)
    assert src.progress.published == 2000

    def count() -> int:
        exists = my(my_database, "SHOW TABLES LIKE 'hrss_licences'")
        return int(my(my_database, "SELECT count(*) FROM hrss_licences")[0][0]) if exists else 0

    await run_until(path, bus, "sink", lambda: count() >= 2000)
    fields = res.field_names()
    rows = my(my_database, f"SELECT gov_key, {', '.join(fields)} FROM hrss_licences")
    got = {
        r[0]: tuple(
            bool(v) if f == "is_electronic" else v for f, v in zip(fields, r[1:], strict=True)
        )
        for r in rows
    }
    expected = {
        r["licence_no"]: tuple(_my_value(r[f]) if f == "issued_at" else r[f] for f in fields)
        for r in records
    }
    assert got == expected
    # the position lives in the source database, next to the data
    (saved,) = my(
        my_database, "SELECT position FROM gov_exchange_checkpoints WHERE connector = 'src'"
    )
    assert Position.from_json(saved[0]).values[1] == 2000


# --- bad configuration and bad data: clear errors, nothing half-written ------------------------


def people_table(schema: str, catalog: Catalog, count: int) -> list[dict[str, Any]]:
    records = generate(catalog, PEOPLE, count, seed=41, key_prefix="33010219900101")
    create_table("pg", f"{schema}.people", catalog.resource(PEOPLE).schema_)
    insert("pg", f"{schema}.people", records)
    return records


@pytest.mark.parametrize(
    ("change", "setup_sql", "needles"),
    [
        (
            {"mapping": {"address": "home_address"}},
            None,
            ["column 'home_address' does not exist", "field 'address'"],
        ),
        (
            {},
            "ALTER TABLE {t} ALTER COLUMN birth_date TYPE text",
            [
                "column 'birth_date'",
                "field 'birth_date'",
                "column type text cannot feed an Avro date field",
            ],
        ),
        (
            {},
            "ALTER TABLE {t} ALTER COLUMN name DROP NOT NULL; UPDATE {t} SET name = NULL WHERE id = 7",
            ["column 'name'", "field 'name'", "NULL in row (changed_at=", "id=7)", "not nullable"],
        ),
        ({"incremental": {"column": "modified"}}, None, ["column 'modified' does not exist"]),
        (
            {"mapping": {"nickname": "name"}},
            None,
            ["'nickname' is not a field of resource 'population_basic'"],
        ),
    ],
    ids=[
        "unknown-column",
        "type-mismatch",
        "null-not-allowed",
        "unknown-incremental-column",
        "unknown-field",
    ],
)
async def test_a_source_that_does_not_fit_is_refused_before_publishing_anything(
    bus: Connection,
    loaded_catalog: Catalog,
    pg_schema: str,
    tmp_path: Path,
    change: dict[str, Any],
    setup_sql: str | None,
    needles: list[str],
) -> None:
    people_table(pg_schema, loaded_catalog, 50)
    table = f"{pg_schema}.people"
    if setup_sql:
        pg(setup_sql.format(t=table))
    path = write_config(
        tmp_path,
        [
            source_cfg(
                PEOPLE,
                "police",
                {"url": DB.pg_url},
                table=table,
                checkpoint={"table": f"{pg_schema}.checkpoints"},
                **change,
            )
        ],
    )
    before = len(await on_topic(bus, topics.source("police", PEOPLE)))
    src = await one(path, bus, "src")
    try:
        with pytest.raises(ConnectorConfigError) as info:
            await src.start()
    finally:
        await src.stop()
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert f"{path}:" in message  # the config file and line
    assert len(await on_topic(bus, topics.source("police", PEOPLE))) == before
    assert pg(f"SELECT to_regclass('{pg_schema}.checkpoints')")[0][0] is None


async def test_a_bad_row_stops_the_source_before_its_batch_is_published(
    bus: Connection, loaded_catalog: Catalog, pg_schema: str, tmp_path: Path
) -> None:
    records = people_table(pg_schema, loaded_catalog, 250)
    pg(f"UPDATE {pg_schema}.people SET gender = 'M' WHERE id = 150")
    before = len(await on_topic(bus, topics.source("police", PEOPLE)))
    query = f"SELECT p.*, p.changed_at AS changed FROM {pg_schema}.people AS p"
    path = write_config(
        tmp_path,
        [
            source_cfg(
                PEOPLE,
                "police",
                {"url": DB.pg_url},
                query=query,
                batch_size=100,
                incremental={"column": "changed", "unique_key": ["id"]},
                checkpoint={"file": "state/positions.json"},
            )
        ],
    )
    src = await one(path, bus, "src")
    with pytest.raises(ConnectorDataError) as info:
        async with src:
            await src.run(idle_exit_s=0)
    message = str(info.value)
    for needle in [
        "id=150)",
        "column 'gender'",
        "field 'gender'",
        "'M' is not one of",
        "nothing of this batch",
    ]:
        assert needle in message, message
    assert src.progress.published == 100  # the first batch, and nothing of the second
    assert len(await on_topic(bus, topics.source("police", PEOPLE))) == before + 100

    pg(f"UPDATE {pg_schema}.people SET gender = 'MALE' WHERE id = 150")
    again = await run_source(path, bus)
    assert again.progress.published == 150  # resumed after the first batch
    on_bus = await on_topic(bus, topics.source("police", PEOPLE))
    assert len(on_bus) == before + 250
    assert {r.key.decode() for r in on_bus[before:]} >= {r["id_number"] for r in records}


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/test", "mysql://root@127.0.0.1:1/test"]
)
async def test_an_unreachable_database_is_named(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path, url: str
) -> None:
    path = write_config(
        tmp_path,
        [source_cfg(DEATHS, "health", {"url": url, "connect_timeout_s": 2}, table="deaths")],
    )
    before = len(await on_topic(bus, topics.source("health", DEATHS)))
    src = await one(path, bus, "src")
    try:
        with pytest.raises(
            DatabaseUnavailable,
            match=r"cannot connect to (PostgreSQL|MySQL/MariaDB) at 127\.0\.0\.1:1/test",
        ):
            await src.start()
    finally:
        await src.stop()
    assert len(await on_topic(bus, topics.source("health", DEATHS))) == before


async def test_a_lost_database_connection_is_retried_without_loss(
    bus: Connection, loaded_catalog: Catalog, pg_schema: str, tmp_path: Path
) -> None:
    res = loaded_catalog.resource(DEATHS)
    records = generate(loaded_catalog, DEATHS, 400, seed=71, key_prefix="D")
    table = f"{pg_schema}.deaths"
    create_table("pg", table, res.schema_)
    insert("pg", table, records[:300])
    path = write_config(
        tmp_path,
        [
            source_cfg(
                DEATHS,
                "health",
                {"url": DB.pg_url},
                table=table,
                batch_size=50,
                poll_interval_s=0.1,
                checkpoint={"table": f"{pg_schema}.checkpoints"},
            )
        ],
    )
    source_topic = topics.source("health", DEATHS)
    before = Counter(r.key.decode() for r in await on_topic(bus, source_topic))
    (src,) = await runner.build(load(path), bus, environ={})
    stop = asyncio.Event()
    lines: list[str] = []
    task = asyncio.create_task(
        runner.run_all([src], stop=stop, echo=lines.append, progress_every_s=60)
    )
    try:
        deadline = time.monotonic() + 30
        while src.progress.published < 300:
            assert time.monotonic() < deadline, lines
            await asyncio.sleep(0.05)
        assert isinstance(src.db, PostgresDatabase)
        pid = src.db.conn.info.backend_pid
        pg("SELECT pg_terminate_backend(%s)", (pid,))  # the database drops the connection
        insert("pg", table, records[300:])
        while src.progress.published < 400:
            assert time.monotonic() < deadline, lines
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await task
    assert any("retrying in" in line and "[src]" in line for line in lines), lines
    after = Counter(r.key.decode() for r in await on_topic(bus, source_topic))
    assert after - before == Counter(r["certificate_no"] for r in records)  # each exactly once


async def test_a_sink_that_does_not_fit_is_refused_before_writing_anything(
    bus: Connection, loaded_catalog: Catalog, pg_schema: str, tmp_path: Path
) -> None:
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe(ENTERPRISES)  # the check needs a subscription, not deliveries
    table = f"{pg_schema}.hrss_enterprises"
    pg(
        f"CREATE TABLE {table} (gov_key varchar(255) PRIMARY KEY, gov_record_id text, "
        "credit_code text, established_date integer)"
    )
    pg(f"CREATE TABLE {pg_schema}.no_key (gov_key text, gov_record_id text)")
    database = {"url": DB.pg_url}
    path = write_config(
        tmp_path,
        [
            sink_cfg(ENTERPRISES, "hrss", database, table),
            {
                **sink_cfg(PEOPLE, "civil_affairs", database, f"{pg_schema}.ca_people"),
                "name": "unsubscribed",
            },
            {
                **sink_cfg(DEATHS, "police", database, f"{pg_schema}.police_deaths"),
                "name": "not-shared",
            },
            {**sink_cfg(ENTERPRISES, "hrss", database, "no_such_schema.t"), "name": "no-schema"},
            {**sink_cfg(ENTERPRISES, "hrss", database, f"{pg_schema}.no_key"), "name": "no-key"},
        ],
    )
    connectors = await runner.build(load(path), bus, environ={})
    _lines, errors = await runner.check(connectors)
    messages = [str(e) for e in errors]
    assert len(messages) == 5, messages
    assert (
        "column 'established_date', field 'established_date': column type int4 cannot hold an Avro date field"
        in messages[0]
    )
    assert "'civil_affairs' has not subscribed to 'population_basic'" in messages[1]
    assert "exchange subscribe --as civil_affairs population_basic" in messages[1]
    assert "'police' receives nothing of 'death_registration'" in messages[2]
    assert "schema 'no_such_schema' does not exist" in messages[3]
    assert "column gov_key of table" in messages[4]
    assert "is not its primary key" in messages[4]
    assert pg(f"SELECT count(*) FROM {table}")[0][0] == 0
    assert pg(f"SELECT to_regclass('{pg_schema}.ca_people')")[0][0] is None


async def test_a_failed_sink_batch_writes_nothing_and_is_read_again(
    bus: Connection, loaded_catalog: Catalog, router: Router, pg_schema: str, tmp_path: Path
) -> None:
    # police may see three unconditional fields of marriages; the key field is conditional,
    # so police's records are keyed by the router's keyed hash of it
    await subscribe(bus, router, "police", MARRIAGES)
    records = generate(loaded_catalog, MARRIAGES, 300, seed=61, key_prefix="J3301")
    async with Publisher(bus, loaded_catalog, "civil_affairs") as pub:
        await pub.publish(MARRIAGES, records)
    table = f"{pg_schema}.police_marriages"
    pg(
        f"CREATE TABLE {table} (gov_key varchar(255) PRIMARY KEY, registry_office varchar(4), "
        "region_code text, updated_at timestamptz, gov_record_id varchar(64) NOT NULL, "
        "gov_received_at timestamptz NOT NULL)"
    )
    path = write_config(tmp_path, [sink_cfg(MARRIAGES, "police", {"url": DB.pg_url}, table)])

    def count() -> int:
        return int(pg(f"SELECT count(*) FROM {table}")[0][0])

    with pytest.raises(ConnectorError, match="value too long"):
        await run_until(path, bus, "sink", lambda: False)
    assert count() == 0  # the batch was rolled back and its offsets not committed

    pg(f"ALTER TABLE {table} ALTER COLUMN registry_office TYPE text")
    await run_until(path, bus, "sink", lambda: count() >= 300)
    rows = pg(f"SELECT gov_key, registry_office, region_code FROM {table}")
    assert len({r[0] for r in rows}) == 300
    assert not {r[0] for r in rows} & {r["registration_no"] for r in records}
    expected = sorted((r["registry_office"], r["region_code"]) for r in records)
    assert sorted((r[1], r[2]) for r in rows) == expected

    # a record cut short (its schema id known, its body not complete) stops the sink, named
    topic = topics.delivery("police", MARRIAGES)
    delivered = (await on_topic(bus, topic))[0]
    async with kafka.producer(bus) as producer:
        meta = await producer.send_and_wait(
            topic, value=delivered.value[:-3], key=b"cut-short", headers=list(delivered.headers)
        )
    with pytest.raises(ConnectorDataError) as info:
        await run_until(path, bus, "sink", lambda: False)
    assert f"record {topic}[{meta.partition}]@{meta.offset} cannot be decoded: " in str(info.value)
    assert "Avro body does not match its schema: " in str(info.value)
    assert count() == 300


async def test_connect_check_on_the_command_line(
    bus: Connection, loaded_catalog: Catalog, pg_schema: str, tmp_path: Path
) -> None:
    people_table(pg_schema, loaded_catalog, 10)
    good = write_config(
        tmp_path,
        [
            source_cfg(
                PEOPLE,
                "police",
                {"url": DB.pg_url},
                table=f"{pg_schema}.people",
                checkpoint={"table": f"{pg_schema}.cp"},
            )
        ],
        "good.yaml",
    )
    bad = write_config(
        tmp_path,
        [
            source_cfg(
                PEOPLE,
                "police",
                {"url": DB.pg_url},
                table=f"{pg_schema}.people",
                mapping={"name": "full_name"},
            )
        ],
        "bad.yaml",
    )
    env = cli_env(bus)

    async def check(path: Path) -> tuple[int | None, str, str]:
        proc = await asyncio.create_subprocess_exec(
            EXCHANGE,
            "connect",
            "check",
            str(path),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode, out.decode(), err.decode()

    code, out, err = await check(good)
    assert code == 0, err
    assert "incremental by (changed_at, id)" in out
    assert "none yet (starts from the first row)" in out
    assert "config OK: 1 connector(s)" in out
    code, out, err = await check(bad)
    assert code == 2
    assert "column 'full_name' does not exist" in err
    assert "field 'name'" in err
    assert "bad.yaml:" in err
    assert "Traceback" not in err
    assert pg(f"SELECT to_regclass('{pg_schema}.cp')")[0][0] is None  # check writes nothing


# --- passwords, schemas, checkpoints, the example table -------------------------------------


async def test_a_database_that_needs_no_password_needs_no_password_env(
    bus: Connection, loaded_catalog: Catalog, pg_schema: str, my_database: str, tmp_path: Path
) -> None:
    people_table(pg_schema, loaded_catalog, 5)
    unset = f"NO_SUCH_PASSWORD_{uuid.uuid4().hex[:6].upper()}"
    user = f"pw_{uuid.uuid4().hex[:8]}"
    hosts = ("localhost", "127.0.0.1", "%")
    for host in hosts:
        my("test", f"CREATE USER '{user}'@'{host}' IDENTIFIED BY 's3cret'")
        my("test", f"GRANT ALL ON `{my_database}`.* TO '{user}'@'{host}'")
    trust = {"url": DB.pg_url, "password_env": unset}  # the suite's PostgreSQL trusts loopback
    wants_one = {
        "url": f"mysql://{user}@127.0.0.1:{DB.my_port}/{my_database}",
        "password_env": unset,
    }
    path = write_config(
        tmp_path,
        [
            source_cfg(
                PEOPLE,
                "police",
                trust,
                table=f"{pg_schema}.people",
                checkpoint={"table": f"{pg_schema}.cp"},
            ),
            {**source_cfg(PEOPLE, "police", wants_one, table="people"), "name": "refused"},
        ],
    )
    try:
        lines, errors = await runner.check(await runner.build(load(path), bus, environ={}))
        note = f"environment variable {unset} (database.password_env) is not set: connecting without a password"
        assert f"src: {note} ({path}:" in "\n".join(lines)
        assert f"refused: {note}" in "\n".join(lines)
        assert any("incremental by (changed_at, id)" in line for line in lines), lines
        assert len(errors) == 1, errors
        assert "Access denied" in str(errors[0])
        assert f"no password was sent because environment variable {unset}" in str(errors[0])
        # with the variable set, the password is sent: the login works (the table is missing)
        connectors = await runner.build(
            load(path), bus, environ={unset: "s3cret"}, only=["refused"]
        )
        lines, errors = await runner.check(connectors)
        assert not any(unset in line for line in lines), lines
        assert "table people does not exist" in str(errors[0])
    finally:
        for host in hosts:
            my("test", f"DROP USER '{user}'@'{host}'")


@pytest.mark.parametrize("dialect", ["pg", "my"])
async def test_a_sink_creates_its_schema_only_when_allowed(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path, dialect: str
) -> None:
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe(ENTERPRISES)
    schema = f"cx_{uuid.uuid4().hex[:12]}"
    database = {"url": DB.pg_url if dialect == "pg" else f"{DB.my_url.rstrip('/')}/test"}
    table = f"{schema}.hrss_enterprises"
    path = write_config(
        tmp_path,
        [
            sink_cfg(ENTERPRISES, "hrss", database, table),
            {
                **sink_cfg(ENTERPRISES, "hrss", database, table, create_schema=True),
                "name": "allowed",
            },
        ],
    )
    quoted = f'"{schema}"' if dialect == "pg" else f"`{schema}`"
    (refused,) = await runner.build(load(path), bus, environ={}, only=["sink"])
    _lines, errors = await runner.check([refused])
    assert len(errors) == 1
    message = str(errors[0])
    assert f"{path}:" in message
    assert "connector 'sink'" in message
    assert f"run 'CREATE SCHEMA {quoted};' there, or set create_schema: true" in message
    allowed = await one(path, bus, "allowed")
    try:
        async with allowed:
            pass
        if dialect == "pg":
            assert pg(f"SELECT to_regclass('{table}')")[0][0] is not None
        else:
            assert my("test", f"SHOW TABLES IN `{schema}`") == [("hrss_enterprises",)]
    finally:
        if dialect == "pg":
            pg(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            my("test", f"DROP DATABASE IF EXISTS `{schema}`")


async def test_a_plain_update_of_the_example_table_is_published(
    bus: Connection, loaded_catalog: Catalog, pg_schema: str, tmp_path: Path
) -> None:
    records = generate(loaded_catalog, BIRTHS, 5, seed=13, key_prefix="U")
    births_table(pg_schema, records, set())
    source = yaml.safe_load((DEPLOY / "health-births-source.yaml").read_text())["connectors"][0]
    source.update(
        name="src",
        database={"url": DB.pg_url},
        table=f"{pg_schema}.birth_certificates",
        checkpoint={"table": f"{pg_schema}.checkpoints"},
    )
    path = write_config(tmp_path, [source])
    assert (await run_source(path, bus)).progress.published == 5
    # what a department's own application does: it does not know about updated_at
    pg(
        f"UPDATE {pg_schema}.birth_certificates SET address = address || '（已迁居）' "
        "WHERE cert_no = %s",
        (records[2]["certificate_no"],),
    )
    again = await run_source(path, bus)
    assert (again.progress.rows_read, again.progress.published) == (1, 1)
    on_bus = Counter(r.key.decode() for r in await on_topic(bus, topics.source("health", BIRTHS)))
    mine = {r["certificate_no"]: on_bus[r["certificate_no"]] for r in records}
    assert mine == {r["certificate_no"]: 2 if i == 2 else 1 for i, r in enumerate(records)}


async def test_checkpoints_live_in_the_connectors_schema_as_jsonb_and_timestamptz(
    bus: Connection, loaded_catalog: Catalog, pg_schema: str, tmp_path: Path
) -> None:
    people_table(pg_schema, loaded_catalog, 20)
    (last,) = pg(f"SELECT changed_at, id FROM {pg_schema}.people WHERE id = 10")
    old = Position(("changed_at", "id"), tuple(last))
    default, named = f"src-{uuid.uuid4().hex[:8]}", f"named-{uuid.uuid4().hex[:8]}"
    old_shape = (
        "(connector VARCHAR(200) NOT NULL PRIMARY KEY, position TEXT NOT NULL, "
        "saved_at_utc timestamp NOT NULL)"
    )
    # positions saved by an older connector: in the old default table (public), and in a
    # table the config names, both of the old shape
    pg(f"CREATE TABLE IF NOT EXISTS gov_exchange_checkpoints {old_shape}")
    pg(f"CREATE TABLE {pg_schema}.named_cp {old_shape}")
    for table, name in (("gov_exchange_checkpoints", default), (f"{pg_schema}.named_cp", named)):
        pg(f"INSERT INTO {table} VALUES (%s, %s, '2026-01-01 08:00')", (name, old.to_json()))
    source = source_cfg(PEOPLE, "police", {"url": DB.pg_url}, table=f"{pg_schema}.people")
    path = write_config(
        tmp_path,
        [
            {**source, "name": default},
            {**source, "name": named, "checkpoint": {"table": f"{pg_schema}.named_cp"}},
        ],
    )

    def saved(name: str) -> list[tuple[Any, ...]]:
        if not pg("SELECT to_regclass('gov_exchange.checkpoints')")[0][0]:
            return []
        return pg("SELECT position FROM gov_exchange.checkpoints WHERE connector = %s", (name,))

    def column_types(schema: str, table: str) -> dict[str, str]:
        rows = pg(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        return {r[0]: r[1] for r in rows}

    try:
        lines, errors = await runner.check(await runner.build(load(path), bus, environ={}))
        assert not errors, errors
        assert any(
            line.startswith(f"{default}: position in table gov_exchange_checkpoints")
            and "the old place: copied to gov_exchange.checkpoints" in line
            and "changed_at=" in line
            for line in lines
        ), lines
        assert saved(default) == []  # check writes nothing
        for name in (default, named):
            src = await run_source(path, bus, name)
            assert src.progress.rows_read == 10, name  # resumed after id 10: nothing lost
        assert column_types("gov_exchange", "checkpoints") == {
            "connector": "character varying",
            "position": "jsonb",
            "saved_at_utc": "timestamp with time zone",
        }
        (position,) = saved(default)
        assert Position.from_json(position[0]).values[1] == 20
        assert column_types(pg_schema, "named_cp")["position"] == "jsonb"
        assert column_types(pg_schema, "named_cp")["saved_at_utc"] == "timestamp with time zone"
        (when,) = pg(f"SELECT saved_at_utc FROM {pg_schema}.named_cp")
        assert when[0] > dt.datetime(2026, 1, 1, 8, tzinfo=dt.UTC)  # saved again after the run
    finally:
        pg("DELETE FROM gov_exchange_checkpoints WHERE connector = %s", (default,))
        if pg("SELECT to_regclass('gov_exchange.checkpoints')")[0][0]:
            pg("DELETE FROM gov_exchange.checkpoints WHERE connector = %s", (default,))


# --- files ------------------------------------------------------------------------------------


async def test_files_in_and_out(
    bus: Connection, loaded_catalog: Catalog, router: Router, tmp_path: Path
) -> None:
    res = loaded_catalog.resource(ALLOWANCES)
    await subscribe(bus, router, "police", ALLOWANCES)  # unconditional fields only
    records = generate(loaded_catalog, ALLOWANCES, 300, seed=51, key_prefix="DB")
    source_topic = topics.source("civil_affairs", ALLOWANCES)

    fields = res.field_names()
    with (tmp_path / "bad.csv").open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(fields)
        for i, r in enumerate(records):
            row = {**r, **({"household_size": "三"} if i == 200 else {})}
            w.writerow(
                ["" if row[f] is None else json.loads(dumps({"v": row[f]}))["v"] for f in fields]
            )
    (tmp_path / "good.jsonl").write_text(
        "".join(dumps(r) + "\n" for r in records), encoding="utf-8"
    )
    imp = {"type": "file_import", "department": "civil_affairs", "resource": ALLOWANCES}
    exp = {"type": "file_export", "resource": ALLOWANCES}
    path = write_config(
        tmp_path,
        [
            {**imp, "name": "bad", "path": "bad.csv"},
            {**imp, "name": "good", "path": "good.jsonl", "batch_size": 128},
            {**exp, "name": "own", "department": "civil_affairs", "path": "out/own.jsonl"},
            {**exp, "name": "police", "department": "police", "path": "out/police.csv"},
        ],
    )
    (tmp_path / "out").mkdir()

    with pytest.raises(ConnectorDataError) as info:
        await run_source(path, bus, "bad")
    assert "bad.csv:202" in str(info.value)
    assert "column 'household_size'" in str(info.value)
    assert await on_topic(bus, source_topic) == []

    good = await run_source(path, bus, "good")
    assert good.finished
    assert good.progress.published == 300

    await run_source(path, bus, "own")
    exported = (tmp_path / "out" / "own.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(exported) == sorted(dumps(r) for r in records)

    deadline = time.monotonic() + 30
    while len(await on_topic(bus, topics.delivery("police", ALLOWANCES))) < 300:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)
    await run_source(path, bus, "police")
    with (tmp_path / "out" / "police.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["region_code", "updated_at"]
    expected = [[r["region_code"], json.loads(dumps({"t": r["updated_at"]}))["t"]] for r in records]
    assert sorted(rows[1:]) == sorted(expected)


async def test_a_first_load_shows_rows_of_the_estimated_total_rate_and_time_left(
    bus: Connection, loaded_catalog: Catalog, pg_schema: str, tmp_path: Path
) -> None:
    people_table(pg_schema, loaded_catalog, 250)
    pg(f"ANALYZE {pg_schema}.people")  # the estimate comes from the table's statistics
    path = write_config(
        tmp_path,
        [
            source_cfg(
                PEOPLE,
                "police",
                {"url": DB.pg_url},
                table=f"{pg_schema}.people",
                batch_size=100,
                checkpoint={"file": "state/positions.json"},
            )
        ],
    )
    src = await one(path, bus, "src")
    registry = src.metrics.registry

    def metric(name: str) -> float | None:
        return registry.get_sample_value(f"gov_exchange_connector_{name}", {"connector": "src"})

    async with src:
        assert src.progress.estimated_total == 250
        assert metric("snapshot_remaining_rows") == 250
        assert await src.step() == 100
        assert metric("snapshot_remaining_rows") == 150
        assert metric("rows_total") == 100
        src.progress.state = "running"
        line = src.progress.line("src")
        assert "first load: 100 of ~250 rows (40%)" in line, line
        assert await src.step() == 100
        eta = src.progress.eta()
        for needle in ["200 of ~250 rows (80%)", "rows/s", " left"]:
            assert needle in eta, eta
        assert src.progress.status("src").startswith("[src] first load 200 of ~250"), eta
        await src.run(idle_exit_s=0)
    assert src.progress.published == 250
    assert metric("rows_total") == 250
    assert metric("snapshot_remaining_rows") == 0
    assert src.progress.estimated_total is None  # caught up: what follows is incremental

    again = await one(path, bus, "src")  # it has a position now: no first load any more
    async with again:
        assert again.progress.estimated_total is None
        assert await again.step() == 0
