"""Every accepted command has exactly one audit entry, whoever wrote it (issue 13).

A command made by a :class:`Department` is audited by it; one written straight
onto ``gov.ctl.grants`` (as the bench writes its grants) is audited by exactly
one of the routers, with two running, one stopping and one starting again.
And an application has one due date: the one of its Beijing date, in its
audit entry as in the grant book.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import types
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from routing_support import RouterRun, start_router, wait_for

from exchange.audit.entry import Action, AuditEntry
from exchange.audit.log import entries_only, read_log
from exchange.audit.writer import AuditWriter
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.control.state import GRANT_CODEC, ControlFollower, ControlState
from exchange.router import command_audit
from exchange.router.command_audit import CommandAuditor
from exchange.sharing import records
from exchange.sharing.records import EventKind, GrantEvent

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
MARRIAGE = "marriage_registration"
#: 01:30 on Monday 30 November 2026 in Beijing, still Sunday 29 November in UTC
AT_0130_BEIJING = dt.datetime(2026, 11, 29, 17, 30, tzinfo=dt.UTC)
DUE = "2026-12-14"  # 10 working days after Monday 30 Nov (after Sunday 29 Nov: 11 Dec)
GRANTS = TopicPartition(topics.GRANTS, 0)


class _Clock(dt.datetime):
    """``datetime`` whose ``now`` is :data:`AT_0130_BEIJING`."""

    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> Any:
        return AT_0130_BEIJING


@pytest.fixture
def at_0130_beijing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands are made at :data:`AT_0130_BEIJING` (the clock of their ``at``)."""
    monkeypatch.setattr(records, "dt", types.SimpleNamespace(datetime=_Clock, UTC=dt.UTC))


async def log_entries(bus: Connection) -> list[AuditEntry]:
    return [e for _, e in entries_only(await read_log(bus))]


async def grants_end(bus: Connection) -> int:
    recs = await kafka.read_to_end(bus, topics.GRANTS)
    return recs[-1].offset + 1 if recs else 0


async def audited_through(bus: Connection, group: str = command_audit.GROUP) -> int:
    """How far the routers' command audit has committed on ``gov.ctl.grants``."""
    admin = AIOKafkaAdminClient(**bus.client_options())
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=[GRANTS])
    finally:
        await admin.close()
    found = offsets.get(GRANTS)
    return found.offset if found is not None and found.offset >= 0 else 0


async def wait_audited(bus: Connection, group: str = command_audit.GROUP) -> None:
    """Until every command written so far went through a round of the command audit."""
    end = await grants_end(bus)
    deadline = time.monotonic() + 90
    while await audited_through(bus, group) < end:
        if time.monotonic() > deadline:
            raise AssertionError(f"commands up to offset {end} not audited within 90 s")
        await asyncio.sleep(0.5)


def entries_naming(log: list[AuditEntry], event_id: str) -> list[AuditEntry]:
    return [
        e for e in log if e.details.get("event_id") == event_id and e.action in AUDITING_ACTIONS
    ]


AUDITING_ACTIONS = {action for action, _ in command_audit.ENTRY_OF.values()}


async def write_straight(bus: Connection, *events: GrantEvent) -> None:
    """Onto gov.ctl.grants with a plain producer, as the bench does: no client, no entry."""
    async with kafka.producer(bus) as p:
        for ev in events:
            await p.send_and_wait(
                topics.GRANTS, key=ev.resource.encode(), value=GRANT_CODEC.encode(ev.to_avro())
            )


@pytest.fixture(scope="module")
async def routers(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[list[RouterRun]]:
    """Two routers of one group; tests may stop one and start another in the list."""
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    runs = [
        await start_router(bus, group=group, instance="router-a"),
        await start_router(bus, group=group, instance="router-b"),
    ]
    try:
        yield runs
    finally:
        for run in runs:
            await run.stop()


async def test_an_application_at_0130_beijing_has_one_due_date_in_audit_and_book(
    bus: Connection, loaded_catalog: Catalog, at_0130_beijing: None
) -> None:
    async with Department(bus, "hrss") as hrss:
        app_id = await hrss.apply(MARRIAGE, fields=["registration_no"], purpose="参保 enrolment")
        [app] = [a for a in hrss.applications() if a.id == app_id]
    assert app.applied_at == AT_0130_BEIJING
    [entry] = [
        e
        for e in await log_entries(bus)
        if e.action is Action.APPLICATION_SUBMITTED and e.application_id == app_id
    ]
    assert entry.details["due"] == app.due().isoformat() == DUE


async def test_a_command_written_straight_onto_the_topic_is_audited_once_by_two_routers(
    bus: Connection, loaded_catalog: Catalog, routers: list[RouterRun], at_0130_beijing: None
) -> None:
    subscribed = GrantEvent(kind=EventKind.SUBSCRIBED, actor="hrss", consumer="hrss", resource=BMC)
    applied = GrantEvent(
        kind=EventKind.APPLIED,
        actor="market",
        consumer="market",
        resource=MARRIAGE,
        application_id=records.new_id("APP"),
        fields=("registration_no",),
        purpose="企业登记核验 verification",
    )
    refused = GrantEvent(  # police approving for itself: refused, audited as a refusal
        kind=EventKind.APPROVED,
        actor="police",
        consumer="police",
        resource=BMC,
        application_id=applied.application_id,
        grant_id="GR-forged",
        fields=("mother_name",),
    )
    await write_straight(bus, subscribed, applied, applied, refused)  # applied retried
    await wait_audited(bus)
    log = await log_entries(bus)
    [sub] = entries_naming(log, subscribed.event_id)
    assert (sub.action, sub.actor, sub.consumer, sub.resource) == (
        Action.SUBSCRIPTION_GRANTED,
        "hrss",
        "hrss",
        BMC,
    )
    assert sub.details["noticed_by"] == command_audit.NOTICED_BY
    [app] = entries_naming(log, applied.event_id)  # once, though written twice
    assert (app.action, app.application_id, app.provider) == (
        Action.APPLICATION_SUBMITTED,
        applied.application_id,
        "civil_affairs",
    )
    book = routers[0].router.state.book
    assert app.details["due"] == book.applications[applied.application_id].due().isoformat()
    assert app.details["due"] == DUE
    assert entries_naming(log, refused.event_id) == []


async def test_commands_stay_audited_once_when_routers_stop_and_start(
    bus: Connection, loaded_catalog: Catalog, routers: list[RouterRun]
) -> None:
    events = [
        GrantEvent(kind=EventKind.SUBSCRIBED, actor=dept, consumer=dept, resource=BMC)
        for dept in ("police", "civil_affairs", "market", "health")
    ]
    group = routers[0].router.group
    await routers[0].stop()  # router-b alone
    await write_straight(bus, events[0])
    await wait_audited(bus)
    routers[0] = await start_router(bus, group=group, instance="router-a2")
    await write_straight(bus, events[1])  # router-a2 joins, router-b stays
    await wait_audited(bus)
    await wait_for(lambda: all(map(assigned, routers)), within=60, what="both routers routing")
    await routers[1].stop()  # router-a2 alone
    await write_straight(bus, events[2])
    await wait_audited(bus)
    routers[1] = await start_router(bus, group=group, instance="router-b2")
    await write_straight(bus, events[3])
    await wait_audited(bus)
    log = await log_entries(bus)
    assert [len(entries_naming(log, ev.event_id)) for ev in events] == [1, 1, 1, 1]
    counts = Counter(e.details["event_id"] for e in log if e.action in AUDITING_ACTIONS)
    assert [ev for ev, n in counts.items() if n > 1] == []  # nothing audited twice, ever


def assigned(run: RouterRun) -> bool:
    """Whether the router has source partitions (its group is not rebalancing)."""
    consumer: Any = run.router._consumer
    return consumer is not None and bool(consumer.assignment())


async def test_commands_made_by_a_department_are_not_audited_again_by_the_routers(
    bus: Connection, loaded_catalog: Catalog, routers: list[RouterRun]
) -> None:
    async with Department(bus, "police") as police:
        app_id = await police.apply(BMC, fields=["mother_name"], purpose="落户 registration")
    async with Department(bus, "health") as health:
        grant_id = await health.approve(app_id)
        await health.revoke(grant_id, reason="办结 completed")
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe("business_licence")
    await wait_audited(bus)
    log = await log_entries(bus)
    ours = [  # every command a Department wrote, in this module
        e
        for e in log
        if e.writer.startswith(("police-", "health-", "hrss-")) and "event_id" in e.details
    ]
    mine = [e for e in ours if e.application_id == app_id or e.grant_id == grant_id]
    assert {e.action for e in mine} >= {
        Action.APPLICATION_SUBMITTED,
        Action.APPLICATION_APPROVED,
        Action.GRANT_REVOKED,
    }
    for e in ours:
        assert len(entries_naming(log, e.details["event_id"])) == 1, e
    assert not [e for e in mine if "noticed_by" in e.details]


async def test_an_auditor_starting_from_scratch_finds_every_command_audited_already(
    bus: Connection, loaded_catalog: Catalog, routers: list[RouterRun]
) -> None:
    """No committed offset (a router that wrote its entries and died before committing,
    or a new group): the whole topic is read again, and the log says all is audited."""
    await wait_audited(bus)
    before = len(await log_entries(bus))
    group = f"fresh-{uuid.uuid4().hex[:6]}"
    follower = ControlFollower(ControlState(bus))
    await follower.start()
    try:
        async with kafka.producer(bus) as producer:
            writer = AuditWriter(producer, follower.state.registry, role="test")
            async with CommandAuditor(follower.state, writer, group=group, grace_s=0.5) as auditor:
                await wait_audited(bus, group)
                assert auditor.audited == 0
    finally:
        await follower.stop()
    assert len(await log_entries(bus)) == before
