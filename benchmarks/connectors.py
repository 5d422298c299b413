"""Connector throughput beside a baseline at the real limit, on the same database, same run.

    python benchmarks/connectors.py [--rows 200000] [--batch 2000] [--only postgresql|mysql]
        [--profile] [--postgres-url postgresql://USER@HOST:PORT/DB]
        [--mariadb-url mysql://USER@HOST:PORT/]

Without a URL, a throwaway server is started for the run (``exchange/dev/databases.py``,
from the Debian packages postgresql and mariadb-server) with durable settings (fsync on),
and removed at the end. With a URL, the user needs to create schemas (PostgreSQL) or
databases (MariaDB); the password, if any, comes from PGPASSWORD / MYSQL_PWD.

For each database (the table is generated as it is written, never held in memory):

* baseline for the source: the table streamed with a server-side cursor (the same
  columns) and, for every row, a pre-encoded record of the same size produced to the
  same topic with the same acks (acks=all, waited for per batch), by the fastest path
  the client has: each record appended to its partition's record batch (Kafka's default
  partition of its key) and the batches sent whole, as the Publisher does (a ``send``
  per record costs more than the source's own work: measured, it made the source look
  faster than its baseline); no per-row Python work beyond that;
* db_source: the same rows read in keyset pages, converted, checked, Avro-encoded,
  published with acks=all, position saved after every batch (a first load);
* baseline for the sink: the delivery topic consumed and each batch written with the
  database's bulk path (PostgreSQL ``COPY``, MariaDB multi-row ``INSERT``), committed,
  offsets committed;
* db_sink: the same records (the router delivered them beforehand, untimed) decoded,
  upserted, committed, offsets committed; timed from the first record received (the
  consumer-group join is left out).

Each connector's line shows its ratio to the baseline above it and how much this
process's resident memory grew while it ran. ``--profile`` runs the connectors under
cProfile and prints where their time goes (the ratios are then not comparable).

The broker is an embedded one started here unless EXCHANGE_BOOTSTRAP_SERVERS is set.
Everything created (schemas, databases, topics' contents) is dropped at the end.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import datetime as dt
import io
import json
import os
import pstats
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# This file is named like the package it measures: when run as a script, its own
# directory comes first on sys.path and would shadow the package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import psycopg
import pymysql
import pymysql.cursors
import yaml

from connectors import runner
from connectors.config import load
from connectors.mapping import field_type
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.outbox import Outbox
from exchange.bus.partitioner import partition_of
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Prepared, Publisher
from exchange.control import catalog_store
from exchange.dev import sample
from exchange.dev.broker import given_or_embedded
from exchange.dev.databases import DatabaseServerError, ThrowawayMariaDB, ThrowawayPostgres
from exchange.router.loop import Router

RESOURCE = "enterprise_registration"  # market provides it, unconditional: hrss subscribes
ROOT = Path(__file__).resolve().parents[1]


def _sql_type(avro_type: Any, dialect: str) -> str:
    ft = field_type(avro_type)
    if ft.kind == "decimal":
        return f"numeric({ft.precision},{ft.scale})"
    if dialect == "postgresql":
        types = {"string": "text", "enum": "text", "timestamp-millis": "timestamptz"}
    else:
        types = {"string": "varchar(500)", "enum": "varchar(40)", "timestamp-millis": "datetime(3)"}
    return {"date": "date", "int": "integer", "long": "bigint", **types}[ft.kind]


class Db:
    """The bare driver, for setting up and for the baselines."""

    def __init__(self, dialect: str, url: str, database: str | None = None) -> None:
        self.dialect = dialect
        self.url = url
        self.database = database
        self.conn: Any = (
            psycopg.connect(url)
            if dialect == "postgresql"
            else self.streaming(pymysql.cursors.Cursor)
        )

    def streaming(self, cursor: Any = None) -> Any:
        parts = urlsplit(self.url)
        return pymysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 3306,
            user=parts.username or "root",
            password=os.environ.get("MYSQL_PWD", ""),
            database=self.database or parts.path.strip("/") or None,
            charset="utf8mb4",
            cursorclass=cursor or pymysql.cursors.SSCursor,
        )

    def value(self, v: Any) -> Any:
        if self.dialect == "mysql" and hasattr(v, "astimezone"):
            return v.astimezone(CHINA_TZ).replace(tzinfo=None)
        return v

    def run(self, sql: str, params: Any = None) -> list[Any]:
        with self.conn.cursor() as cur:
            cur.execute(sql, params)
            rows = list(cur.fetchall()) if cur.description else []
        self.conn.commit()
        return rows

    def many(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, rows)
        self.conn.commit()

    def bulk(self, table: str, cols: str, rows: list[tuple[Any, ...]]) -> None:
        """The database's bulk path: COPY (PostgreSQL), one multi-row INSERT (MariaDB)."""
        if self.dialect == "postgresql":
            with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            self.conn.commit()
            return
        marks = ", ".join(["%s"] * len(rows[0]))
        # PyMySQL sends an INSERT ... VALUES given to executemany as multi-row statements
        self.many(f"INSERT INTO {table} ({cols}) VALUES ({marks})", rows)  # noqa: S608

    def close(self) -> None:
        self.conn.close()


def _columns(db: Db, schema: dict[str, Any]) -> list[str]:
    return [
        f"{f['name']} {_sql_type(f['type'], db.dialect)}"
        + (" NULL" if field_type(f["type"]).nullable else " NOT NULL")
        for f in schema["fields"]
    ]


def _rows(db: Db, base: list[dict[str, Any]], names: list[str], key: str, tag: str, rows: int):  # type: ignore[no-untyped-def]
    """The table's rows, generated as they are written (never all in memory)."""
    values = [tuple(db.value(r[n]) for n in names) for r in base]
    at = names.index(key)
    for i in range(rows):
        row = values[i % len(values)]
        yield (*row[:at], f"B{tag}{i:09d}", *row[at + 1 :])


def make_table(
    db: Db,
    table: str,
    schema: dict[str, Any],
    base: list[dict[str, Any]],
    key: str,
    tag: str,
    rows: int,
) -> None:
    pg = db.dialect == "postgresql"
    cols = ["id bigserial PRIMARY KEY" if pg else "id BIGINT AUTO_INCREMENT PRIMARY KEY"]
    cols += _columns(db, schema)
    names = [f["name"] for f in schema["fields"]]
    generated = _rows(db, base, names, key, tag, rows)
    if pg:
        cols.append("changed_at timestamptz NOT NULL DEFAULT now()")
        db.run(f"CREATE TABLE {table} ({', '.join(cols)})")
        with (
            db.conn.cursor() as cur,
            cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy,
        ):
            for row in generated:
                copy.write_row(row)
        db.conn.commit()
        db.run(f"CREATE INDEX ON {table} (changed_at, id)")
        db.run(f"ANALYZE {table}")
        return
    cols.append("changed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)")
    db.run(f"CREATE TABLE {table} ({', '.join(cols)}, KEY (changed_at, id))")
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"  # noqa: S608
    chunk: list[tuple[Any, ...]] = []
    for row in generated:
        chunk.append(row)
        if len(chunk) == 5000:
            db.many(sql, chunk)
            chunk = []
    if chunk:
        db.many(sql, chunk)
    db.run(f"ANALYZE TABLE {table}")


class PeakRss:
    """Peak resident memory of this process while a block runs, above what it was before."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _rss(self) -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * self._page

    def __enter__(self) -> PeakRss:
        self._start = self._rss()
        self._peak = self._start
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self._peak = max(self._peak, self._rss())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._rss())
        self.peak_mb = (self._peak - self._start) / 1e6


async def baseline_source(
    db: Db, bus: Connection, table: str, names: list[str], key: str, batch: int, template: Prepared
) -> tuple[int, float]:
    """Stream the table with a server-side cursor (the same columns), and for every row
    produce a pre-encoded record of the same size to the same topic with acks=all,
    waiting for the batch's acknowledgements: the limit of the database and Kafka."""
    cols = ", ".join(["id", "changed_at", *names])
    sql = f"SELECT {cols} FROM {table} ORDER BY changed_at, id"  # noqa: S608
    key_at = 2 + names.index(key)
    producer = kafka.producer(bus, max_batch_size=kafka.MAX_BATCH_SIZE)
    await producer.start()
    if db.dialect == "postgresql":
        conn: Any = psycopg.connect(db.url)
        cur = conn.cursor(name="bench_stream")
    else:
        conn = db.streaming()
        cur = conn.cursor(pymysql.cursors.SSCursor)
    total = 0
    try:
        count = len(await producer.partitions_for(template.topic))
        started = time.perf_counter()
        await asyncio.to_thread(cur.execute, sql)
        while rows := await asyncio.to_thread(cur.fetchmany, batch):
            outbox = Outbox(producer)
            for row in rows:
                key = row[key_at].encode()
                outbox.add(
                    template.topic, partition_of(key, count), key, template.value, template.headers
                )
            await asyncio.gather(*await outbox.send())
            total += len(rows)
        seconds = time.perf_counter() - started
    finally:
        cur.close()
        conn.close()
        await producer.stop()
    return total, seconds


async def baseline_sink(
    db: Db,
    bus: Connection,
    table: str,
    schema: dict[str, Any],
    base: list[dict[str, Any]],
    batch: int,
    rows: int,
    group: str,
) -> float:
    """Consume the delivery topic and write each batch with the database's bulk path
    (PostgreSQL COPY, MariaDB multi-row INSERT), commit, commit the offsets."""
    names = [f["name"] for f in schema["fields"]]
    stamp = "timestamptz" if db.dialect == "postgresql" else "datetime(6)"
    db.run(
        f"CREATE TABLE {table} (k varchar(255) PRIMARY KEY, {', '.join(_columns(db, schema))}, "
        f"rid varchar(64) NOT NULL, received {stamp} NOT NULL)"
    )
    cols = ", ".join(["k", *names, "rid", "received"])
    values = [tuple(db.value(r[n]) for n in names) for r in base]
    received = db.value(dt.datetime.now(dt.UTC))
    consumer = kafka.consumer(
        bus, topics.delivery("hrss", RESOURCE), group_id=group, max_poll_records=batch
    )
    await consumer.start()
    total, i, started = 0, 0, 0.0
    seen: set[str] = set()
    try:
        while total < rows:
            fetched = await consumer.getmany(timeout_ms=500, max_records=batch)
            if not fetched:
                continue
            started = started or time.perf_counter()
            out = []
            for records in fetched.values():
                for rec in records:
                    key = rec.key.decode()
                    if key in seen or total + len(out) >= rows:
                        continue  # the few baseline records the router delivered too
                    seen.add(key)
                    out.append((key, *values[i % len(values)], "x" * 32, received))
                    i += 1
            if not out:
                continue
            await asyncio.to_thread(db.bulk, table, cols, out)
            await consumer.commit()
            total += len(out)
        return time.perf_counter() - started
    finally:
        await consumer.stop()


def _profiled(label: str, enabled: bool) -> contextlib.AbstractContextManager[Any]:
    if not enabled:
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def run() -> Any:
        prof = cProfile.Profile()
        prof.enable()
        try:
            yield
        finally:
            prof.disable()
            out = io.StringIO()
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
            print(f"\n--- profile of {label} (by own time) ---\n{out.getvalue()}", file=sys.stderr)

    return run()


async def run_source(
    loaded: Any, bus: Connection, name: str, rows: int, profile: bool
) -> tuple[float, float]:
    (source,) = await runner.build(loaded, bus, environ={}, only=[name])
    async with source:
        with PeakRss() as mem, _profiled(f"db_source {name}", profile):
            started = time.perf_counter()
            await source.run(idle_exit_s=0)
            seconds = time.perf_counter() - started
    assert source.progress.published == rows, source.progress
    return seconds, mem.peak_mb


async def run_sink(
    loaded: Any, bus: Connection, name: str, rows: int, profile: bool
) -> tuple[float, float]:
    (sink,) = await runner.build(loaded, bus, environ={}, only=[name])
    async with sink:
        while not await sink.step():
            pass  # joining the group
        with PeakRss() as mem, _profiled(f"db_sink {name}", profile):
            started = time.perf_counter()
            while sink.progress.written < rows:
                await sink.step()
            seconds = time.perf_counter() - started
    return seconds, mem.peak_mb


async def route(bus: Connection, rows: int, tag: str) -> None:
    """Deliver the source's records to hrss (untimed), once for the whole run."""
    router = Router(bus, group=f"bench-router-{tag}", master_secret=b"bench-secret-0123456789")
    await router.start()
    deadline = time.monotonic() + 1800
    while router.routed < rows:
        await router.route_once()
        assert time.monotonic() < deadline, "router too slow"
    await router.stop()


def _config(url: str, prefix: str, tag: str, batch: int) -> dict[str, Any]:
    return {
        "connectors": [
            {
                "name": f"bench-src-{tag}",
                "type": "db_source",
                "department": "market",
                "resource": RESOURCE,
                "database": {"url": url},
                "table": f"{prefix}src",
                "incremental": {"column": "changed_at", "unique_key": ["id"]},
                "batch_size": batch,
                "checkpoint": {"table": f"{prefix}checkpoints"},
            },
            {
                "name": f"bench-sink-{tag}",
                "type": "db_sink",
                "department": "hrss",
                "resource": RESOURCE,
                "database": {"url": url},
                "table": f"{prefix}sink",
                "group": f"bench-sink-{tag}",
                "batch_size": batch,
                "session_timeout_ms": 6000,
            },
        ]
    }


Result = tuple[str, int, float, float | None, float | None]  # what, rows, s, baseline s, MB


async def bench_database(
    dialect: str,
    server_url: str,
    bus: Connection,
    catalog: Catalog,
    args: argparse.Namespace,
    workdir: Path,
    routed: list[bool],
) -> list[Result]:
    rows, batch = args.rows, args.batch
    res = catalog.resource(RESOURCE)
    base = sample.generate(res.schema_, 500, seed=5)
    tag = uuid.uuid4().hex[:8]
    names = res.field_names()
    ns = f"bench_{tag}"
    admin = Db(dialect, server_url)
    if dialect == "postgresql":
        url, prefix, db = server_url, f"{ns}.", admin
        admin.run(f"CREATE SCHEMA {ns}")
    else:
        url, prefix = urlsplit(server_url)._replace(path=f"/{ns}").geturl(), ""
        admin.run(f"CREATE DATABASE {ns} CHARACTER SET utf8mb4")
        db = Db(dialect, server_url, ns)
    out: list[Result] = []
    try:
        make_table(db, f"{prefix}src", res.schema_, base, res.key, tag, rows)
        path = workdir / f"{dialect}.yaml"
        path.write_text(yaml.safe_dump(_config(url, prefix, tag, batch)))
        loaded = load(path)
        source_s, source_mb = await run_source(loaded, bus, f"bench-src-{tag}", rows, args.profile)
        if not routed:  # only the connector's records are delivered: the sinks read them
            await route(bus, rows, tag)
            routed.append(True)
        async with Publisher(bus, catalog, "market") as pub:
            template = pub.prepare(RESOURCE, base[0])
        n, stream_s = await baseline_source(
            db, bus, f"{prefix}src", names, res.key, batch, template
        )
        assert n == rows, n
        out.append(
            ("baseline: stream rows + produce pre-encoded batches", rows, stream_s, None, None)
        )
        out.append(
            ("db_source (read, validate, publish, acks)", rows, source_s, stream_s, source_mb)
        )

        bulk_s = await baseline_sink(
            db, bus, f"{prefix}plain", res.schema_, base, batch, rows, f"bench-plain-{tag}"
        )
        what = "COPY" if dialect == "postgresql" else "multi-row INSERT"
        out.append((f"baseline: consume + {what}", rows, bulk_s, None, None))
        sink_s, sink_mb = await run_sink(loaded, bus, f"bench-sink-{tag}", rows, args.profile)
        out.append(("db_sink (consume, decode, upsert, commit)", rows, sink_s, bulk_s, sink_mb))
    finally:
        if dialect == "postgresql":
            admin.run(f"DROP SCHEMA {ns} CASCADE")
        else:
            db.close()
            admin.run(f"DROP DATABASE {ns}")
        admin.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--only", choices=["postgresql", "mysql"])
    parser.add_argument(
        "--profile", action="store_true", help="profile each connector (cProfile, to stderr)"
    )
    parser.add_argument(
        "--postgres-url", help="a PostgreSQL to use (default: a throwaway one for the run)"
    )
    parser.add_argument(
        "--mariadb-url", help="a MariaDB/MySQL server to use (default: a throwaway one)"
    )
    args = parser.parse_args()
    given = os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS")
    servers = contextlib.ExitStack()
    urls = {"postgresql": args.postgres_url, "mysql": args.mariadb_url}
    try:
        for dialect, server in [("postgresql", ThrowawayPostgres), ("mysql", ThrowawayMariaDB)]:
            if not urls[dialect] and args.only in (None, dialect):
                urls[dialect] = servers.enter_context(server(fast=False)).url
    except DatabaseServerError as exc:
        servers.close()
        sys.exit(f"error: {exc}; or pass --postgres-url / --mariadb-url")
    bus, broker = given_or_embedded(given)
    try:
        catalog = load_catalog(ROOT / "schemas")
        await catalog_store.load(bus, catalog, actor="bench", unsigned_override="benchmark catalog")
        async with Department(bus, "hrss") as hrss:
            await hrss.subscribe(RESOURCE)
        results: dict[str, list[Result]] = {}
        routed: list[bool] = []
        with tempfile.TemporaryDirectory() as tmp:
            for dialect in ["postgresql", "mysql"]:
                if args.only and args.only != dialect:
                    continue
                results[dialect] = await bench_database(
                    dialect, urls[dialect], bus, catalog, args, Path(tmp), routed
                )
    finally:
        if broker is not None:
            broker.stop()
        servers.close()
    report(results, args, catalog, given)


def report(
    results: dict[str, list[Result]], args: argparse.Namespace, catalog: Catalog, given: str | None
) -> None:
    fields = len(catalog.resource(RESOURCE).fields)
    print(
        f"\n{args.rows} rows of {RESOURCE} ({fields} fields), batches of {args.batch}, "
        f"broker {'given' if given else 'embedded'}\n"
    )
    print(
        f"{'database':<11} {'what':<46} {'rows':>8} {'seconds':>8} {'rows/s':>9} "
        f"{'ratio':>6} {'peak MB':>8}"
    )
    for dialect, rows in results.items():
        name = "PostgreSQL" if dialect == "postgresql" else "MariaDB"
        for what, n, seconds, baseline, mb in rows:
            ratio = f"{baseline / seconds:.2f}" if baseline else ""
            peak = f"{mb:.0f}" if mb is not None else ""
            print(
                f"{name:<11} {what:<46} {n:>8} {seconds:>8.2f} {n / seconds:>9,.0f} "
                f"{ratio:>6} {peak:>8}"
            )
    print(
        "\nratio: the connector's rows/s divided by its baseline's (the line above it), same run;"
        "\npeak MB: growth of this process's resident memory while the connector ran"
    )
    print(
        json.dumps(
            {
                d: [
                    {"what": w, "rows": n, "seconds": round(s, 3), "peak_mb": mb and round(mb)}
                    for w, n, s, _, mb in r
                ]
                for d, r in results.items()
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
