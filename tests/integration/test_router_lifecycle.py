"""Router, ControlFollower and AuditWriter as async context managers; stop is idempotent."""

from __future__ import annotations

import uuid

import pytest
from routing_support import MASTER_SECRET, SESSION_MS

from exchange.audit.entry import Action, Decision, Draft
from exchange.audit.log import entries_only, read_log
from exchange.audit.writer import AuditWriter
from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog
from exchange.control.state import ControlFollower, ControlState
from exchange.router.loop import Router

pytestmark = pytest.mark.integration


async def test_a_router_starts_and_stops_with_async_with(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    router = Router(
        bus,
        group=f"test-lifecycle-{uuid.uuid4().hex[:8]}",
        master_secret=MASTER_SECRET,
        session_timeout_ms=SESSION_MS,
    )
    assert not router.running
    async with router as r:
        assert r is router
        assert r.running
        assert r.state.snapshot is not None  # the control topics were read at start
        assert not r.view_table.stale  # and the views compiled
    assert not router.running
    await router.stop()  # again: nothing left to stop


async def test_a_control_follower_follows_within_async_with(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    async with ControlFollower(ControlState(bus)) as follower:
        assert follower.caught_up.is_set()
        assert follower.state.snapshot is not None
        assert follower.last_answer_ms() is not None
    assert follower.last_answer_ms() is None  # its consumer is stopped
    await follower.stop()


async def test_an_audit_writer_waits_for_its_writes_and_refuses_more_after_stop(
    bus: Connection,
) -> None:
    topic = f"test.audit.{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(bus, [topic], partitions=1)
    draft = Draft(Action.RECORDS_DELIVERED, actor="tests", decision=Decision.DELIVERED)
    async with kafka.producer(bus) as producer:
        registry = SchemaRegistry(bus)
        async with AuditWriter(producer, registry, role="tests", topic=topic) as audit:
            pending = await audit.send([draft, draft])  # not waited for here
        assert all(f.done() for f in pending.futures)  # the way out waited for them
        await audit.stop()
        with pytest.raises(RuntimeError, match="stopped"):
            await audit.send([draft])
    entries = entries_only(await read_log(bus, topic=topic))
    assert [e.seq for _, e in entries] == [0, 1]
