"""Isolation at the broker: each principal, with its own SCRAM credentials, can do its job only.

The router enforces the shared list, but a department holding a Kafka client
could bypass it and read topics directly. On Apache Kafka with the ACLs of
``exchange acls --apply`` the broker itself refuses it. The scenario runs the
bus as its principals do in production: the catalog loaded by
``catalog-admin``, the router as ``gov-router``, health publishing and hrss
subscribing with their own users; then every department, the auditor and the
router try what they must not do. Run with -s to see the refusals.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
)

from exchange.admin import acls
from exchange.admin.users import Principals
from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader
from exchange.control import catalog_store
from exchange.dev import sample
from exchange.errors import BrokerUnavailable
from exchange.router.loop import Router

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kafka_only("the embedded broker has no users and no ACLs"),
    pytest.mark.timeout(300),
]

BIRTH = "birth_medical_certificate"
REFUSED = (TopicAuthorizationFailedError, GroupAuthorizationFailedError)


async def read_one(bus: Connection, topic: str, *, group: str | None = None) -> str:
    """'read' if ``bus`` may fetch from ``topic``, 'refused' if the broker says no."""
    c = AIOKafkaConsumer(
        **bus.client_options(),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=10_000,
    )
    try:
        await c.start()
    except BaseException:
        await c.stop()
        raise
    await asyncio.sleep(0)  # aiokafka: a consumer stopped before its first await cannot stop
    try:
        tp = TopicPartition(topic, 0)
        c.assign([tp])
        deadline = time.monotonic() + 10
        # refused at the metadata (no Describe) or at the fetch (Describe, no Read):
        # aiokafka notes the first and raises the second from the next getmany
        while c.highwater(tp) is None:
            if topic in c._client.cluster.unauthorized_topics:
                return "refused"
            assert time.monotonic() < deadline, f"no answer about {topic} in 10 s"
            await c.getmany(tp, timeout_ms=300)
        if group is not None:
            await c.commit({tp: 0})
        return "read"
    except REFUSED:
        return "refused"
    finally:
        await c.stop()


async def write_one(bus: Connection, topic: str) -> str:
    """'written' if ``bus`` may produce to ``topic``, 'refused' if the broker says no."""
    p = AIOKafkaProducer(**bus.client_options(), acks="all", request_timeout_ms=10_000)
    await p.start()
    try:
        await p.send_and_wait(topic, b"must not be accepted", key=b"x")
        return "written"
    except REFUSED:
        return "refused"
    finally:
        await p.stop()


@dataclass
class Bus:
    catalog: Catalog
    principals: Principals
    delivery: str  # hrss's delivery topic of BIRTH
    delivered: int


@pytest.fixture(scope="module")
async def scenario(
    bus: Connection, principals: Principals, sample_catalog: Catalog
) -> AsyncIterator[Bus]:
    admin = principals.of(acls.ADMIN)
    await catalog_store.load(
        admin, sample_catalog, actor=acls.ADMIN, unsigned_override="test suite"
    )
    router = Router(
        principals.of(acls.ROUTER),
        group="gov-exchange-router",
        master_secret=b"acl-test-secret-0123456789abcdef",
        session_timeout_ms=6_000,
    )
    await router.start()
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop))
    try:
        async with Department(principals.of("hrss"), "hrss") as hrss:
            view = await hrss.subscribe(BIRTH)
        records = sample.generate(sample_catalog.resource(BIRTH).schema_, 20, seed=14)
        async with Publisher(principals.of("health"), sample_catalog, "health") as pub:
            await pub.publish(BIRTH, records)
        got: list[object] = []
        async with Reader(principals.of("hrss"), view.topic, group="hrss.acl-test") as reader:
            async for batch in reader.batches(idle_timeout=30):
                got.extend(batch)
                if len(got) >= len(records):
                    break
        assert len(got) == len(records), f"hrss got {len(got)} of {len(records)}"
        yield Bus(sample_catalog, principals, view.topic, len(got))
    finally:
        stop.set()
        await task
        await router.stop()


def other_sources(catalog: Catalog, dept: str) -> list[str]:
    return sorted(
        topics.source(r.provider, r.id) for r in catalog.resources.values() if r.provider != dept
    )


async def test_the_principals_do_their_jobs_with_their_own_users(scenario: Bus) -> None:
    """Loaded by catalog-admin, routed by gov-router, published by health, read by hrss."""
    print(
        f"\ncatalog-admin, gov-router, health and hrss each with its own user: "
        f"{scenario.delivered} records delivered to hrss"
    )


@pytest.mark.parametrize("dept", ["civil_affairs", "health", "hrss", "market", "police"])
async def test_a_department_is_confined_to_its_own_topics(scenario: Bus, dept: str) -> None:
    me = scenario.principals.of(dept)
    refused: dict[str, str] = {}
    for topic in other_sources(scenario.catalog, dept):
        refused[f"read {topic}"] = await read_one(me, topic)
        refused[f"write {topic}"] = await write_one(me, topic)
    if dept != "hrss":
        refused[f"read {scenario.delivery}"] = await read_one(me, scenario.delivery)
    refused[f"read {topics.AUDIT}"] = await read_one(me, topics.AUDIT)
    for topic in (topics.CATALOG, topics.SCHEMAS, topics.BOOK):
        refused[f"write {topic}"] = await write_one(me, topic)
    allowed = [a for a, outcome in refused.items() if outcome != "refused"]
    assert not allowed, f"{dept} was allowed: {allowed}"

    works = {
        f"read {topics.CATALOG}": await read_one(me, topics.CATALOG),
        f"read {topics.GRANTS}": await read_one(me, topics.GRANTS),
    }
    if dept == "hrss":
        works[f"read {scenario.delivery} in group hrss.*"] = await read_one(
            me, scenario.delivery, group=f"hrss.{uuid.uuid4().hex[:6]}"
        )
        refused_group = await read_one(me, scenario.delivery, group="police.steal")
        assert refused_group == "refused", "hrss used another department's consumer group"
    assert set(works.values()) == {"read"}, works
    print(f"\n{dept}: {len(refused)} attempts refused by the broker; its own topics: {works}")


async def test_the_auditor_reads_the_audit_log_only(scenario: Bus) -> None:
    auditor = scenario.principals.of(acls.AUDITOR)
    assert await read_one(auditor, topics.AUDIT, group="auditor.acl-test") == "read"
    outcomes = {
        f"read {t}": await read_one(auditor, t)
        for t in [
            *other_sources(scenario.catalog, ""),
            scenario.delivery,
            topics.GRANTS,
            topics.CATALOG,
        ]
    }
    outcomes[f"write {topics.AUDIT}"] = await write_one(auditor, topics.AUDIT)
    outcomes[f"write {topics.GRANTS}"] = await write_one(auditor, topics.GRANTS)
    assert set(outcomes.values()) == {"refused"}, outcomes
    print(f"\nauditor: reads {topics.AUDIT}; {len(outcomes)} other attempts refused")


async def test_the_router_can_route_and_nothing_more(scenario: Bus) -> None:
    router = scenario.principals.of(acls.ROUTER)
    outcomes = {
        f"write {topics.CATALOG}": await write_one(router, topics.CATALOG),
        f"write {topics.GRANTS}": await write_one(router, topics.GRANTS),
        f"write {topics.source('health', BIRTH)}": await write_one(
            router, topics.source("health", BIRTH)
        ),
        f"read {scenario.delivery}": await read_one(router, scenario.delivery),
        "read in group hrss.*": await read_one(
            router, topics.source("health", BIRTH), group="hrss.router"
        ),
    }
    assert set(outcomes.values()) == {"refused"}, outcomes
    print(f"\ngov-router: routed {scenario.delivered} records; {len(outcomes)} attempts refused")


async def test_wrong_password_is_refused(scenario: Bus) -> None:
    from exchange.bus.connection import Secret

    police = scenario.principals.of("police").as_user("police", Secret("not-the-password"))
    with pytest.raises(KafkaError):
        await read_one(police, topics.CATALOG)


async def test_a_reader_waits_for_the_router_to_make_its_delivery_topic(
    principals: Principals,
) -> None:
    """A department may not create topics: a Reader started on its delivery topic before the
    router has made it (a moment after subscribe() returned) waits for it, not refuses."""
    from exchange.bus import kafka

    hrss = principals.of("hrss")
    topic = topics.delivery(consumer="hrss", resource=f"not_yet_{uuid.uuid4().hex[:8]}")
    with pytest.raises(BrokerUnavailable, match=f"refused to create topic {topic}"):
        await kafka.ensure_topics(hrss, [topic])  # as before: refused at once

    reader = Reader(hrss, topic)
    started = asyncio.create_task(reader.start())
    await asyncio.sleep(2)
    assert not started.done(), "the reader did not wait for its delivery topic"
    await kafka.ensure_topics(principals.of(acls.ROUTER), [topic], partitions=None)
    try:
        await asyncio.wait_for(started, 30)  # once the topic is there, as the router made it
    finally:
        await reader.stop()
