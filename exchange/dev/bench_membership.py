"""Bench: what establishing filter membership costs a router that takes its partitions.

A router that takes a source partition (a start, a rebalance) reads the keys its
row-filtered views hold from the source's current state before it routes the
partition (:mod:`exchange.router.membership_rebuild`). This measures that cost
on one embedded broker, in one run:

1. police holds a grant on ``birth_medical_certificate`` with a row filter
   (Zhejiang); ``records`` certificates with distinct keys, half of them in
   Zhejiang, are published, and a router (a fresh group) routes them live:
   the **baseline** is that live routing time, publish to the last commit;
2. the router stops; while none runs, one record of another resource with no
   filtered view (``minimum_living_allowance``) is published;
   a plain consumer then reads the source once (the second baseline: what any
   read of the current state costs);
3. a router of the same group starts: from the moment it has its partitions,
   the time to that record routed (no partition of it waits) against the
   time to police's membership established (the certificate partitions
   released), and the rebuild's read rate.

Run: ``python -m exchange.dev.bench_membership --records 200000``. The figures are
ratios against the baselines of the same run (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.control import catalog_store
from exchange.dev import preload, sample
from exchange.dev.broker import EmbeddedBroker
from exchange.router.loop import Router

BMC = "birth_medical_certificate"
OTHER = "minimum_living_allowance"
ZJ = 'region_code.startsWith("33")'
MARKER = "Z99999999900000"  # a certificate number of the template, replaced per record
SECRET = b"membership-bench-secret-0123456789"


async def _preload(bus: Connection, catalog: Catalog, records: int) -> None:
    """``records`` certificates with distinct keys, every other one in Zhejiang."""
    res = catalog.resource(BMC)
    template = sample.generate(res.schema_, 1, seed=7)[0]
    template["certificate_no"] = MARKER
    async with Publisher(bus, catalog, res.provider) as pub:
        zj = pub.prepare(BMC, {**template, "region_code": "330106"}).value
        bj = pub.prepare(BMC, {**template, "region_code": "110105"}).value
    assert zj is not None
    assert bj is not None
    marker = MARKER.encode()
    topic = topics.source(res.provider, BMC)

    def made() -> Iterator[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
        for i in range(records):
            value = zj if i % 2 == 0 else bj
            at = value.index(marker)
            key = f"Z{i:014d}".encode()
            yield key, value[:at] + key + value[at + 15 :], []

    async with kafka.producer(bus, linger_ms=20) as producer:
        await preload.send_all(producer, topic, made())


async def _routed(router: Router, count: int, timeout_s: float = 600) -> float:
    started = time.perf_counter()
    while router.routed < count:
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"{router.routed} of {count} records routed in {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.perf_counter()


async def _assigned(router: Router, timeout_s: float = 120) -> float:
    """When the router got its partitions (the group joined)."""
    started = time.perf_counter()
    while not router.assignment():
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"no partitions assigned in {timeout_s} s")
        await asyncio.sleep(0.005)
    return time.perf_counter()


async def _established(router: Router, partitions: int, timeout_s: float = 600) -> float:
    """When police's membership of every certificate partition was known."""
    routing = router.routing
    assert routing is not None
    started = time.perf_counter()
    while not all(routing.membership.known(BMC, "police", p) for p in range(partitions)):
        if time.perf_counter() - started > timeout_s:
            raise RuntimeError(f"membership not established in {timeout_s} s")
        await asyncio.sleep(0.005)
    return time.perf_counter()


async def run(records: int, catalog_dir: Path) -> None:
    broker = EmbeddedBroker()
    broker.start()
    bus = broker.connection
    try:
        catalog = load_catalog(catalog_dir)
        await catalog_store.load(bus, catalog, actor="bench", unsigned_override="benchmark")
        async with Department(bus, "police") as police, Department(bus, "health") as health:
            app = await police.apply(BMC, fields=["mother_name"], purpose="新生儿落户 registration")
            await health.approve(app, row_filter=ZJ)
        group = f"bench-membership-{uuid.uuid4().hex[:8]}"
        first = Router(bus, group=group, master_secret=SECRET, session_timeout_ms=6_000)
        await first.start()
        stop = asyncio.Event()
        task = asyncio.create_task(first.run(stop))
        t0 = time.perf_counter()
        await _preload(bus, catalog, records)
        live = await _routed(first, records) - t0
        source = topics.source(catalog.resource(BMC).provider, BMC)
        parts = len({tp for tp in first.assignment() if tp.topic == source})
        stop.set()
        await task
        await first.stop()
        t_read = time.perf_counter()
        read = len(await kafka.read_to_end(bus, source, timeout_s=600))
        plain = time.perf_counter() - t_read

        other = sample.generate(catalog.resource(OTHER).schema_, 1, seed=3)
        async with Publisher(bus, catalog, catalog.resource(OTHER).provider) as pub:
            await pub.publish(OTHER, other)
        second = Router(bus, group=group, master_secret=SECRET, session_timeout_ms=6_000)
        await second.start()
        stop = asyncio.Event()
        task = asyncio.create_task(second.run(stop))
        t1 = await _assigned(second)
        first_routed, established = await asyncio.gather(
            _routed(second, 1), _established(second, parts)
        )
        held = second.routing.membership.size() if second.routing else 0
        stop.set()
        await task
        await second.stop()
    finally:
        broker.stop()
    rebuild, unaffected = established - t1, first_routed - t1
    print(f"records on {BMC}: {records:,} in {parts} partitions; police holds {held:,} keys")
    print(f"baseline, a plain read of the source:  {plain:8.2f} s ({read / plain:,.0f} rec/s)")
    print(f"baseline, live routing of them:        {live:8.2f} s ({records / live:,.0f} rec/s)")
    print(f"partitions taken to another resource routed: {unaffected:8.2f} s")
    print(
        f"partitions taken to police's membership known: {rebuild:8.2f} s ({records / rebuild:,.0f} rec/s)"
    )
    print(f"ratio membership rebuild / plain read of the source:         {rebuild / plain:.2f}")
    print(f"ratio membership rebuild / live routing of the same records: {rebuild / live:.2f}")
    print(f"ratio taken-to-released / taken-to-first-record: {rebuild / unaffected:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000, help="certificates published")
    parser.add_argument("--catalog", type=Path, default=Path("schemas"), help="catalog folder")
    args = parser.parse_args()
    asyncio.run(run(args.records, args.catalog))


if __name__ == "__main__":
    main()
