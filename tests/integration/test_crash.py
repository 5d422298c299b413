"""Crash without loss: the router is SIGKILLed again and again while records stream in.

A router process is killed at random moments (at least five times) and
restarted, while a long stream of records is published to a resource with
two entitled subscribers. At the end every record id reached every
subscriber at least once; duplicates (the uncommitted tail a killed router
had already delivered) are counted and printed, and the deduplicating
reader shows each record once.

CI runs 20,000 records; ``EXCHANGE_LONG_TESTS=1`` runs 100,000.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
import uuid
from collections import Counter

import pytest
from routing_support import committed_total, spawn_router

from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader
from exchange.dev import sample

BMC = "birth_medical_certificate"
TOTAL = 100_000 if os.environ.get("EXCHANGE_LONG_TESTS") else 20_000
KILLS = 5
CHUNK = 500


@pytest.mark.timeout(900)
async def test_router_killed_repeatedly_loses_nothing(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe(BMC)
    async with Department(bus, "police") as police:
        app = await police.apply(BMC, fields=["mother_name"], purpose="落户 registration")
    async with Department(bus, "health") as health:
        await health.approve(app, masks={"mother_name": "surname"})

    group = f"crash-{uuid.uuid4().hex[:6]}"
    source = topics.source("health", BMC)
    template = sample.generate(loaded_catalog.resources[BMC].schema_, 1, seed=9)[0]
    ids: list[str] = []
    kills = 0
    router = spawn_router(bus, group)
    rng = random.Random(7)
    try:
        async with Publisher(bus, loaded_catalog, "health") as pub:
            kill_at = sorted(rng.sample(range(1, TOTAL // CHUNK), KILLS))
            for n in range(TOTAL // CHUNK):
                batch = [
                    pub.prepare(BMC, {**template, "certificate_no": f"K{n * CHUNK + i:07d}"})
                    for i in range(CHUNK)
                ]
                await pub.send(batch)
                ids.extend(p.record_id for p in batch)
                if kill_at and n == kill_at[0]:
                    kill_at.pop(0)
                    # kill a router that is working: it has joined and committed since its start
                    before = await committed_total(bus, group, source)
                    deadline = time.monotonic() + 60
                    while await committed_total(bus, group, source) <= before:
                        assert time.monotonic() < deadline, "the restarted router never routed"
                        await asyncio.sleep(0.2)
                    more = [
                        pub.prepare(BMC, {**template, "certificate_no": f"X{n:05d}-{i:04d}"})
                        for i in range(CHUNK)
                    ]
                    await pub.send(more)  # and kill it while it routes these
                    ids.extend(p.record_id for p in more)
                    await asyncio.sleep(rng.uniform(0.0, 0.05))
                    router.send_signal(signal.SIGKILL)
                    router.wait()
                    kills += 1
                    router = spawn_router(bus, group)
        # the last router finishes the stream
        deadline = time.monotonic() + 180
        while await committed_total(bus, group, source) < len(ids):
            assert router.poll() is None, "the router exited by itself"
            assert time.monotonic() < deadline, "the router did not finish the stream"
            await asyncio.sleep(0.5)
    finally:
        router.send_signal(signal.SIGTERM)
        try:
            router.wait(timeout=20)
        except subprocess.TimeoutExpired:
            router.kill()
    assert kills >= KILLS

    wanted = set(ids)
    assert len(wanted) == len(ids)
    for consumer in ("hrss", "police"):
        raw = await kafka.read_to_end(bus, topics.delivery(consumer, BMC), timeout_s=60)
        seen = Counter(dict(r.headers)["gov-record-id"].decode() for r in raw)
        lost = wanted - set(seen)
        duplicates = sum(n - 1 for rid, n in seen.items() if rid in wanted)
        print(f"{consumer}: {len(ids)} published, {kills} kills, 0 lost, {duplicates} duplicates")
        assert not lost, f"{len(lost)} records never reached {consumer}"
        # the application sees each record once
        async with Reader(bus, topics.delivery(consumer, BMC)) as reader:
            once = await reader.read(idle_timeout=2.0)
        assert {r.record_id for r in once} >= wanted
        assert len(once) == len({r.record_id for r in once})
