"""Bench rows 7: backfill (全量) rate against live routing, and others' latency during it.

One router process (as deployed) does everything measured here:

1. dept02 subscribes to ``res069``; once the router (a fresh group) has joined,
   ``records`` records with distinct keys are published there and routed live to
   dept02: the live routing rate of one view (publish to the last commit);
2. live latency of dept01's records of the bench resource at 2,000 records/s,
   with nothing else going on (the baseline);
3. dept03 subscribes to ``res069``: the router backfills each key's latest
   record to dept03 (the same view shape as dept02's), while the latency of
   dept01's records is measured again at 2,000 records/s. The backfill rate
   is ``records`` over the time from the subscription written (its session
   already open) to the last progress record on ``gov.ctl.backfill`` (written once
   every record it reports is acknowledged).
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Callable

from exchange.bus import kafka, topics
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.dev import bench as b
from exchange.dev import sample
from exchange.dev.bench_catalog import BENCH_RESOURCE, PROVIDER, dept_id
from exchange.router.backfill_state import BackfillBook

#: the last resource of the bench catalog: the 3,600 grants of row 3 leave it without any
#: (its provider is dept14), so dept02's and dept03's views of it are new here
RESOURCE = "res069"
MARKER = "91330000BACKFILL00"  # 18 characters, as a credit code: replaced per record


async def _preload_distinct(s: b.Setup, records: int) -> str:
    """``records`` records of RESOURCE, each with its own key (credit_code); returns the topic."""
    res = s.catalog.resource(RESOURCE)
    provider = res.provider
    template = sample.generate(res.schema_, 1, seed=16)[0]
    template["credit_code"] = MARKER
    async with Publisher(s.as_(provider), s.catalog, provider) as pub:
        prepared = pub.prepare(RESOURCE, template)
    marker, value = MARKER.encode(), prepared.value
    assert value is not None  # a record, not a deletion
    at = value.index(marker)
    topic = topics.source(provider, RESOURCE)
    await kafka.ensure_topics(s.bus, [topic], partitions=3)
    async with kafka.producer(s.as_(provider), linger_ms=20) as producer:
        futures = []
        for i in range(records):
            key = f"91330{i:013d}".encode()
            body = value[:at] + key + value[at + len(key) :]
            futures.append(await producer.send(topic, key=key, value=body))
            if len(futures) >= 20_000:
                for f in futures:
                    await f
                futures = []
        for f in futures:
            await f
    return topic


async def _wait_committed(
    s: b.Setup, group: str, topic: str, total: int, proc: subprocess.Popen[bytes]
) -> None:
    """Wait until ``group`` committed ``total`` records of ``topic``."""
    async with b._CommitWatch(s.bus, group, topic) as watch:
        while await watch.total() < total:
            if proc.poll() is not None:
                raise RuntimeError("the router process exited")
            await asyncio.sleep(0.02)


async def _latency_p99(s: b.Setup, seconds: float, during: asyncio.Event | None = None) -> float:
    """p99 (ms) of dept01's bench records at 2,000/s through the running router process."""
    tag = uuid.uuid4().hex[:6]
    sent: dict[bytes, float] = {}
    got: dict[bytes, float] = {}
    stop, ready = asyncio.Event(), asyncio.Event()
    source = topics.source(PROVIDER, BENCH_RESOURCE)
    out = topics.delivery(dept_id(1), BENCH_RESOURCE)
    collector = asyncio.create_task(b._collect(s, s.as_(dept_id(1)), out, got, stop, ready))
    await asyncio.wait_for(ready.wait(), timeout=30)
    await asyncio.sleep(0.3)
    if during is not None:
        during.set()  # the caller starts what is measured "during" now
    await b._steady_publish(s, source, 2000, seconds, sent, lambda i: f"BF{tag}{i:08d}".encode())
    for _ in range(150):
        if all(k in got for k in sent):
            break
        await asyncio.sleep(0.1)
    stop.set()
    await collector
    lat = [(got[k] - t) * 1000 for k, t in sent.items() if k in got]
    if len(lat) < 0.99 * len(sent):
        raise RuntimeError(f"latency run lost records: {len(lat)} of {len(sent)} arrived")
    return b._pct(lat, 0.99)


async def rows(s: b.Setup, size: b.Sizes, step: Callable[[str], None]) -> list[b.Row]:
    """Rows 7 at ``size`` (its ``backfill`` records, its latency runs' length)."""
    return await measure(s, size.backfill, size.latency_s, step)


async def measure(
    s: b.Setup, records: int, seconds: float, step: Callable[[str], None]
) -> list[b.Row]:
    """Rows 7: backfill rate vs live rate, and dept01's p99 during a backfill vs without."""
    async with Department(s.as_(dept_id(2)), dept_id(2)) as d2:
        await d2.subscribe(RESOURCE)
    group = f"{b.GROUP_PREFIX}bf-{uuid.uuid4().hex[:8]}"
    proc = b._spawn_router(s, group)
    try:
        # joined and idle once it has routed what the bench resource holds
        bench_source = topics.source(PROVIDER, BENCH_RESOURCE)
        await _wait_committed(
            s, group, bench_source, await b._topic_total(s.bus, bench_source), proc
        )
        step(f"backfill: {records:,} records with distinct keys on {RESOURCE}, routed live")
        t0 = time.perf_counter()  # the baseline: published and routed live to one view
        topic = await _preload_distinct(s, records)
        await _wait_committed(s, group, topic, records, proc)
        live = records / (time.perf_counter() - t0)
        step(f"backfill: dept01's latency without a backfill, {seconds} s")
        quiet_p99 = await _latency_p99(s, seconds)
        step("backfill: dept03 subscribes; its backfill runs while dept01's latency is measured")
        book = BackfillBook(s.bus)
        await book.start()
        try:
            started = asyncio.Event()
            subscribed: list[float] = []

            async def subscribe_then() -> None:
                await started.wait()
                async with Department(s.as_(dept_id(3)), dept_id(3)) as d3:
                    # the clock starts as the subscription is written (wall time, as the
                    # progress records' times are): a router may apply it before the
                    # command has read it back and audited it
                    subscribed.append(time.time())
                    await d3.subscribe(RESOURCE)

            task = asyncio.create_task(subscribe_then())
            busy_p99 = await _latency_p99(s, seconds, during=started)
            await task
            deadline = time.monotonic() + 600
            while not _done(book):
                if time.monotonic() > deadline:
                    raise RuntimeError("the backfill did not finish within 10 minutes")
                await asyncio.sleep(0.05)
            # to the last progress record: written once its records were acknowledged
            finished = max(p.at for p in book.of_view(dept_id(3), RESOURCE)).timestamp()
            rate = records / (finished - subscribed[0])
        finally:
            await book.stop()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return [
        b._compared(
            f"7. backfill of {records:,} keys to one consumer",
            rate,
            "records/s",
            live,
            ">= 0.80 of live routing, same router",
            rate / live >= 0.80,
        ),
        b._compared(
            "7. others' live p99 at 2,000/s during a backfill",
            busy_p99,
            "ms",
            quiet_p99,
            "<= 2x without a backfill",
            busy_p99 <= 2 * quiet_p99,
        ),
    ]


def _done(book: BackfillBook) -> bool:
    parts = book.of_view(dept_id(3), RESOURCE)
    return bool(parts) and all(p.state == "done" for p in parts)
