"""Connector throughput beside a plain SELECT / INSERT loop on the same database, same run.

    python benchmarks/connectors.py [--rows 50000] [--batch 2000] [--only postgresql|mysql]
        [--postgres-url postgresql://USER@HOST:PORT/DB] [--mariadb-url mysql://USER@HOST:PORT/]

Without a URL, a throwaway server is started for the run (``exchange/dev/databases.py``,
from the Debian packages postgresql and mariadb-server) with durable settings (fsync on),
and removed at the end. With a URL, the user needs to create schemas (PostgreSQL) or
databases (MariaDB); the password, if any, comes from PGPASSWORD / MYSQL_PWD.

For each database:

* plain SELECT loop: keyset pagination ``WHERE (changed_at, id) > (...) ORDER BY ... LIMIT
  batch`` with the bare driver, every row fetched: what reading costs at all;
* db_source: the same rows read, converted, validated, Avro-encoded, published with
  acks=all, position saved after every batch;
* plain INSERT loop: the same rows inserted with ``executemany``, one commit per batch;
* db_sink: the same records read from the department's delivery topic (the router
  delivered them beforehand, untimed), decoded, upserted, committed, offsets committed;
  timed from the first record received (the consumer-group join is left out).

The broker is an embedded one started here unless EXCHANGE_BOOTSTRAP_SERVERS is set.
Everything created (schemas, databases, topics' contents) is dropped at the end.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
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
import yaml

from connectors import runner
from connectors.config import load
from connectors.mapping import field_type
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
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
    """The bare driver, for setting up and for the baseline loops."""

    def __init__(self, dialect: str, url: str, database: str | None = None) -> None:
        self.dialect = dialect
        if dialect == "postgresql":
            self.conn: Any = psycopg.connect(url)
        else:
            parts = urlsplit(url)
            self.conn = pymysql.connect(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 3306,
                user=parts.username or "root",
                password=os.environ.get("MYSQL_PWD", ""),
                database=database or parts.path.strip("/") or None,
                charset="utf8mb4",
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

    def close(self) -> None:
        self.conn.close()


def make_table(db: Db, table: str, schema: dict[str, Any], records: list[dict[str, Any]]) -> None:
    pg = db.dialect == "postgresql"
    cols = ["id bigserial PRIMARY KEY" if pg else "id BIGINT AUTO_INCREMENT PRIMARY KEY"]
    cols += [
        f"{f['name']} {_sql_type(f['type'], db.dialect)}"
        + (" NULL" if field_type(f["type"]).nullable else " NOT NULL")
        for f in schema["fields"]
    ]
    if pg:
        cols.append("changed_at timestamptz NOT NULL DEFAULT now()")
        db.run(f"CREATE TABLE {table} ({', '.join(cols)})")
        db.run(f"CREATE INDEX ON {table} (changed_at, id)")
    else:
        cols.append("changed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)")
        db.run(f"CREATE TABLE {table} ({', '.join(cols)}, KEY (changed_at, id))")
    names = [f["name"] for f in schema["fields"]]
    sql = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(names))})"  # noqa: S608
    for i in range(0, len(records), 5000):
        db.many(sql, [tuple(db.value(r[n]) for n in names) for r in records[i : i + 5000]])


def plain_select(db: Db, table: str, names: list[str], batch: int) -> tuple[int, float]:
    cols = ", ".join(["id", "changed_at", *names])
    first = f"SELECT {cols} FROM {table} ORDER BY changed_at, id LIMIT %s"  # noqa: S608
    if db.dialect == "postgresql":
        after = f"SELECT {cols} FROM {table} WHERE (changed_at, id) > (%s, %s) ORDER BY changed_at, id LIMIT %s"  # noqa: S608
    else:
        after = f"SELECT {cols} FROM {table} WHERE (changed_at > %s OR (changed_at = %s AND id > %s)) ORDER BY changed_at, id LIMIT %s"  # noqa: S608
    started = time.perf_counter()
    total, last = 0, None
    while True:
        if last is None:
            rows = db.run(first, (batch,))
        elif db.dialect == "postgresql":
            rows = db.run(after, (last[1], last[0], batch))
        else:
            rows = db.run(after, (last[1], last[1], last[0], batch))
        if not rows:
            break
        total += len(rows)
        last = rows[-1]
    return total, time.perf_counter() - started


def plain_insert(
    db: Db, table: str, schema: dict[str, Any], records: list[dict[str, Any]], batch: int
) -> float:
    names = [f["name"] for f in schema["fields"]]
    cols = [
        f"{n} {_sql_type(f['type'], db.dialect)}"
        for n, f in zip(names, schema["fields"], strict=True)
    ]
    db.run(f"CREATE TABLE {table} (k varchar(255) PRIMARY KEY, {', '.join(cols)})")
    sql = f"INSERT INTO {table} (k, {', '.join(names)}) VALUES ({', '.join(['%s'] * (len(names) + 1))})"  # noqa: S608
    rows = [(r["credit_code"], *(db.value(r[n]) for n in names)) for r in records]
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        db.many(sql, rows[i : i + batch])
    return time.perf_counter() - started


async def bench_database(
    dialect: str,
    server_url: str,
    bus: Connection,
    catalog: Catalog,
    rows: int,
    batch: int,
    workdir: Path,
) -> list[tuple[str, int, float, float | None]]:
    res = catalog.resource(RESOURCE)
    base = sample.generate(res.schema_, 500, seed=5)
    tag = uuid.uuid4().hex[:8]
    records = [{**base[i % len(base)], res.key: f"B{tag}{i:09d}"} for i in range(rows)]
    names = res.field_names()
    if dialect == "postgresql":
        ns, url = f"bench_{tag}", server_url
        admin = Db(dialect, server_url)
        admin.run(f"CREATE SCHEMA {ns}")
        db = admin
        prefix = f"{ns}."
    else:
        ns = f"bench_{tag}"
        url = urlsplit(server_url)._replace(path=f"/{ns}").geturl()
        admin = Db(dialect, server_url)
        admin.run(f"CREATE DATABASE {ns} CHARACTER SET utf8mb4")
        db = Db(dialect, server_url, ns)
        prefix = ""
    out: list[tuple[str, int, float, float | None]] = []
    try:
        make_table(db, f"{prefix}src", res.schema_, records)
        n, select_s = plain_select(db, f"{prefix}src", names, batch)
        assert n == rows
        out.append(("plain SELECT loop (keyset pages)", rows, select_s, None))

        group = f"bench-sink-{tag}"
        cfg = {
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
                    "group": group,
                    "batch_size": batch,
                    "session_timeout_ms": 6000,
                },
            ]
        }
        path = workdir / f"{dialect}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        loaded = load(path)
        (source,) = await runner.build(loaded, bus, environ={}, only=[f"bench-src-{tag}"])
        async with source:
            started = time.perf_counter()
            await source.run(idle_exit_s=0)
            source_s = time.perf_counter() - started
        assert source.progress.published == rows, source.progress
        out.append(("db_source (read, validate, publish, acks)", rows, source_s, select_s))

        # route everything to hrss (untimed), then time the sink alone
        router = Router(bus, group=f"bench-router-{tag}", master_secret=b"bench-secret-0123456789")
        await router.start()
        delivered = topics.delivery("hrss", RESOURCE)
        deadline = time.monotonic() + 600
        while router.routed < rows:
            await router.route_once()
            assert time.monotonic() < deadline, "router too slow"
        await router.stop()
        assert len(await kafka.read_to_end(bus, delivered, timeout_s=120)) >= rows

        insert_s = plain_insert(db, f"{prefix}plain", res.schema_, records, batch)
        out.append(("plain INSERT loop (executemany, commit)", rows, insert_s, None))

        (sink,) = await runner.build(loaded, bus, environ={}, only=[f"bench-sink-{tag}"])
        async with sink:
            while not await sink.step():
                pass  # joining the group
            started = time.perf_counter()
            while sink.progress.written < rows:
                await sink.step()
            sink_s = time.perf_counter() - started
        out.append(("db_sink (consume, decode, upsert, commit)", rows, sink_s, insert_s))
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
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--only", choices=["postgresql", "mysql"])
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
        results: dict[str, list[tuple[str, int, float, float | None]]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            for dialect in ["postgresql", "mysql"]:
                if args.only and args.only != dialect:
                    continue
                results[dialect] = await bench_database(
                    dialect, urls[dialect], bus, catalog, args.rows, args.batch, Path(tmp)
                )
    finally:
        if broker is not None:
            broker.stop()
        servers.close()
    print(
        f"\n{args.rows} rows of {RESOURCE} ({len(catalog.resource(RESOURCE).fields)} fields), batches of {args.batch}, broker {'given' if given else 'embedded'}\n"
    )
    print(
        f"{'database':<12} {'what':<44} {'rows':>8} {'seconds':>8} {'rows/s':>10} {'vs plain':>9}"
    )
    for dialect, rows in results.items():
        name = "PostgreSQL" if dialect == "postgresql" else "MariaDB"
        for what, n, seconds, baseline in rows:
            ratio = f"{baseline / seconds:.2f}" if baseline else ""
            print(f"{name:<12} {what:<44} {n:>8} {seconds:>8.2f} {n / seconds:>10,.0f} {ratio:>9}")
    print("\nvs plain: connector rows/s divided by the plain loop's rows/s on the same database")
    print(
        json.dumps(
            {
                d: [{"what": w, "rows": n, "seconds": round(s, 3)} for w, n, s, _ in r]
                for d, r in results.items()
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
