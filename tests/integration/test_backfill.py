"""Backfill (全量 then 增量): a consumer approved late first gets the current state of its view.

Health publishes 5,000 birth certificates (4,000 keys, then 1,000 updates of
some of them, a few moving out of police's row filter) before police applies
and is approved. Police must then receive each key's latest record once —
only its fields, masked, only rows passing its filter — then the live
records; the not-shared canary (a value planted in a field police is not
entitled to) never appears. Then: a widened grant backfills again with the
new field; a revocation in the middle of a backfill stops it at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_support import EXCHANGE, cli_env
from routing_support import (
    MASTER_SECRET,
    RouterRun,
    publish,
    read_raw,
    read_topic,
    running_router,
    wait_for,
    wait_routed,
)

from exchange.audit.entry import Action
from exchange.audit.log import entries_only, read_log
from exchange.avro.jsoncodec import to_jsonable
from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.reader import Received
from exchange.clients.resync import request_resync, subscriptions
from exchange.dev import sample
from exchange.router import snapshot_file
from exchange.router.backfill import BACKFILL
from exchange.router.backfill_state import BackfillBook, Progress, summary
from exchange.router.snapshot import current_state

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
KEYS = 4_000
UPDATES = 1_000
CANARY = "CANARY-不予共享"
POLICE_FIELDS = ["mother_name", "mother_id_number"]
ZJ = 'region_code.startsWith("33")'


@dataclass
class Scenario:
    catalog: Catalog
    latest: dict[str, dict[str, Any]] = field(default_factory=dict)  # certificate -> record
    grant_id: str = ""


def certificates(catalog: Catalog) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """4,000 first versions, then 1,000 updates (every 4th key), as health publishes them."""
    first = sample.generate(catalog.resources[BMC].schema_, KEYS, seed=16)
    for i, rec in enumerate(first):
        rec["certificate_no"] = f"B{i:05d}"
        rec["region_code"] = "330106" if i % 3 else "110105"
        rec["father_name"] = CANARY  # conditional, never granted to police
        rec["birth_weight_grams"] = 3333  # not shared
    updates = []
    for i in range(0, KEYS, KEYS // UPDATES):
        rec = dict(first[i], child_name=f"更新{i}")
        if i % 40 == 0:  # some move out of Zhejiang: their latest record is filtered out
            rec["region_code"] = "110105"
        updates.append(rec)
    return first, updates


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


@pytest.fixture(scope="module")
async def scenario(bus: Connection, loaded_catalog: Catalog, router: RouterRun) -> Scenario:
    sc = Scenario(loaded_catalog)
    first, updates = certificates(loaded_catalog)
    await publish(bus, loaded_catalog, BMC, first)
    await publish(bus, loaded_catalog, BMC, updates)
    await wait_routed(router, KEYS + UPDATES, within=60)
    for rec in [*first, *updates]:
        sc.latest[rec["certificate_no"]] = rec
    async with Department(bus, "police") as police, Department(bus, "health") as health:
        app = await police.apply(BMC, fields=POLICE_FIELDS, purpose="新生儿落户 registration")
        sc.grant_id = await health.approve(
            app, masks={"mother_id_number": "keep:6:4"}, row_filter=ZJ
        )
    return sc


def keep(text: str, first: int, last: int) -> str:
    return text[:first] + "*" * (len(text) - first - last) + text[-last:]


def expected_keys(sc: Scenario) -> set[str]:
    return {c for c, r in sc.latest.items() if r["region_code"].startswith("33")}


async def delivered(bus: Connection, until: Any) -> list[Received]:
    topic = topics.delivery("police", BMC)
    return await read_topic(bus, topic, until=until, within=60, dedup=False)


async def test_late_consumer_gets_each_keys_latest_record_once_under_its_view_then_live(
    bus: Connection, scenario: Scenario, router: RouterRun
) -> None:
    want = expected_keys(scenario)
    got = await delivered(bus, lambda out: len(out) >= len(want))
    backfilled = [r for r in got if BACKFILL in r.headers]
    assert Counter(r.value["certificate_no"] for r in backfilled) == Counter(want)  # once each
    for rec in backfilled:
        src = scenario.latest[rec.value["certificate_no"]]
        assert rec.value["child_name"] == src["child_name"]  # the latest version
        assert set(rec.value) >= set(POLICE_FIELDS)
        assert "father_name" not in rec.value
        assert "birth_weight_grams" not in rec.value
        assert rec.value["mother_id_number"] == keep(src["mother_id_number"], 6, 4)
        assert rec.value["mother_name"] == src["mother_name"]
    # then the live records: after the backfill's, in each delivery partition
    live = sample.generate(scenario.catalog.resources[BMC].schema_, 30, seed=61)
    for i, rec in enumerate(live):
        rec.update(certificate_no=f"L{i:05d}", region_code="330106", father_name=CANARY)
    await publish(bus, scenario.catalog, BMC, live)
    got = await delivered(bus, lambda out: len(out) >= len(want) + len(live))
    by_partition: dict[int, list[Received]] = {}
    for rec in got:
        by_partition.setdefault(rec.partition, []).append(rec)
    for recs in by_partition.values():
        kinds = [BACKFILL in r.headers for r in sorted(recs, key=lambda r: r.offset)]
        assert kinds == sorted(kinds, reverse=True)  # every backfilled record first
    assert {r.value["certificate_no"] for r in got if BACKFILL not in r.headers} == {
        f"L{i:05d}" for i in range(len(live))
    }
    for raw in await read_raw(bus, topics.delivery("police", BMC)):
        assert CANARY.encode() not in raw.value  # the not-shared canary never travels


async def test_backfill_progress_and_audit(bus: Connection, scenario: Scenario) -> None:
    want = len(expected_keys(scenario))
    book = BackfillBook(bus, follow=False)

    async def progress() -> str:
        await book.start()
        try:
            return summary(book.of_view("police", BMC))
        finally:
            await book.stop()

    line = ""
    for _ in range(100):
        line = await progress()
        if line.startswith("backfill done"):
            break
        await asyncio.sleep(0.2)
    assert line == f"backfill done: {want:,} records"
    log = [e for _, e in entries_only(await read_log(bus))]
    audited = [
        e
        for e in log
        if e.action is Action.RECORDS_DELIVERED and e.details.get("kind") == "backfill"
    ]
    assert sum(int(e.details["record_count"]) for e in audited) == want
    assert {e.grant_id for e in audited} == {scenario.grant_id}
    assert all(e.details["row_filter"] == ZJ for e in audited)


async def test_widened_grant_backfills_the_new_field_for_existing_keys(
    bus: Connection, scenario: Scenario, router: RouterRun
) -> None:
    want = expected_keys(scenario)
    await delivered(bus, lambda out: len(out) >= len(want))
    async with Department(bus, "police") as police, Department(bus, "health") as health:
        app = await police.apply(
            BMC, fields=[*POLICE_FIELDS, "address"], purpose="新生儿落户 registration"
        )
        await health.approve(app, masks={"mother_id_number": "keep:6:4"}, row_filter=ZJ)

    def with_address(out: list[Received]) -> bool:
        return len({r.value["certificate_no"] for r in out if "address" in r.value}) >= len(want)

    got = await delivered(bus, with_address)
    widened = {r.value["certificate_no"]: r for r in got if "address" in r.value}
    assert set(widened) >= want
    for cert in want:
        assert widened[cert].value["address"] == scenario.latest[cert]["address"]


async def test_snapshot_file_equals_the_consumers_view_and_its_manifest_hash_matches(
    bus: Connection, scenario: Scenario, router: RouterRun, tmp_path: Path
) -> None:
    await backfills_done(bus, "police")
    got = await read_topic(bus, topics.delivery("police", BMC), idle=1.0, dedup=False)
    held: dict[str, dict[str, Any]] = {}  # what police's view holds: the latest per key
    for rec in sorted(got, key=lambda r: (r.partition, r.offset)):
        held[rec.value["certificate_no"]] = to_jsonable(rec.value)
    async with Department(bus, "police") as police:
        state = await current_state(bus, police.state, "police", BMC, MASTER_SECRET)
    path = tmp_path / "police.jsonl"
    manifest = snapshot_file.write(state, path)
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert {r["certificate_no"]: r for r in rows} == held  # record for record
    assert len(rows) == len(held) == manifest["rows"]
    assert manifest["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert manifest["row_filter"] == ZJ
    assert manifest["masks"] == {"mother_id_number": "keep:6:4"}
    assert "father_name" not in path.read_text(encoding="utf-8")
    parquet = tmp_path / "police.parquet"
    snapshot_file.write(state, parquet)
    table = pq.read_table(parquet)
    assert table.num_rows == len(held)
    assert table.schema.field("birth_date").type == pa.date32()  # typed from the view schema
    assert table.schema.names == list(state.view.view.fields)
    by_cert = {r["certificate_no"]: r for r in table.to_pylist()}
    assert {c: r["mother_id_number"] for c, r in by_cert.items()} == {
        c: r["mother_id_number"] for c, r in held.items()
    }
    csv_path = tmp_path / "police.csv"
    snapshot_file.write(state, csv_path)
    assert len(csv_path.read_text(encoding="utf-8").splitlines()) == len(held) + 1


async def test_resync_delivers_the_whole_view_again(
    bus: Connection, scenario: Scenario, router: RouterRun
) -> None:
    want = expected_keys(scenario)
    async with Department(bus, "police") as police:
        request = await request_resync(bus, police, BMC, reason="新系统上线 a new system")
        listed = {s.resource: s for s in await subscriptions(bus, police)}
    parts = await backfills_done(bus, "police", request=request)
    jobs = {p.job.encode() for p in parts}

    def resynced(out: list[Received]) -> list[str]:
        return [
            r.value["certificate_no"] for r in out if r.headers.get(BACKFILL, "").encode() in jobs
        ]

    got = await delivered(bus, lambda out: len(resynced(out)) >= len(want))
    assert set(resynced(got)) >= want
    assert sum(p.delivered for p in parts) == len(set(resynced(got)))
    assert BMC in listed
    log = [e for _, e in entries_only(await read_log(bus))]
    assert any(
        e.action is Action.RESYNC_REQUESTED and e.details.get("request") == request for e in log
    )


async def backfills_done(
    bus: Connection, consumer: str, *, request: str | None = None
) -> list[Progress]:
    """Wait until every backfill of ``consumer``'s BMC view is done (answering ``request``)."""
    book = BackfillBook(bus)
    await book.start()
    try:

        def done() -> bool:
            parts = book.of_view(consumer, BMC)
            return bool(parts) and all(
                p.state == "done" and (request is None or p.request == request) for p in parts
            )

        await wait_for(done, within=60, what=f"{consumer}'s backfills done")
        return book.of_view(consumer, BMC)
    finally:
        await book.stop()


async def test_the_commands_a_department_runs(
    bus: Connection, scenario: Scenario, tmp_path: Path
) -> None:
    """``exchange subscriptions``, ``snapshot`` (and a bad file name) as a user runs them."""
    await backfills_done(bus, "police")
    env = cli_env(bus, EXCHANGE_MASK_SECRET=MASTER_SECRET.decode())

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [EXCHANGE, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    listed = await asyncio.to_thread(cli, "subscriptions", "--as", "police")
    assert listed.returncode == 0, listed.stderr
    line = next(ln for ln in listed.stdout.splitlines() if ln.startswith(BMC))
    assert "backfill done:" in line
    out = tmp_path / "police.csv"
    done = await asyncio.to_thread(cli, "snapshot", BMC, "--as", "police", "-o", str(out))
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "police.csv.manifest.json").read_text(encoding="utf-8"))
    assert manifest["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert f"wrote {manifest['rows']} records" in done.stdout
    bad = await asyncio.to_thread(cli, "snapshot", BMC, "--as", "police", "-o", "x.xlsx")
    assert bad.returncode != 0
    assert "x.xlsx: the file name must end in .jsonl, .csv or .parquet" in bad.stderr


async def test_revocation_in_the_middle_of_a_backfill_stops_it(
    bus: Connection, scenario: Scenario, router: RouterRun
) -> None:
    """civil_affairs is approved, then revoked while its backfill is under way."""
    backfiller = router.router.backfiller
    assert backfiller is not None
    backfiller.chunk = 5  # a slow backfill, so that the revocation lands in its middle
    counter = router.router.metrics.backfilled.labels(BMC, "civil_affairs")
    topic = topics.delivery("civil_affairs", BMC)
    try:
        async with Department(bus, "civil_affairs") as civil, Department(bus, "health") as health:
            app = await civil.apply(BMC, fields=["mother_name"], purpose="婚姻登记核验")
            grant = await health.approve(app)
            await wait_for(
                lambda: counter._value.get() > 0, within=30, what="civil_affairs' backfill"
            )
            await health.revoke(grant, reason="测试 test: revoked mid-backfill")
        await wait_for(
            lambda: "civil_affairs" not in router.views(BMC), within=10, what="view gone"
        )
        at_revocation = counter._value.get()
        await asyncio.sleep(1.5)  # what the router would still deliver, it would by now
    finally:
        backfiller.chunk = 20_000
    assert counter._value.get() == at_revocation < len(scenario.latest)  # stopped short
    # nothing after it but the grant's retraction (a record without a value per partition)
    delivered = [r for r in await read_raw(bus, topic) if r.value is not None]
    assert len(delivered) == at_revocation
