"""Commands that break a rule are refused with a clear reason, change nothing, and are audited.

Through the Python API on the real broker. "Nothing changed" is checked by
re-reading the control topics from the beginning: no new record on
``gov.ctl.grants``, the same grant book, the same ``explain``. "Audited" is
one new ``COMMAND_REFUSED`` (``SUBSCRIPTION_DENIED``) entry on ``gov.audit``
by the department, naming the resource, with the reason it was given.
Commands forged straight onto the topic are refused by every reader
replaying it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from refusal_support import refused_and_audited, snapshot

from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.control.state import GRANT_CODEC, load
from exchange.errors import PermissionDenied
from exchange.sharing.records import AppStatus, EventKind, GrantEvent, new_id

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
DEATH = "death_registration"


@pytest.fixture(scope="module")
async def application(bus: Connection, loaded_catalog: Catalog) -> str:
    async with Department(bus, "police") as police:
        return await police.apply(
            BMC,
            fields=["mother_name", "mother_id_number", "address"],
            purpose="新生儿落户 household registration of the newborn",
            legal_basis="《户口登记条例》第七条",
        )


async def refused(bus: Connection, actor: str, command: str, *args: Any, **kw: Any) -> str:
    """Run ``command`` about BMC as ``actor``: refused, nothing changed, the refusal audited."""
    return await refused_and_audited(bus, actor, command, *args, resource=BMC, **kw)


@pytest.mark.parametrize("actor", ["hrss", "police", "market"])
async def test_approval_by_a_non_provider_is_refused(
    bus: Connection, application: str, actor: str
) -> None:
    reason = await refused(bus, actor, "approve", application)
    assert reason == (
        f"only the provider of {BMC!r} (health) may approve its applications; {actor!r} may not"
    )


async def test_approval_of_a_not_shared_field_is_refused(bus: Connection, application: str) -> None:
    reason = await refused(
        bus,
        "health",
        "approve",
        application,
        fields=["mother_name", "birth_weight_grams"],
    )
    assert "birth_weight_grams" in reason


async def test_application_for_a_not_shared_field_is_refused(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    reason = await refused(
        bus,
        "civil_affairs",
        "apply",
        BMC,
        fields=["birth_weight_grams"],
        purpose="统计 statistics",
    )
    assert "'birth_weight_grams'" in reason
    assert "不予共享" in reason
    assert "cannot be granted by anyone" in reason


@pytest.mark.parametrize(
    ("row_filter", "expected"),
    [
        ('region_code.startsWith("33"', "row filter refused: the row filter does not compile"),
        ('province == "浙江"', "row filter refused: the row filter names 'province'"),
        ("system('ls')", "row filter refused: the row filter calls system"),
    ],
)
async def test_a_bad_row_filter_is_refused(
    bus: Connection, application: str, row_filter: str, expected: str
) -> None:
    reason = await refused(bus, "health", "approve", application, row_filter=row_filter)
    assert reason.startswith(expected), reason


async def test_an_unknown_mask_rule_is_refused(bus: Connection, application: str) -> None:
    reason = await refused(
        bus, "health", "approve", application, masks={"mother_id_number": "scramble"}
    )
    assert reason.startswith("mask on 'mother_id_number': unknown mask rule 'scramble'")
    assert "known rules: keep, replace, hash, year, surname" in reason


async def test_a_mask_on_a_field_not_granted_is_refused(bus: Connection, application: str) -> None:
    reason = await refused(
        bus, "health", "approve", application, masks={"birth_weight_grams": "replace"}
    )
    assert reason == "mask on 'birth_weight_grams': not a field this consumer receives"


async def test_an_expiry_in_the_past_is_refused(bus: Connection, application: str) -> None:
    until = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    reason = await refused(bus, "health", "approve", application, until=until)
    assert "is not in the future" in reason


async def test_widening_the_fields_is_refused(bus: Connection, application: str) -> None:
    reason = await refused(
        bus, "health", "approve", application, fields=["mother_name", "father_name"]
    )
    assert "never widen" in reason
    assert "father_name" in reason


@pytest.mark.parametrize("reason", ["", "   "])
async def test_a_rejection_without_reason_is_refused(
    bus: Connection, application: str, reason: str
) -> None:
    message = await refused(bus, "health", "reject", application, reason=reason)
    assert message == "a reason for the rejection is required"


async def test_a_rejection_by_a_non_provider_is_refused(bus: Connection, application: str) -> None:
    message = await refused(bus, "hrss", "reject", application, reason="不批")
    assert "only the provider" in message


async def test_subscribing_to_a_wholly_not_shared_resource_is_denied(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    reason = await refused_and_audited(
        bus, "police", "subscribe", DEATH, resource=DEATH, raises=PermissionDenied
    )
    assert "不予共享" in reason
    before = await snapshot(bus)
    async with Department(bus, "police") as police:
        with pytest.raises(PermissionDenied) as exc:
            await police.subscribe(DEATH)
        explained = police.explain(DEATH)
    assert "不予共享" in str(exc.value)
    assert exc.value.rule is not None
    assert "不予共享" in exc.value.rule
    assert exc.value.facts["resource"] == DEATH
    assert explained.denied == str(exc.value)
    assert explained.fields == ()
    assert await snapshot(bus) == before


async def test_forged_commands_on_the_topic_are_refused_on_replay(
    bus: Connection, application: str
) -> None:
    """Written by hand with a plain producer: every reader refuses them, nothing changes."""
    before = await snapshot(bus)
    forged = [
        GrantEvent(
            kind=EventKind.APPROVED,
            actor="police",  # the applicant approving itself
            consumer="police",
            resource=BMC,
            application_id=application,
            grant_id=new_id("GR"),
            fields=("mother_name",),
        ),
        GrantEvent(
            kind=EventKind.APPROVED,
            actor="health",
            consumer="police",
            resource=BMC,
            application_id=application,
            grant_id=new_id("GR"),
            fields=("mother_name", "gestational_weeks"),  # not shared
        ),
        GrantEvent(
            kind=EventKind.REJECTED,
            actor="health",
            consumer="police",
            resource=BMC,
            application_id=application,
            reason=None,  # no reason
        ),
        GrantEvent(kind=EventKind.SUBSCRIBED, actor="police", consumer="police", resource=DEATH),
    ]
    async with AIOKafkaProducer(**bus.client_options(), acks="all") as producer:
        for ev in forged:
            await producer.send_and_wait(
                topics.GRANTS, key=ev.resource.encode(), value=GRANT_CODEC.encode(ev.to_avro())
            )
    state = await load(bus)
    reasons = [state.book.refused.get(ev.event_id) for ev in forged]
    assert reasons[0] is not None
    assert "only the provider" in reasons[0]
    assert reasons[1] is not None
    assert "gestational_weeks" in reasons[1]
    assert reasons[2] == "a reason for the rejection is required"
    assert reasons[3] is not None
    assert "不予共享" in reasons[3]
    after = await snapshot(bus)
    assert after.grant_records == before.grant_records + len(forged)
    assert (after.grants, after.applications, after.subscriptions, after.explain) == (
        before.grants,
        before.applications,
        before.subscriptions,
        before.explain,
    )


async def test_after_all_the_refusals_the_application_is_still_pending_and_can_be_approved(
    bus: Connection, application: str
) -> None:
    state = await load(bus)
    assert state.book.applications[application].status is AppStatus.PENDING
    assert state.book.grants == {}
    async with Department(bus, "health") as health:
        gid = await health.approve(
            application,
            fields=["mother_name", "mother_id_number"],
            masks={"mother_id_number": "keep:6:4"},
            row_filter='region_code.startsWith("33")',
        )
    async with Department(bus, "police") as police:
        view = police.explain(BMC)
    assert view.grant_id == gid
    assert "mother_id_number" in view.fields
    assert view.masks == {"mother_id_number": "keep:6:4"}


async def test_revocation_without_reason_is_refused(bus: Connection) -> None:
    state = await load(bus)
    (gid,) = state.book.grants
    message = await refused(bus, "health", "revoke", gid, reason=" ")
    assert message == "a reason for the revocation is required"
    message = await refused(bus, "police", "revoke", gid, reason="我不要了")
    assert "only the provider" in message
