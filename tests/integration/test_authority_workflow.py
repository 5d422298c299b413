"""The data-sharing authority in the loop, on the real broker (issue 22).

The four paths end to end (unconditional data authorised at review; conditional
data reviewed, forwarded and approved; an application returned; a refusal
contested, escalated and ordered by the authority, with records delivered under
the ordered grant), orders for not-shared fields refused, an order "from" the
authority signed with another key refused, and a stage overdue across the
National Day holiday.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client import CollectorRegistry
from routing_support import RouterRun, publish, read_topic, running_router, wait_views

from exchange.admin.users import Principals
from exchange.audit.entry import Action, AuditEntry, Decision, Draft
from exchange.audit.log import entries_only, read_log
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog import signing
from exchange.catalog.model import Catalog, Department, ShareType
from exchange.catalog.workflow import TimeLimits, Workflow
from exchange.clients.department import Department as Session
from exchange.console.accounts import AccountBook
from exchange.console.app import console_app
from exchange.console.service import ConsoleSettings
from exchange.control import catalog_store, state
from exchange.control.state import GRANT_CODEC
from exchange.dev import sample
from exchange.errors import CommandRefused
from exchange.http import server
from exchange.metrics import RouterMetrics
from exchange.router.notices import Notices
from exchange.sharing.records import AppStatus, EventKind, GrantEvent
from exchange.sharing.stages import Stage

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"  # provider health: unconditional, conditional, not shared
LICENCE = "business_licence"  # provider market: wholly unconditional
BUREAU = "data_bureau"
PASSWORD = "correct horse battery"
ACTORS = ("police", "health", "hrss", "civil_affairs", "market", BUREAU)


@pytest.fixture(scope="module")
def keys() -> dict[str, Ed25519PrivateKey]:
    return {d: Ed25519PrivateKey.generate() for d in ACTORS}


@pytest.fixture(scope="module")
async def catalog(
    bus: Connection, sample_catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> Catalog:
    """The sample catalog, the data bureau as its authority, review on, Shanxi's limits."""
    departments = {
        d: dept.model_copy(update={"public_key": signing.public_key_of(keys[d])})
        if d in keys
        else dept
        for d, dept in sample_catalog.departments.items()
    }
    departments[BUREAU] = Department(
        id=BUREAU,
        name_zh="大数据发展管理局",
        name_en="Big Data Bureau",
        code="11330000002482999X",
        public_key=signing.public_key_of(keys[BUREAU]),
        data_authority=True,
    )
    catalog = Catalog(
        departments=departments,
        resources=dict(sample_catalog.resources),
        calendar=sample_catalog.calendar,
        workflow=Workflow(
            compliance_review=True, time_limits=TimeLimits(review=2, answer=5, decision=10)
        ),
    )
    await catalog_store.load(bus, catalog, actor="tests", unsigned_override="test suite")
    return catalog


@pytest.fixture(scope="module")
async def router(bus: Connection, catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


def session(bus: Connection, keys: dict[str, Ed25519PrivateKey], dept: str) -> Session:
    return Session(bus, dept, signing_key=keys[dept])


async def entries(bus: Connection, application_id: str) -> list[AuditEntry]:
    return [e for _, e in entries_only(await read_log(bus)) if e.application_id == application_id]


def records(catalog: Catalog, resource: str, n: int, seed: int) -> list[dict[str, Any]]:
    return sample.generate(catalog.resources[resource].schema_, n, seed=seed)


async def test_unconditional_data_is_authorised_at_review_and_delivered(
    bus: Connection, catalog: Catalog, keys: dict[str, Ed25519PrivateKey], router: RouterRun
) -> None:
    fields = catalog.resources[LICENCE].field_names()[:2]
    async with session(bus, keys, "police") as police:
        app = await police.apply(LICENCE, fields=fields, purpose="企业核查 business checks")
        assert police.state.book.applications[app].stage is Stage.REVIEW
    async with session(bus, keys, BUREAU) as bureau:
        assert await bureau.review(app, passed=True) == "authorised"
    await wait_views(router, LICENCE, {"police": catalog.resources[LICENCE].field_names()})
    sent = records(catalog, LICENCE, 3, seed=22)
    await publish(bus, catalog, LICENCE, sent)
    got = await read_topic(
        bus, topics.delivery("police", LICENCE), until=lambda rs: len(rs) >= len(sent)
    )
    assert len(got) == len(sent)
    [reviewed] = [e for e in await entries(bus, app) if e.action is Action.APPLICATION_REVIEWED]
    assert (reviewed.actor, reviewed.decision) == (BUREAU, Decision.AUTHORISED)
    assert reviewed.details["stage"] == "review"
    assert reviewed.details["within_time_limit"] == "true"


async def test_conditional_data_is_reviewed_forwarded_and_approved(
    bus: Connection, catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    async with session(bus, keys, "hrss") as hrss:
        app = await hrss.apply(BMC, fields=["mother_name"], purpose="生育津贴 maternity benefit")
    async with session(bus, keys, "health") as health:
        with pytest.raises(CommandRefused, match="under compliance review"):
            await health.approve(app)
    async with session(bus, keys, BUREAU) as bureau:
        assert app in [a.id for a in bureau.applications(stage="review")]  # its inbox
        assert await bureau.review(app, passed=True) == "answer"
        assert app not in [a.id for a in bureau.applications(stage="review")]
    async with session(bus, keys, "health") as health:
        grant = await health.approve(app)
    after = await state.load(bus)
    got = after.book.applications[app]
    assert (got.stage, got.grant_id) == (Stage.APPROVED, grant)
    assert [(s["step"], s["actor"]) for s in got.path()] == [
        ("applied", "hrss"),
        ("reviewed", BUREAU),
        ("answered", "health"),
    ]
    [approved] = [e for e in await entries(bus, app) if e.action is Action.APPLICATION_APPROVED]
    # the provider's 5 working days run from the review, not from the application
    assert approved.details["time_limit_working_days"] == "5"
    assert approved.details["forwarded_at"]


async def test_an_application_returned_at_review_shows_its_reason(
    bus: Connection, catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    async with session(bus, keys, "civil_affairs") as civil:
        app = await civil.apply(BMC, fields=["father_name"], purpose="核对 checks")
    why = "超出职责范围 fields beyond the stated duty"
    async with session(bus, keys, BUREAU) as bureau:
        assert await bureau.review(app, passed=False, reason=why) == "returned"
    async with session(bus, keys, "civil_affairs") as civil:
        [mine] = [a for a in civil.applications() if a.id == app]
        assert (mine.status, mine.stage, mine.reason) == (AppStatus.RETURNED, Stage.RETURNED, why)
    async with session(bus, keys, "health") as health:
        with pytest.raises(CommandRefused, match="already answered"):
            await health.reject(app, reason="too late")


async def test_a_refusal_contested_escalated_and_ordered_is_delivered_under_the_order(
    bus: Connection, catalog: Catalog, keys: dict[str, Ed25519PrivateKey], router: RouterRun
) -> None:
    async with session(bus, keys, "police") as police:
        app = await police.apply(
            BMC, fields=["mother_name", "mother_id_number"], purpose="新生儿落户 registration"
        )
    async with session(bus, keys, BUREAU) as bureau:
        await bureau.review(app, passed=True)
    async with session(bus, keys, "health") as health:
        await health.reject(app, reason="隐私 privacy of the mother")
    async with session(bus, keys, "police") as police:
        assert await police.contest(app, reason="户籍登记法定职责 a legal duty") == "negotiation"
    async with session(bus, keys, "health") as health:
        await health.negotiate(app, message="只能提供姓名 the name only")
    async with session(bus, keys, "police") as police:
        assert await police.escalate(app, reason="协商不成 no agreement") == "escalated"
    async with session(bus, keys, BUREAU) as bureau:
        with pytest.raises(CommandRefused, match="不予共享"):
            await bureau.order(app, reason="r", fields=["birth_weight_grams"])
        grant = await bureau.order(
            app,
            reason="履职必需 needed for its duty",
            fields=["mother_name", "mother_id_number"],
            masks={"mother_id_number": "keep:6:4"},
            until=dt.date(2027, 12, 31),
        )
    async with session(bus, keys, "health") as health:
        with pytest.raises(CommandRefused, match="stands until the authority"):
            await health.revoke(grant, reason="we disagree")
        assert await health.appeal(app, reason="申请复核 please reconsider") == "ordered"
    unconditional = catalog.resources[BMC].fields_of(ShareType.UNCONDITIONAL)
    ordered = [*unconditional, "mother_name", "mother_id_number"]
    await wait_views(router, BMC, {"police": ordered})
    sent = records(catalog, BMC, 3, seed=2222)
    await publish(bus, catalog, BMC, sent)
    got = await read_topic(
        bus, topics.delivery("police", BMC), until=lambda rs: len(rs) >= len(sent)
    )
    for rec, original in zip(sorted(got, key=_cert), sorted(sent, key=_cert), strict=True):
        assert rec.value["mother_name"] == original["mother_name"]
        assert rec.value["mother_id_number"] != original["mother_id_number"]  # masked
        assert "birth_weight_grams" not in rec.value  # not shared, whatever any order says
    log = await entries(bus, app)
    [decided] = [e for e in log if e.action is Action.APPLICATION_DECIDED]
    assert (decided.actor, decided.decision, decided.grant_id) == (BUREAU, "ordered", grant)
    assert decided.details["stage"] == "escalated"
    assert decided.details["masks"] == "mother_id_number=keep:6:4"
    actions = [e.action for e in log if e.actor != "router"]
    for action in (
        Action.APPLICATION_CONTESTED,
        Action.APPLICATION_NEGOTIATED,
        Action.APPLICATION_ESCALATED,
        Action.ORDER_APPEALED,
    ):
        assert action in actions
    refused = [e for e in log if e.action is Action.COMMAND_REFUSED]
    assert {e.actor for e in refused} >= {BUREAU, "health"}


def _cert(rec: Any) -> str:
    value = rec.value if hasattr(rec, "value") else rec
    return str(value["certificate_no"])


async def test_an_order_from_the_authority_signed_with_another_key_is_refused(
    bus: Connection, catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    async with session(bus, keys, "police") as police:
        app = await police.apply(BMC, fields=["father_name"], purpose="落户 registration")
    async with session(bus, keys, BUREAU) as bureau:
        await bureau.review(app, passed=True)
    async with session(bus, keys, "health") as health:
        await health.reject(app, reason="no")
    async with session(bus, keys, "police") as police:
        await police.contest(app, reason="needed")
        await police.escalate(app, reason="no agreement")
    async with Session(bus, BUREAU, signing_key=keys["police"]) as impostor:
        with pytest.raises(CommandRefused, match="does not verify"):
            await impostor.order(app, reason="forged")
    # written straight onto the topic, past every client: refused by every reader
    forged = GrantEvent(
        kind=EventKind.ORDERED,
        actor=BUREAU,
        consumer="police",
        resource=BMC,
        application_id=app,
        grant_id="GR-FORGED-ORDER",
        fields=("father_name",),
        reason="forged",
    )
    forged = dataclasses.replace(
        forged, signature=signing.sign(keys["health"], forged.signed_fields())
    )
    async with kafka.producer(bus) as producer:
        await producer.send_and_wait(
            topics.GRANTS, key=BMC.encode(), value=GRANT_CODEC.encode(forged.to_avro())
        )
    after = await state.load(bus)
    assert "GR-FORGED-ORDER" not in after.book.grants
    assert "not signed with 'data_bureau'" in after.book.refused[forged.event_id]
    assert after.book.applications[app].stage is Stage.ESCALATED


def beijing(m: int, d: int, hh: int = 10) -> dt.datetime:
    return dt.datetime(2026, m, d, hh, tzinfo=CHINA_TZ).astimezone(dt.UTC)


async def test_a_review_is_reminded_then_overdue_across_the_national_day_holiday(
    bus: Connection, catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """Applied Wednesday 30 Sep 2026: the review's 2 working days are 8 and 9 Oct."""
    applied = GrantEvent(
        kind=EventKind.APPLIED,
        actor="market",
        consumer="market",
        resource=BMC,
        application_id="APP-20260930-holiday",
        fields=("address",),
        purpose="住所核验 address checks",
        at=beijing(9, 30),
    )
    applied = dataclasses.replace(
        applied, signature=signing.sign(keys["market"], applied.signed_fields())
    )
    async with kafka.producer(bus) as producer:
        await producer.send_and_wait(
            topics.GRANTS, key=BMC.encode(), value=GRANT_CODEC.encode(applied.to_avro())
        )
    s = await state.load(bus, from_snapshot=False)
    app = s.book.applications["APP-20260930-holiday"]
    assert app.due() == dt.date(2026, 10, 9)  # Monday to Friday alone would say 2 Oct
    drafts: list[Draft] = []
    metrics = RouterMetrics(CollectorRegistry())
    notices = Notices(s, metrics, drafts.append)
    notices.watch(beijing(10, 8))  # a working day, not the last: nothing
    assert not [d for d in drafts if d.application_id == app.id]
    notices.watch(beijing(10, 9))  # the last working day: a reminder to the authority
    notices.watch(beijing(10, 10))  # Saturday, a make-up working day: overdue
    mine = [d for d in drafts if d.application_id == app.id]
    assert [(d.action, d.details["stage"], d.details["waiting_on"]) for d in mine] == [
        (Action.APPLICATION_REMINDED, "review", BUREAU),
        (Action.APPLICATION_OVERDUE, "review", BUREAU),
    ]
    assert mine[1].details["due"] == "2026-10-09"
    sample_value = metrics.registry.get_sample_value
    assert sample_value("gov_exchange_applications_overdue", {"stage": "review"}) >= 1
    assert sample_value("gov_exchange_application_reminders_total", {"stage": "review"}) >= 1


@contextlib.asynccontextmanager
async def console_as(
    bus: Connection, principals: Principals, catalog: Catalog, tmp_path: Path, dept: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The web console with one applicant of ``dept`` logged in."""
    accounts = tmp_path / f"{dept}-accounts.yaml"
    digest = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(PASSWORD)
    accounts.write_text(
        f"accounts:\n  - user: li\n    department: {dept}\n    roles: [applicant]\n"
        f'    password_hash: "{digest}"\n',
        encoding="utf-8",
    )
    keys_dir = tmp_path / f"{dept}-keys"
    keys_dir.mkdir()
    settings = ConsoleSettings(accounts=accounts, keys_dir=keys_dir, secure_cookies=False)
    book = AccountBook.load(accounts, set(catalog.departments))
    async with (
        server.running(console_app(bus, principals.of, settings, book)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        login = await client.get("/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token
        answer = await client.post(
            "/login", data={"user": "li", "password": PASSWORD, "csrf_token": token[1]}
        )
        assert answer.status_code == 303
        yield client


async def test_the_console_shows_the_whole_path_to_the_parties_only(
    bus: Connection,
    principals: Principals,
    catalog: Catalog,
    keys: dict[str, Ed25519PrivateKey],
    tmp_path: Path,
) -> None:
    async with session(bus, keys, "civil_affairs") as civil:
        app = await civil.apply(BMC, fields=["address"], purpose="低保核查 allowance checks")
    why = "缺少法律依据 legal basis absent"
    async with session(bus, keys, BUREAU) as bureau:
        await bureau.review(app, passed=False, reason=why)
    async with console_as(bus, principals, catalog, tmp_path, "civil_affairs") as client:
        mine = await client.get("/applications")
        assert f"/applications/{app}/path" in mine.text
        page = await client.get(f"/applications/{app}/path")
        assert page.status_code == 200
        assert "已退回 returned" in page.text
        assert why in page.text
        assert BUREAU in page.text
    async with console_as(bus, principals, catalog, tmp_path, "hrss") as client:
        other = await client.get(f"/applications/{app}/path")
        assert other.status_code == 403
        assert why not in other.text


async def test_time_limits_changed_in_the_catalog_apply_to_new_applications_only(
    bus: Connection, catalog: Catalog, keys: dict[str, Ed25519PrivateKey]
) -> None:
    """Last in this module: it loads a catalog with other limits."""
    async with session(bus, keys, "hrss") as hrss:
        before = await hrss.apply(BMC, fields=["father_name"], purpose="参保核对 enrolment")
    longer = catalog.workflow.model_copy(
        update={"time_limits": TimeLimits(review=3, answer=8, decision=10)}
    )
    change = await catalog_store.load(
        bus,
        catalog.model_copy(update={"workflow": longer}),
        actor="tests",
        unsigned_override="test suite",
    )
    assert change.workflow_changed == ["time_limits.answer", "time_limits.review"]
    async with session(bus, keys, "hrss") as hrss:
        after = await hrss.apply(BMC, fields=["father_name"], purpose="参保核对 enrolment")
    book = (await state.load(bus)).book
    assert book.applications[before].limits["review"] == 2
    assert book.applications[before].limits["answer"] == 5
    assert book.applications[after].limits["review"] == 3
    assert book.applications[after].limits["answer"] == 8
