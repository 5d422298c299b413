"""Two router instances in one consumer group share the work and lose nothing.

Both run in this process with their own clients, as two processes would.
Every record published must reach the subscriber at least once; duplicates
(allowed by at-least-once delivery, dropped by the reader by record id) are
counted and printed.
"""

from __future__ import annotations

import asyncio
import collections
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from routing_support import (
    RouterRun,
    read_topic,
    start_router,
    wait_for,
    wait_routed,
    wait_views,
)

from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.dev import sample

pytestmark = pytest.mark.integration

LICENCE = "business_licence"
SOURCE = topics.source("market", LICENCE)
TOTAL = 3000


@pytest.fixture(scope="module")
async def pair(
    bus: Connection, loaded_catalog: Catalog
) -> AsyncIterator[tuple[RouterRun, RouterRun]]:
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    a = await start_router(bus, group=group, instance="router-a")
    try:
        b = await start_router(bus, group=group, instance="router-b")
        try:
            yield a, b
        finally:
            await b.stop()
    finally:
        await a.stop()


def assigned(run: RouterRun) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in run.router.assignment()}


def licences(catalog: Catalog, prefix: str, count: int) -> list[dict[str, Any]]:
    template = sample.generate(catalog.resources[LICENCE].schema_, 1, seed=31)[0]
    return [{**template, "licence_no": f"{prefix}{i:06d}"} for i in range(count)]


def duplicates(received: list[Any]) -> int:
    counts = collections.Counter(r.record_id for r in received)
    return sum(n - 1 for n in counts.values())


async def test_two_routers_share_the_partitions_and_deliver_every_record(
    bus: Connection, loaded_catalog: Catalog, pair: tuple[RouterRun, RouterRun]
) -> None:
    a, b = pair
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe(LICENCE)
    fields = loaded_catalog.resources[LICENCE].field_names()
    await wait_views(a, LICENCE, {"hrss": fields})
    await wait_views(b, LICENCE, {"hrss": fields})
    # the group has settled: each instance owns some partitions, none owns one twice
    await wait_for(
        lambda: (
            bool(assigned(a))
            and bool(assigned(b))
            and not assigned(a) & assigned(b)
            and {(SOURCE, p) for p in range(3)} <= assigned(a) | assigned(b)
        ),
        within=30,
        what="both routers to hold source partitions",
    )
    print(
        f"\nrouter-a holds {len(assigned(a))} source partitions, "
        f"router-b {len(assigned(b))}; of {SOURCE}: "
        f"a={sorted(p for t, p in assigned(a) if t == SOURCE)}, "
        f"b={sorted(p for t, p in assigned(b) if t == SOURCE)}"
    )

    before_a, before_b = a.router.routed, b.router.routed
    records = licences(loaded_catalog, "G", TOTAL)
    ids: list[str] = []
    async with Publisher(bus, loaded_catalog, "market") as pub:
        for start in range(0, TOTAL, 500):
            ids += await pub.publish(LICENCE, records[start : start + 500])
    assert len(set(ids)) == TOTAL

    await wait_for(
        lambda: a.router.routed - before_a + b.router.routed - before_b >= TOTAL,
        within=60,
        what=f"{TOTAL} records routed by the pair",
    )
    got = await read_topic(
        bus,
        topics.delivery("hrss", LICENCE),
        until=lambda out: len({r.record_id for r in out}) >= TOTAL,
        within=30,
        dedup=False,
    )
    routed_a, routed_b = a.router.routed - before_a, b.router.routed - before_b
    print(
        f"published {TOTAL}; router-a routed {routed_a}, router-b {routed_b}; "
        f"delivered {len(got)} records, {len({r.record_id for r in got})} distinct, "
        f"{duplicates(got)} duplicates"
    )
    assert {r.record_id for r in got} == set(ids)  # none lost, nothing foreign
    assert routed_a > 0
    assert routed_b > 0  # the work is shared
    a.check_alive()
    b.check_alive()


async def test_when_one_router_leaves_the_other_takes_over_without_loss(
    bus: Connection, loaded_catalog: Catalog, pair: tuple[RouterRun, RouterRun]
) -> None:
    a, b = pair
    count = 1500
    records = licences(loaded_catalog, "H", count)
    ids: list[str] = []
    stopped = asyncio.Event()

    async def feed() -> None:
        async with Publisher(bus, loaded_catalog, "market") as pub:
            for start in range(0, count, 50):
                ids.extend(await pub.publish(LICENCE, records[start : start + 50]))
                if start == count // 3:
                    stopped.set()  # a third is out: stop router-b now
                await asyncio.sleep(0.05)

    feeder = asyncio.create_task(feed())
    await stopped.wait()
    left = time.monotonic()
    await b.stop()
    takeover = await wait_for(
        lambda: {(SOURCE, p) for p in range(3)} <= assigned(a),
        within=40,
        what="router-a to take over router-b's partitions",
    )
    await feeder
    got = await read_topic(
        bus,
        topics.delivery("hrss", LICENCE),
        until=lambda out: set(ids) <= {r.record_id for r in out},
        within=45,
        dedup=False,
    )
    mine = [r for r in got if r.record_id in set(ids)]
    total = time.monotonic() - left
    print(
        f"\nrouter-b stopped after about {count // 3} of {count} records; "
        f"delivered {len(mine)} records, {len({r.record_id for r in mine})} distinct, "
        f"{duplicates(mine)} duplicates; router-a took over in {takeover:.1f} s, everything "
        f"delivered {total:.1f} s after router-b left; router-a now holds "
        f"{sorted(p for t, p in assigned(a) if t == SOURCE)} of {SOURCE}"
    )
    assert {r.record_id for r in mine} == set(ids)
    await wait_routed(a, 1)
    a.check_alive()
