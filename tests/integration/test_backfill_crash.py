"""A router SIGKILLed in the middle of a backfill: the one restarted finishes it.

4,000 certificates are published and routed before police is approved; the
router process delivers police's backfill in small chunks and is killed
once part of it is delivered. A new router process in the same group
resumes the same backfill after the last chunk acknowledged (it does not
start from zero): every key reaches police, and the duplicates are at most
what was in flight when it died (the at-least-once window).
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections import Counter

import pytest
from routing_support import committed_total, publish, read_raw, spawn_router, wait_for

from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.dev import sample
from exchange.router.backfill import BACKFILL
from exchange.router.backfill_state import BackfillBook

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
TOTAL = 4_000
CHUNK = 20  # records per routing round: a backfill of 200 rounds, to be killed in
IN_FLIGHT = 64 * CHUNK  # at most this many rounds are routed and not yet settled


@pytest.mark.timeout(300)
async def test_router_killed_during_a_backfill_resumes_it_without_loss(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    records = sample.generate(loaded_catalog.resources[BMC].schema_, TOTAL, seed=26)
    for i, rec in enumerate(records):
        rec["certificate_no"] = f"K{i:06d}"
    await publish(bus, loaded_catalog, BMC, records)
    group = f"crash-backfill-{uuid.uuid4().hex[:8]}"
    settings = {"EXCHANGE_ROUTER_BACKFILL_CHUNK": str(CHUNK)}
    source = topics.source("health", BMC)
    first = spawn_router(bus, group, **settings)
    book = BackfillBook(bus)
    await book.start()
    try:
        for _ in range(600):  # routed (live) before the grant: the backfill is all history
            if await committed_total(bus, group, source) >= TOTAL:
                break
            await asyncio.sleep(0.2)
        async with Department(bus, "police") as police, Department(bus, "health") as health:
            app = await police.apply(BMC, fields=["mother_name"], purpose="新生儿落户 registration")
            await health.approve(app)

        def delivered() -> int:
            return sum(p.delivered for p in book.of_view("police", BMC))

        await wait_for(lambda: delivered() > 0, within=60, what="backfill under way")
        first.send_signal(signal.SIGKILL)
        first.wait()
        at_kill = delivered()
        assert at_kill < TOTAL, "the backfill ended before the kill: nothing was tested"
        jobs_before = {p.job for p in book.of_view("police", BMC)}
        second = spawn_router(bus, group, **settings)
        try:
            await wait_for(
                lambda: all(p.state == "done" for p in book.of_view("police", BMC)),
                within=120,
                what="the backfill finished by the restarted router",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        parts = book.of_view("police", BMC)
        assert {p.job for p in parts} == jobs_before  # resumed, not started again
        assert sum(p.delivered for p in parts) == TOTAL
    finally:
        await book.stop()
        if first.poll() is None:
            first.kill()
    raw = await read_raw(bus, topics.delivery("police", BMC))
    backfilled = [r for r in raw if any(k == BACKFILL for k, _ in r.headers)]
    ids = Counter(dict(r.headers)["gov-record-id"] for r in backfilled)
    assert len(ids) == TOTAL  # every key delivered
    duplicates = sum(ids.values()) - len(ids)
    print(f"killed at {at_kill} of {TOTAL} delivered; {duplicates} duplicates after resuming")
    assert duplicates <= IN_FLIGHT  # only the at-least-once window, not a restart from zero
