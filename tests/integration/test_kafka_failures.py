"""Broker failures on the Kafka lane: one broker killed mid-stream, the whole cluster restarted.

Three brokers, replication factor 3, ``min.insync.replicas=2``, producers with
``acks=all`` (and idempotence). Every principal acts with its own user. Each
test prints what it saw (run with -s): records, duplicates, times.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections import Counter
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from routing_support import start_router, wait_for

from exchange.admin import acls
from exchange.admin.users import Principals
from exchange.audit.log import read_log
from exchange.audit.verify import verify
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader, Received
from exchange.control import catalog_store, state
from exchange.dev import sample
from exchange.dev.kafka import KafkaCluster

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kafka_only("kills and restarts brokers of a 3-node Apache Kafka cluster"),
    pytest.mark.timeout(600),
]

BIRTH = "birth_medical_certificate"
STREAM = 50_000
BATCH = 1_000
POLICE_FIELDS = ["mother_name", "address"]  # conditional (有条件共享): granted by health


async def _entitle(principals: Principals) -> tuple[str, set[str], set[str]]:
    """hrss subscribes (unconditional fields); police is granted three fields. Returns
    police's grant id and the fields each may receive."""
    async with Department(principals.of("hrss"), "hrss") as hrss:
        hrss_view = await hrss.subscribe(BIRTH)
    async with Department(principals.of("police"), "police") as police:
        app = await police.apply(BIRTH, fields=POLICE_FIELDS, purpose="failure test")
    async with Department(principals.of("health"), "health") as health:
        grant_id = await health.approve(app)
    async with Department(principals.of("police"), "police") as police:
        police_view = police.explain(BIRTH)
    return grant_id, set(hrss_view.delivered), set(police_view.delivered)


async def _stream(
    principals: Principals, catalog: Catalog, count: int, *, seed: int, tick: asyncio.Event
) -> list[str]:
    """Publish ``count`` birth certificates in batches; ``tick`` is set after each batch."""
    schema = catalog.resource(BIRTH).schema_
    ids: list[str] = []
    async with Publisher(principals.of("health"), catalog, "health") as pub:
        for start in range(0, count, BATCH):
            records = sample.generate(schema, min(BATCH, count - start), seed=seed + start)
            ids += await pub.publish(BIRTH, records)
            tick.set()
    return ids


async def _delivered(bus: Connection, topic: str) -> list[dict[str, Any]]:
    """Every record on a delivery topic, raw (duplicates kept), as field dicts (a revoked
    grant's retraction is an event, not a record)."""
    out: list[dict[str, Any]] = []
    async with Reader(bus, topic, dedup=False) as reader:
        async for batch in reader.batches(idle_timeout=3):
            out.extend(
                {"id": r.record_id, "fields": set(r.value)}
                for r in batch
                if isinstance(r, Received)
            )
    return out


def _check_view(got: list[dict[str, Any]], allowed: set[str]) -> tuple[int, int]:
    """(duplicates, records with a field outside the view)."""
    counts = Counter(r["id"] for r in got)
    extra = sum(1 for r in got if not r["fields"] <= allowed)
    return sum(c - 1 for c in counts.values()), extra


async def _audit_intact(bus: Connection) -> int:
    report = verify(await read_log(bus))
    assert not report.broken, [str(f) for f in report.findings[:5]]
    return report.entries


async def _wait_all(
    bus: Connection, topic: str, ids: set[str], *, within: float
) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    while True:
        got = await _delivered(bus, topic)
        if ids <= {r["id"] for r in got} or time.monotonic() > deadline:
            return got
        await asyncio.sleep(2)


async def test_one_broker_dies_mid_stream_nothing_is_lost(
    kafka_lane: KafkaCluster, bus: Connection, principals: Principals, sample_catalog: Catalog
) -> None:
    await catalog_store.load(
        principals.of(acls.ADMIN), sample_catalog, actor=acls.ADMIN, unsigned_override="test suite"
    )
    run = await start_router(principals.of(acls.ROUTER), group="gov-exchange-router")
    try:
        _, hrss_fields, police_fields = await _entitle(principals)
        tick = asyncio.Event()
        began = time.monotonic()
        stream = asyncio.create_task(_stream(principals, sample_catalog, STREAM, seed=1, tick=tick))
        await wait_for(lambda: run.router.routed >= STREAM // 5, within=120, what="a fifth routed")
        victim = 2
        killed_at = time.monotonic() - began
        kafka_lane.kill_node(victim)
        await asyncio.sleep(8)  # streaming on two brokers; the leaders moved
        assert not stream.done() or stream.exception() is None
        kafka_lane.start()  # brings the killed node back
        back_at = time.monotonic() - began
        ids = set(await stream)
        assert len(ids) == STREAM
        hrss = await _wait_all(bus, topics.delivery("hrss", BIRTH), ids, within=240)
        police = await _wait_all(bus, topics.delivery("police", BIRTH), ids, within=120)
        took = time.monotonic() - began
        run.check_alive()  # the same router all along
    finally:
        await run.stop()
    lost_h = len(ids - {r["id"] for r in hrss})
    lost_p = len(ids - {r["id"] for r in police})
    dup_h, extra_h = _check_view(hrss, hrss_fields)
    dup_p, extra_p = _check_view(police, police_fields)
    entries = await _audit_intact(bus)
    print(
        f"\n{STREAM} records through the router; broker {victim} SIGKILLed at {killed_at:.1f} s, "
        f"back at {back_at:.1f} s, all delivered after {took:.1f} s\n"
        f"hrss: {lost_h} lost, {dup_h} duplicates, {extra_h} unentitled; "
        f"police: {lost_p} lost, {dup_p} duplicates, {extra_p} unentitled; "
        f"audit: {entries} entries, chains intact; router restarts: 0"
    )
    assert (lost_h, lost_p, extra_h, extra_p) == (0, 0, 0, 0)


async def test_the_whole_cluster_restarts_with_everything_intact(
    kafka_lane: KafkaCluster, bus: Connection, principals: Principals, sample_catalog: Catalog
) -> None:
    loaded = await catalog_store.load(
        principals.of(acls.ADMIN), sample_catalog, actor=acls.ADMIN, unsigned_override="test suite"
    )
    group = "gov-exchange-router"
    run = await start_router(principals.of(acls.ROUTER), group=group)
    tick = asyncio.Event()
    try:
        grant_id, _, _ = await _entitle(principals)
        first = set(await _stream(principals, sample_catalog, 3_000, seed=7, tick=tick))
        await _wait_all(bus, topics.delivery("police", BIRTH), first, within=60)
        async with Department(principals.of("health"), "health") as health:
            await health.revoke(grant_id, reason="failure test: revoked before the restart")
        await wait_for(
            lambda: "police" not in {v.consumer for v in run.router.views.get(BIRTH, [])},
            within=30,
            what="police's view gone",
        )
        stream = asyncio.create_task(
            _stream(principals, sample_catalog, 10_000, seed=70_000, tick=tick)
        )
        # just past the first 3,000: the stop must land while the second batch still streams
        await wait_for(lambda: run.router.routed > 3_300, within=60, what="some routed")
    finally:
        await run.stop()  # mid-stream: the second batch is still being published
    second = set(await stream)  # the rest is published with no router running
    routed_before = run.router.routed
    assert routed_before < len(first | second), "the router was not stopped mid-stream"
    audit_before = await _audit_intact(bus)
    committed_before = await _committed(bus, group)

    began = time.monotonic()
    kafka_lane.stop()
    stopped = time.monotonic() - began
    kafka_lane.start()
    restarted = time.monotonic() - began - stopped

    snap = await catalog_store.current(bus)
    assert snap is not None
    assert snap.version == loaded.version
    control = await state.load(bus)
    revoked = control.book.grants[grant_id]
    assert not revoked.active(dt.datetime.now(dt.UTC)), "the revoked grant came back"
    assert await _committed(bus, group) == committed_before
    audit_after = await _audit_intact(bus)
    assert audit_after >= audit_before

    run = await start_router(principals.of(acls.ROUTER), group=group)
    try:
        hrss = await _wait_all(bus, topics.delivery("hrss", BIRTH), first | second, within=180)
    finally:
        await run.stop()
    police = await _delivered(bus, topics.delivery("police", BIRTH))
    got = {r["id"] for r in hrss}
    dup_h = len(hrss) - len(got)
    assert first | second <= got
    assert not second & {r["id"] for r in police}, "police received records after revocation"
    print(
        f"\ncluster stopped in {stopped:.1f} s, serving again after {restarted:.1f} s; "
        f"catalog version {snap.version}, grant {grant_id} still revoked, "
        f"{sum(committed_before.values())} committed source offsets and {audit_after} audit "
        f"entries (chains intact) all there\nrouter routed {routed_before} before the stop; "
        f"after it hrss has all {len(first | second)} records, {dup_h} duplicates "
        f"(dropped by record id: the at-least-once window); police none after revocation"
    )


async def _committed(bus: Connection, group: str) -> dict[str, int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(**bus.client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {f"{tp.topic}[{tp.partition}]": meta.offset for tp, meta in offsets.items()}


@pytest.mark.parametrize("idempotent", [True, False], ids=["idempotent", "plain"])
async def test_duplicates_after_a_broker_failure(
    kafka_lane: KafkaCluster, bus: Connection, idempotent: bool
) -> None:
    """A producer writes numbered records while the partition leader is SIGKILLed."""
    topic = f"gov.test.dups.{'idem' if idempotent else 'plain'}"
    await kafka.ensure_topics(bus, [topic], partitions=1)
    producer = AIOKafkaProducer(
        **bus.client_options(),
        acks="all",
        enable_idempotence=idempotent,
        linger_ms=5,
        request_timeout_ms=30_000,
        retry_backoff_ms=100,
    )
    await producer.start()
    count = 20_000
    try:
        leader = producer.client.cluster.leader_for_partition(_tp(topic)) or 1
        futures = []
        for i in range(count):
            futures.append(await producer.send(topic, str(i).encode()))
            if i == count // 4:
                kafka_lane.kill_node(leader)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    kafka_lane.start()
    values = [int(r.value) for r in await kafka.read_to_end(bus, topic, timeout_s=60)]
    seen = Counter(values)
    lost = count - len(seen)
    duplicates = len(values) - len(seen)
    in_order = values == sorted(values) if idempotent else None
    print(
        f"\n{'idempotent' if idempotent else 'plain'} producer, leader {leader} killed after "
        f"{count // 4} of {count}: {lost} lost, {duplicates} duplicates"
        + (f", order kept: {in_order}" if idempotent else "")
    )
    assert lost == 0
    if idempotent:
        assert duplicates == 0
        assert in_order


def _tp(topic: str) -> Any:
    from aiokafka import TopicPartition

    return TopicPartition(topic, 0)


@pytest.fixture(autouse=True)
def _nodes_back(kafka_lane: KafkaCluster) -> Any:
    """Whatever a test killed is running again for the next one."""
    yield
    kafka_lane.start()
