"""Revocation and expiry stop delivery while the router runs, without a restart.

A feeder publishes birth certificates at a steady rate (500 records/s) from
before the revocation (or expiry) to 3 s after it; a watcher reads the
consumer's delivery topic live and notes when each record arrived. Each
record's id (its certificate number) says when it was published, so the
test knows exactly which records were published after the grant ended, and
checks that none published more than 1 s later reached the consumer. The
latencies are printed (run with -s to see them).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from routing_support import RouterRun, read_topic, running_router, wait_for, wait_routed, wait_views

from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog, ShareType
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader, Received
from exchange.dev import sample
from exchange.sharing import records

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
RATE = 500  # records per second
CHUNK = 10  # records per send
AFTER_S = 3.0  # keep publishing this long after the grant ended
MARGIN_S = 1.0  # a record published later than this after the end must not be delivered


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


@dataclass
class Feeder:
    """Publishes certificates ``<prefix>000000``, ``<prefix>000001``, ... at a steady rate."""

    bus: Connection
    catalog: Catalog
    prefix: str
    sent: dict[str, float] = field(default_factory=dict)  # certificate_no -> wall time sent
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        template = sample.generate(self.catalog.resources[BMC].schema_, 1, seed=3)[0]
        loop = asyncio.get_running_loop()
        async with Publisher(self.bus, self.catalog, "health") as pub:
            start = loop.time()
            seq = 0
            while not self.stop.is_set():
                batch = []
                for _ in range(CHUNK):
                    cert = f"{self.prefix}{seq:06d}"
                    batch.append(pub.prepare(BMC, {**template, "certificate_no": cert}))
                    seq += 1
                now = time.time()
                for p in batch:
                    self.sent[p.key.decode()] = now
                await pub.send(batch)
                next_slot = start + seq / RATE
                await asyncio.sleep(max(0.0, next_slot - loop.time()))

    def rate(self) -> float:
        times = sorted(self.sent.values())
        return len(times) / (times[-1] - times[0]) if len(times) > 1 else 0.0


@dataclass
class Watcher:
    """Reads a delivery topic live; notes when each certificate arrived."""

    bus: Connection
    topic: str
    arrived: dict[str, float] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        async with Reader(self.bus, self.topic) as reader:
            while not self.stop.is_set():
                polled = cast("AsyncGenerator[list[Any], None]", reader.batches(idle_timeout=0.3))
                async with contextlib.aclosing(polled) as batches:
                    async for batch in batches:
                        now = time.time()
                        for rec in batch:
                            if isinstance(rec, Received):  # not the grant's retraction
                                self.arrived.setdefault(rec.value["certificate_no"], now)
                        if self.stop.is_set():
                            break


@dataclass
class Measured:
    end: float  # wall time the grant ended (revoke returned / valid_until)
    published_after: int
    delivered: set[str]
    late: list[str]
    missing_before: list[str]
    last_published_delivered_ms: float
    last_arrival_ms: float
    rate: float


async def measure_stop(
    bus: Connection,
    router: RouterRun,
    catalog: Catalog,
    consumer: str,
    prefix: str,
    end_grant: Any,
) -> Measured:
    """Feed records, let ``end_grant()`` end the grant (returns the end time), analyse."""
    topic = topics.delivery(consumer, BMC)
    feeder = Feeder(bus, catalog, prefix)
    watcher = Watcher(bus, topic)
    routed_before = router.router.routed
    tasks = [asyncio.create_task(feeder.run()), asyncio.create_task(watcher.run())]
    try:
        await wait_for(
            lambda: len(watcher.arrived) >= 200 or any(t.done() for t in tasks),
            within=20,
            what=f"records flowing to {consumer}",
        )
        for t in tasks:
            if t.done():
                t.result()
        end = await end_grant()
        await wait_for(
            lambda: time.time() > end + AFTER_S or any(t.done() for t in tasks),
            within=AFTER_S + 30,
            what="the feed to go on after the end of the grant",
        )
        feeder.stop.set()
        await tasks[0]
        await wait_routed(router, routed_before + len(feeder.sent))
        # every delivery of every routed record is acknowledged: the watcher sees them soon
        await asyncio.sleep(0.5)
    finally:
        feeder.stop.set()
        watcher.stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    for t in tasks:
        t.result()

    on_topic = await read_topic(bus, topic, idle=1.0)
    delivered = {r.value["certificate_no"] for r in on_topic if isinstance(r, Received)}
    delivered &= set(feeder.sent)
    assert set(watcher.arrived) & set(feeder.sent) == delivered
    first_arrival = min(watcher.arrived[c] for c in delivered)
    return Measured(
        end=end,
        published_after=sum(1 for t in feeder.sent.values() if t > end),
        delivered=delivered,
        late=sorted(c for c in delivered if feeder.sent[c] > end + MARGIN_S),
        missing_before=sorted(
            c
            for c, t in feeder.sent.items()
            if first_arrival <= t < end - MARGIN_S and c not in delivered
        ),
        last_published_delivered_ms=(max(feeder.sent[c] for c in delivered) - end) * 1000,
        last_arrival_ms=(max(watcher.arrived[c] for c in delivered) - end) * 1000,
        rate=feeder.rate(),
    )


def report(what: str, m: Measured, extra: str = "") -> None:
    print(
        f"\n{what}: fed at {m.rate:.0f} records/s; {len(m.delivered)} delivered in all, "
        f"{m.published_after} published after the end{extra}\n"
        f"  last record delivered was published {m.last_published_delivered_ms:+.0f} ms "
        f"from the end and arrived at the consumer {m.last_arrival_ms:+.0f} ms from it; "
        f"{len(m.late)} records published > {MARGIN_S * 1000:.0f} ms after the end delivered"
    )


def unconditional(catalog: Catalog) -> list[str]:
    return catalog.resources[BMC].fields_of(ShareType.UNCONDITIONAL)


async def test_revocation_stops_delivery_while_the_router_runs(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    async with Department(bus, "police") as police:
        app = await police.apply(BMC, fields=["mother_name"], purpose="落户")
    async with Department(bus, "health") as health:
        gid = await health.approve(app)
        await wait_views(router, BMC, {"police": [*unconditional(loaded_catalog), "mother_name"]})
        timing: dict[str, float] = {}

        async def revoke() -> float:
            timing["called"] = time.time()
            await health.revoke(gid, reason="落户办结 registration completed")
            timing["returned"] = time.time()
            return timing["returned"]

        m = await measure_stop(bus, router, loaded_catalog, "police", "R", revoke)

    report(
        "revocation",
        m,
        f"; revoke() took {(timing['returned'] - timing['called']) * 1000:.0f} ms",
    )
    assert m.published_after > m.rate * 1.5  # the feed really went on (2 s at its rate)
    assert m.late == [], f"delivered after the revocation: {m.late[:10]}"
    assert m.missing_before == [], f"lost while the grant was active: {m.missing_before[:10]}"
    await wait_views(router, BMC, {"police": None})
    router.check_alive()


async def test_expiry_stops_delivery_without_restart(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    async with Department(bus, "hrss") as hrss:
        app = await hrss.apply(BMC, fields=["father_name"], purpose="参保登记")
    async with Department(bus, "health") as health:
        until = records.now() + dt.timedelta(seconds=3.5)
        await health.approve(app, until=until)
    await wait_views(router, BMC, {"hrss": [*unconditional(loaded_catalog), "father_name"]})

    async def expire() -> float:
        end = until.timestamp()
        await asyncio.sleep(max(0.0, end - time.time()))  # nothing is done: it just expires
        return end

    m = await measure_stop(bus, router, loaded_catalog, "hrss", "E", expire)
    report("expiry", m, f"; valid until {until.isoformat()}")
    assert m.published_after > m.rate * 1.5
    assert m.late == [], f"delivered after the expiry: {m.late[:10]}"
    assert m.missing_before == [], f"lost while the grant was active: {m.missing_before[:10]}"
    await wait_views(router, BMC, {"hrss": None})
    router.check_alive()
