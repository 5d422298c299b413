"""Deletions reach every copy: consumers' delivery topics, their sink tables, backfills.

One router runs in this process for the module. Health publishes birth
certificates (birth_medical_certificate) that three departments receive:
police under a grant with a row filter (Zhejiang only, key in clear),
civil_affairs under a grant without one, hrss by subscription (unconditional
fields). Each test uses certificate numbers of its own. The database sink
runs on the session's PostgreSQL.

Covered: a provider's deletion reaches every consumer holding the key and
deletes the sink's row; a record moved out of a row filter is deleted for
that consumer only; a revoked grant is retracted, and the sink deletes or
freezes its rows as the approval said; a backfill after a deletion does not
bring the record back; no value reaches an audit entry of a deletion.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
import yaml
from cli_support import EXCHANGE, cli_env
from routing_support import (
    SESSION_MS,
    RouterRun,
    publish,
    read_topic,
    running_router,
    wait_for,
    wait_routed,
)

from connectors import runner
from connectors.base import Connector
from connectors.config import load
from exchange.audit.entry import Action, AuditEntry
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Deletion, Received, Retraction
from exchange.dev import sample
from exchange.dev.databases import ThrowawayMariaDB, ThrowawayPostgres

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
MLA = "minimum_living_allowance"
POP = "population_basic"
ZJ = 'region_code.startsWith("33")'
CANARY = "金丝雀CANARY"


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        async with (
            Department(bus, "police") as police,
            Department(bus, "civil_affairs") as civil,
            Department(bus, "hrss") as hrss,
            Department(bus, "health") as health,
        ):
            await hrss.subscribe(BMC)
            app = await police.apply(BMC, fields=["mother_name"], purpose="新生儿落户 registration")
            await health.approve(app, row_filter=ZJ)
            app = await civil.apply(BMC, fields=["father_name"], purpose="婚姻登记核验")
            await health.approve(app)
        await wait_for(
            lambda: (
                {"police", "civil_affairs", "hrss"} <= run.views(BMC).keys()
                and all(run.views(BMC)[d].view.grant_id for d in ("police", "civil_affairs"))
                and not run.router.view_table.stale
            ),
            within=15,
            what="the three views of birth_medical_certificate",
        )
        yield run


@pytest.fixture(scope="module")
def dsn(postgres_server: ThrowawayPostgres) -> str:
    return postgres_server.dsn


@pytest.fixture
def pg_schema(dsn: str) -> Iterator[str]:
    name = f"del_{uuid.uuid4().hex[:12]}"
    pg(dsn, f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        pg(dsn, f'DROP SCHEMA "{name}" CASCADE')


def pg(dsn: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        return cur.fetchall() if cur.description else []


def certificates(
    catalog: Catalog, prefix: str, n: int, *, region: str = "330106"
) -> list[dict[str, Any]]:
    recs = sample.generate(catalog.resources[BMC].schema_, n, seed=31)
    for i, rec in enumerate(recs):
        rec["certificate_no"] = f"{prefix}{i:04d}"
        rec["region_code"] = region
        rec["mother_name"] = f"{CANARY}{i}"
    return recs


async def sink(
    bus: Connection, tmp_path: Path, server: ThrowawayPostgres | ThrowawayMariaDB, **cfg: Any
) -> Connector:
    spec = {
        "name": "sink",
        "type": "db_sink",
        "database": {"url": server.url},
        "group": f"sink-{uuid.uuid4().hex[:8]}",
        "session_timeout_ms": SESSION_MS,
        **cfg,
    }
    path = tmp_path / "connectors.yaml"
    path.write_text(yaml.safe_dump({"connectors": [spec]}, allow_unicode=True))
    (c,) = await runner.build(load(path), bus, environ={}, only=["sink"])
    return c


async def step_until(c: Connector, done: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():
        assert time.monotonic() < deadline, f"timed out: {c.progress.line(c.name)}"
        await c.step()


async def audit_entries(
    bus: Connection, action: Action, done: Callable[[list[AuditEntry]], bool]
) -> list[AuditEntry]:
    """The audit entries of ``action``, read again until ``done`` holds for them."""
    deadline = time.monotonic() + 30
    while True:
        raw = await kafka.read_to_end(bus, topics.AUDIT)
        entries = [e for e in (AuditEntry.decode(r.value) for r in raw) if e.action is action]
        if done(entries):
            return entries
        assert time.monotonic() < deadline, f"no {action} entries as expected: {entries}"
        await asyncio.sleep(0.2)


def deletions(events: list[Any], keys: set[str]) -> dict[str, Deletion]:
    return {e.key: e for e in events if isinstance(e, Deletion) and e.key in keys}


def received(events: list[Any]) -> set[str]:
    return {e.key for e in events if isinstance(e, Received)}


def canary_free(entries: list[AuditEntry], *values: str) -> None:
    for entry in entries:
        text = json.dumps(entry.to_avro(), ensure_ascii=False, default=str)
        for value in values:
            assert value not in text, f"{value!r} in {entry.action} entry {entry.id}"


async def test_a_deletion_reaches_every_consumer_holding_the_key_and_the_sink_row_goes(
    bus: Connection,
    loaded_catalog: Catalog,
    router: RouterRun,
    tmp_path: Path,
    postgres_server: ThrowawayPostgres,
    pg_schema: str,
) -> None:
    prefix = f"D{uuid.uuid4().hex[:6]}"
    recs = certificates(loaded_catalog, prefix, 6)
    keys = [r["certificate_no"] for r in recs]
    before = router.router.routed
    await publish(bus, loaded_catalog, BMC, recs)
    await wait_routed(router, before + len(recs))

    table = f"{pg_schema}.police_births"
    police_sink = await sink(
        bus, tmp_path, postgres_server, department="police", resource=BMC, table=table
    )

    def rows() -> set[str]:
        found = pg(
            postgres_server.dsn,
            f"SELECT gov_key FROM {table} WHERE gov_key LIKE %s",
            (prefix + "%",),
        )
        return {r[0] for r in found}

    async with police_sink:
        await step_until(police_sink, lambda: rows() == set(keys))
        gone = {keys[0], keys[3]}
        async with Publisher(bus, loaded_catalog, "health") as pub:
            ids = await pub.delete(BMC, sorted(gone))
        assert len(set(ids)) == 2
        await wait_routed(router, before + len(recs) + len(gone))
        await step_until(police_sink, lambda: rows() == set(keys) - gone)

    for consumer in ("police", "civil_affairs", "hrss"):
        events = await read_topic(
            bus,
            topics.delivery(consumer, BMC),
            # a delivery topic may have several partitions, read at their own pace: the
            # records and the deletions are both waited for
            until=lambda got: deletions(got, gone).keys() == gone and received(got) >= set(keys),
        )
        found = deletions(events, gone)
        assert {d.reason for d in found.values()} == {"deleted"}, consumer
        # the records themselves were delivered before, each once, then deleted
        assert sum(1 for e in events if isinstance(e, Received) and e.key in keys) == 6, consumer

    entries = await audit_entries(
        bus,
        Action.RECORD_DELETED,
        lambda es: {e.consumer for e in es} >= {"police", "civil_affairs", "hrss"},
    )
    mine = [e for e in entries if e.resource == BMC]
    assert {e.consumer for e in mine} >= {"police", "civil_affairs", "hrss"}
    assert all(e.decision == "deleted" and e.provider == "health" for e in mine)
    # no value of the record, and no key in clear: keyed hashes only
    canary_free(mine, CANARY, *keys)


async def test_a_record_leaving_a_row_filter_is_deleted_for_that_consumer_only(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    prefix = f"L{uuid.uuid4().hex[:6]}"
    recs = certificates(loaded_catalog, prefix, 3)
    before = router.router.routed
    await publish(bus, loaded_catalog, BMC, recs)
    moved = {**recs[1], "region_code": "110105"}  # the family moved to Beijing
    await publish(bus, loaded_catalog, BMC, [moved])
    await wait_routed(router, before + 4)
    key = moved["certificate_no"]

    kept = {recs[0]["certificate_no"], recs[2]["certificate_no"]}
    police = await read_topic(
        bus,
        topics.delivery("police", BMC),
        until=lambda got: key in deletions(got, {key}) and received(got) >= kept,
    )
    assert deletions(police, {key})[key].reason == "left-view"
    assert not deletions(police, kept)
    for consumer in ("civil_affairs", "hrss"):
        got = await read_topic(
            bus,
            topics.delivery(consumer, BMC),
            until=lambda got: any(
                isinstance(e, Received) and e.key == key and e.value["region_code"] == "110105"
                for e in got
            ),
        )
        assert not deletions(got, {key}), consumer  # still in their views, updated

    entries = await audit_entries(
        bus, Action.RECORD_LEFT_VIEW, lambda es: any(e.consumer == "police" for e in es)
    )
    assert {e.consumer for e in entries} == {"police"}
    assert all(e.details["row_filter"] == ZJ for e in entries)
    canary_free(entries, CANARY, key)


async def test_a_backfill_after_a_deletion_does_not_bring_the_record_back(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    prefix = f"B{uuid.uuid4().hex[:6]}"
    recs = certificates(loaded_catalog, prefix, 4)
    keys = [r["certificate_no"] for r in recs]
    before = router.router.routed
    await publish(bus, loaded_catalog, BMC, recs)
    async with Publisher(bus, loaded_catalog, "health") as pub:
        await pub.delete(BMC, [keys[1]])
    await wait_routed(router, before + 5)

    async with Department(bus, "market") as market:  # a new subscriber: backfilled (全量)
        await market.subscribe(BMC)
    got = await read_topic(
        bus,
        topics.delivery("market", BMC),
        until=lambda got: (
            {e.key for e in got if isinstance(e, Received)} >= {keys[0], keys[2], keys[3]}
        ),
        within=30,
    )
    delivered = {e.key for e in got if isinstance(e, Received)}
    assert keys[1] not in delivered  # deleted before the backfill: never comes back


@pytest.mark.parametrize(
    ("resource", "provider", "consumer", "fields", "rule"),
    [
        (MLA, "civil_affairs", "hrss", ["certificate_no", "household_size"], "delete"),
        (POP, "police", "hrss", ["id_number", "name"], "keep-frozen"),
    ],
)
async def test_a_revoked_grant_is_retracted_and_the_sink_applies_the_approvals_rule(
    bus: Connection,
    loaded_catalog: Catalog,
    router: RouterRun,
    tmp_path: Path,
    postgres_server: ThrowawayPostgres,
    pg_schema: str,
    resource: str,
    provider: str,
    consumer: str,
    fields: list[str],
    rule: str,
) -> None:
    res = loaded_catalog.resources[resource]
    async with Department(bus, consumer) as c, Department(bus, provider) as p:
        app = await c.apply(resource, fields=fields, purpose="就业救助 assistance")
        grant = await p.approve(app, at_rest=None if rule == "delete" else rule)
    await wait_for(
        lambda: (
            consumer in router.views(resource)
            and router.views(resource)[consumer].view.grant_id == grant
        ),
        within=15,
        what="the grant's view",
    )
    recs = sample.generate(res.schema_, 5, seed=41)
    before = router.router.routed
    await publish(bus, loaded_catalog, resource, recs)
    await wait_routed(router, before + len(recs))

    table = f"{pg_schema}.{consumer}_{resource}"
    rows_sink = await sink(
        bus, tmp_path, postgres_server, department=consumer, resource=resource, table=table
    )
    dsn = postgres_server.dsn

    def count(where: str = "TRUE") -> int:
        return int(pg(dsn, f"SELECT count(*) FROM {table} WHERE {where}")[0][0])

    async with rows_sink:
        await step_until(rows_sink, lambda: count() >= len(recs))
        held = count()
        async with Department(bus, provider) as p:
            await p.revoke(grant, reason="使用完毕 purpose fulfilled")
        if rule == "delete":
            await step_until(rows_sink, lambda: count() == 0)
        else:
            marked = f"gov_retracted_grant = '{grant}' AND gov_retracted_at IS NOT NULL"
            await step_until(rows_sink, lambda: count(marked) == held)
            assert count() == held  # kept, frozen and marked
            values = pg(dsn, f"SELECT name FROM {table} WHERE name IS NOT NULL")
            assert len(values) == held  # the values are kept too

    events = await read_topic(
        bus,
        topics.delivery(consumer, resource),
        until=lambda got: any(isinstance(e, Retraction) and e.grant_id == grant for e in got),
    )
    retraction = next(e for e in events if isinstance(e, Retraction) and e.grant_id == grant)
    assert (retraction.at_rest, retraction.reason) == (rule, "revoked")
    entries = await audit_entries(
        bus, Action.GRANT_RETRACTED, lambda es: any(e.grant_id == grant for e in es)
    )
    (entry,) = [e for e in entries if e.grant_id == grant]
    assert (entry.consumer, entry.resource, entry.details["at_rest"]) == (consumer, resource, rule)


async def test_exchange_delete_on_the_command_line(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    prefix = f"C{uuid.uuid4().hex[:6]}"
    recs = certificates(loaded_catalog, prefix, 2)
    before = router.router.routed
    await publish(bus, loaded_catalog, BMC, recs)
    key = recs[0]["certificate_no"]
    run = await asyncio.to_thread(_cli, bus, "delete", "--as", "health", BMC, key)
    assert run.returncode == 0, run.stderr
    assert "deleted 1 record of birth_medical_certificate as health" in run.stdout
    await wait_routed(router, before + 3)
    got = await read_topic(
        bus, topics.delivery("hrss", BMC), until=lambda got: key in deletions(got, {key})
    )
    assert deletions(got, {key})[key].reason == "deleted"
    refused = await asyncio.to_thread(_cli, bus, "delete", "--as", "police", BMC, key)
    assert refused.returncode != 0
    assert "cannot publish" in refused.stderr
    assert "its provider is 'health'" in refused.stderr


def _cli(bus: Connection, *args: str) -> Any:
    import subprocess

    return subprocess.run(
        [EXCHANGE, *args], env=cli_env(bus), capture_output=True, text=True, timeout=60, check=False
    )


async def test_an_expired_grant_is_retracted_too(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    # long enough for the grant's view to be compiled first on a loaded Kafka lane
    until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=6)
    async with Department(bus, "market") as market, Department(bus, "health") as health:
        app = await market.apply(BMC, fields=["father_name"], purpose="个体户登记核验")
        grant = await health.approve(app, until=until, at_rest="keep-frozen")
    seen: set[str | None] = set()

    def compiled() -> bool:
        view = router.views(BMC).get("market")
        seen.add(view.view.grant_id if view is not None else None)
        return grant in seen

    await wait_for(compiled, within=6, what="the grant's view, before it expires")
    events = await read_topic(
        bus,
        topics.delivery("market", BMC),
        until=lambda got: any(isinstance(e, Retraction) and e.grant_id == grant for e in got),
        within=30,
    )
    retraction = next(e for e in events if isinstance(e, Retraction) and e.grant_id == grant)
    assert (retraction.reason, retraction.at_rest) == ("expired", "keep-frozen")
    assert dt.datetime.now(dt.UTC) >= until  # not before the grant ended
    entries = await audit_entries(
        bus, Action.GRANT_RETRACTED, lambda es: any(e.grant_id == grant for e in es)
    )
    assert [e.details["grant_status"] for e in entries if e.grant_id == grant] == ["expired"]


async def test_the_mariadb_sink_deletes_the_row_too(
    bus: Connection,
    loaded_catalog: Catalog,
    router: RouterRun,
    tmp_path: Path,
    mariadb_server: ThrowawayMariaDB,
) -> None:
    database = f"del_{uuid.uuid4().hex[:12]}"

    def my(sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        conn = pymysql.connect(
            host="127.0.0.1", port=mariadb_server.port, user="root", password="", autocommit=True
        )
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()

    my(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4")
    try:
        prefix = f"M{uuid.uuid4().hex[:6]}"
        recs = certificates(loaded_catalog, prefix, 3)
        keys = {r["certificate_no"] for r in recs}
        before = router.router.routed
        await publish(bus, loaded_catalog, BMC, recs)
        await wait_routed(router, before + len(recs))
        hrss_sink = await sink(
            bus,
            tmp_path,
            mariadb_server,
            department="hrss",
            resource=BMC,
            table="hrss_births",
            database={"url": mariadb_server.url + database, "timezone": "+08:00"},
        )

        def rows() -> set[str]:
            found = my(
                f"SELECT gov_key FROM `{database}`.hrss_births WHERE gov_key LIKE %s",
                (prefix + "%",),
            )
            return {r[0] for r in found}

        async with hrss_sink:
            await step_until(hrss_sink, lambda: rows() == keys)
            gone = sorted(keys)[1]
            async with Publisher(bus, loaded_catalog, "health") as pub:
                await pub.delete(BMC, [gone])
            await step_until(hrss_sink, lambda: rows() == keys - {gone})
    finally:
        my(f"DROP DATABASE `{database}`")
