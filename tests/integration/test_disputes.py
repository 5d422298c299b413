"""Disputes and corrections (疑义校核) on the real broker, through a running router.

police subscribes to birth certificates (unconditional fields); hrss holds a
grant for ``mother_name`` masked to the surname, filtered to one region;
civil_affairs holds a grant filtered to another region, so the disputed
record never reaches it. police disputes a field of a record it received;
health answers and publishes the corrected record: police and hrss get their
own view of it (with the ``gov-corrects`` header), civil_affairs nothing.
Disputes about a record or a field a department never received are refused.
No value of the record appears in any dispute entry of the access log.
Each department acts with its own principal (its own user and ACLs on the
Kafka lane).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from routing_support import RouterRun, read_topic, running_router, wait_views
from typer.testing import CliRunner

from exchange.admin.users import Principals
from exchange.audit.entry import Action, AuditEntry
from exchange.audit.log import entries_only, read_log
from exchange.avro.jsoncodec import dumps
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog, ShareType
from exchange.cli import app
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.dev import sample
from exchange.errors import CommandRefused
from exchange.sharing.dispute_records import (
    CORRECTS_HEADER,
    DISPUTE_CODEC,
    DisputeEvent,
    DisputeKind,
)

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
REGION = "110101"
OTHER_REGION = "310115"
CANARY_CHILD = "CANARYCHILD7f3a"
CANARY_MOTHER = "CANARYMOTHER9b2e"
FIXED_CHILD = "CANARYFIXED51c0"
DISPUTE_ACTIONS = {
    Action.DISPUTE_OPENED,
    Action.DISPUTE_ANSWERED,
    Action.DISPUTE_OVERDUE,
    Action.DISPUTE_CLOSED,
    Action.CORRECTION_DELIVERED,
}


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


@pytest.fixture(scope="module")
async def shared(router: RouterRun, principals: Principals, loaded_catalog: Catalog) -> str:
    """police subscribed, hrss and civil_affairs granted; one record published: its id."""
    unconditional = loaded_catalog.resources[BMC].fields_of(ShareType.UNCONDITIONAL)
    async with Department(principals.of("police"), "police") as police:
        await police.subscribe(BMC)
    async with Department(principals.of("hrss"), "hrss") as hrss:
        hrss_app = await hrss.apply(BMC, fields=["mother_name"], purpose="参保登记 enrolment")
    async with Department(principals.of("civil_affairs"), "civil_affairs") as civil:
        civil_app = await civil.apply(BMC, fields=["mother_name"], purpose="婚姻登记 marriage")
    async with Department(principals.of("health"), "health") as health:
        await health.approve(
            hrss_app, masks={"mother_name": "surname"}, row_filter=f'region_code == "{REGION}"'
        )
        await health.approve(civil_app, row_filter=f'region_code == "{OTHER_REGION}"')
    with_mother = {*unconditional, "mother_name"}
    await wait_views(
        router,
        BMC,
        {"police": unconditional, "hrss": with_mother, "civil_affairs": with_mother},
    )
    record = _record(loaded_catalog, CANARY_CHILD)
    async with Publisher(principals.of("health"), loaded_catalog, "health") as pub:
        (rid,) = await pub.publish(BMC, [record])
    for consumer in ("police", "hrss"):
        await read_topic(
            principals.of(consumer),
            topics.delivery(consumer, BMC),
            until=lambda got: any(r.record_id == rid for r in got),
        )
    return rid


def _record(catalog: Catalog, child: str) -> dict[str, object]:
    template = sample.generate(catalog.resources[BMC].schema_, 1, seed=18)[0]
    return {
        **template,
        "certificate_no": "N18DISPUTE0001",
        "child_name": child,
        "mother_name": CANARY_MOTHER,
        "region_code": REGION,
    }


async def test_the_whole_dispute_cycle_reaches_only_those_that_had_the_record(
    router: RouterRun, shared: str, principals: Principals, loaded_catalog: Catalog
) -> None:
    async with Department(principals.of("police"), "police") as police:
        dispute_id = await police.dispute(
            BMC, shared, fields=["child_name", "birth_date"], reason="出生日期与户籍登记不符"
        )
    async with Department(principals.of("health"), "health") as health:
        (inbox,) = [d for d in await health.disputes(status="open") if d.id == dispute_id]
        assert inbox.consumer == "police"
        assert inbox.fields == ("child_name", "birth_date")
        assert inbox.record_id == shared
        assert inbox.delivery.startswith(topics.delivery("police", BMC))
        answered = await health.answer_dispute(
            dispute_id, corrected=True, reason="核实有误，已更正"
        )
        assert answered.answered_in_time()
        assert [d.id for d in await health.disputes(status="open")] == []
        closed = await health.correct(dispute_id, _record(loaded_catalog, FIXED_CHILD))
    assert closed.corrected_record_id is not None
    fixed = closed.corrected_record_id

    got = {}
    for consumer in ("police", "hrss"):
        records = await read_topic(
            principals.of(consumer),
            topics.delivery(consumer, BMC),
            until=lambda rs: any(r.record_id == fixed for r in rs),
        )
        (got[consumer],) = [r for r in records if r.record_id == fixed]
    assert got["police"].headers[CORRECTS_HEADER] == dispute_id
    assert got["police"].value["child_name"] == FIXED_CHILD
    assert "mother_name" not in got["police"].value  # police's view: unconditional fields
    assert got["hrss"].headers[CORRECTS_HEADER] == dispute_id
    assert got["hrss"].value["mother_name"] != CANARY_MOTHER  # hrss's view: masked

    async def delivered_to() -> set[str | None]:
        log = entries_only(await read_log(router.router.bus))
        return {
            e.consumer
            for _, e in log
            if e.action is Action.CORRECTION_DELIVERED and e.details["dispute_id"] == dispute_id
        }

    consumers: set[str | None] = set()

    async def poll() -> None:
        consumers.update(await delivered_to())

    await wait_for_async(poll, lambda: consumers == {"police", "hrss"}, what="corrections audited")
    assert consumers == {"police", "hrss"}  # civil_affairs never had the record
    civil = await read_topic(
        principals.of("civil_affairs"), topics.delivery("civil_affairs", BMC), idle=1.0
    )
    assert not [r for r in civil if r.record_id in (shared, fixed)]

    async with Department(principals.of("police"), "police") as police:
        (mine,) = [d for d in await police.disputes() if d.id == dispute_id]
    assert mine.status.value == "closed"
    assert mine.corrected_record_id == fixed


async def wait_for_async(
    poll: Callable[[], Awaitable[None]],
    done: Callable[[], bool],
    *,
    what: str,
    within: float = 20.0,
) -> None:
    """Call ``poll`` until ``done()``; fails after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        await poll()
        if done():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def test_a_record_or_field_never_received_is_refused(
    shared: str, principals: Principals
) -> None:
    async with Department(principals.of("civil_affairs"), "civil_affairs") as civil:
        with pytest.raises(CommandRefused) as never:
            await civil.dispute(BMC, shared, fields=["child_name"], reason="疑义")
    assert "'civil_affairs' never received record" in never.value.message
    assert shared in never.value.message
    assert BMC in never.value.message
    async with Department(principals.of("police"), "police") as police:
        with pytest.raises(CommandRefused) as field:
            await police.dispute(BMC, shared, fields=["mother_name"], reason="疑义")
        assert "'police' did not receive field(s) mother_name" in field.value.message
        assert shared in field.value.message
        with pytest.raises(CommandRefused) as made_up:
            await police.dispute(BMC, "0" * 32, fields=["child_name"], reason="疑义")
        assert "never received record 00000000" in made_up.value.message
    async with Department(principals.of("health"), "health") as health:
        with pytest.raises(CommandRefused) as own:
            await health.dispute(BMC, shared, fields=["child_name"], reason="疑义")
    assert "provides" in own.value.message


async def test_an_unanswered_dispute_is_audited_overdue_once(
    router: RouterRun, shared: str, principals: Principals
) -> None:
    async with Department(principals.of("hrss"), "hrss") as hrss:
        dispute_id = await hrss.dispute(BMC, shared, fields=["gender"], reason="性别疑义")
    watch = router.router.dispute_watch
    due = None

    async def poll() -> None:
        nonlocal due
        await watch.check()
        d = watch.book.disputes.get(dispute_id)
        due = d.due() if d else None

    await wait_for_async(poll, lambda: due is not None, what="the dispute read by the router")
    assert due is not None
    assert await watch.check() == []  # not yet due
    later = dt.datetime.combine(due + dt.timedelta(days=1), dt.time(12), dt.UTC)
    (overdue,) = [d for d in await watch.check(later) if d.details["dispute_id"] == dispute_id]
    assert overdue.action is Action.DISPUTE_OVERDUE
    assert overdue.consumer == "hrss"
    assert overdue.provider == "health"
    assert await watch.check(later) == []  # once
    async with Department(principals.of("health"), "health") as health:
        listed = [d.id for d in await health.disputes(status="overdue")]
    assert dispute_id not in listed  # overdue counts working days from now: not yet


async def test_no_value_appears_in_any_dispute_entry(router: RouterRun, shared: str) -> None:
    log = [e for _, e in entries_only(await read_log(router.router.bus))]
    disputes = [e for e in log if e.action in DISPUTE_ACTIONS or _refused_dispute(e)]
    assert {e.action for e in disputes} >= {
        Action.DISPUTE_OPENED,
        Action.DISPUTE_ANSWERED,
        Action.DISPUTE_CLOSED,
        Action.CORRECTION_DELIVERED,
        Action.COMMAND_REFUSED,
    }
    text = json.dumps([e.to_json() for e in disputes], ensure_ascii=False)
    for canary in (CANARY_CHILD, CANARY_MOTHER, FIXED_CHILD, "N18DISPUTE0001"):
        assert canary not in text


def _refused_dispute(e: AuditEntry) -> bool:
    return e.action is Action.COMMAND_REFUSED and e.details.get("command") in (
        "dispute",
        "answer-dispute",
        "correct",
    )


def _cli(bus: Connection, *args: str) -> tuple[int, str]:
    """``exchange ARGS`` in-process (a worker thread: the command calls asyncio.run)."""
    env = {**bus.environment(), "EXCHANGE_BOOTSTRAP_SERVERS": bus.bootstrap}

    def go() -> tuple[int, str]:
        r = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
        return r.exit_code, r.output

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(go).result(timeout=90)


async def test_the_commands_a_user_runs(
    bus: Connection, shared: str, loaded_catalog: Catalog, tmp_path: Path
) -> None:
    code, out = _cli(
        bus, "dispute", BMC, shared, "--as", "police", "--field", "hospital_name",
        "--reason", "医院名称疑义",
    )  # fmt: skip
    assert code == 0, out
    dispute_id = out.strip()
    code, out = _cli(bus, "disputes", "--as", "health", "--status", "open", "--json")
    assert code == 0, out
    (row,) = [r for r in json.loads(out) if r["id"] == dispute_id]
    assert (row["consumer"], row["fields"], row["status"]) == ("police", "hospital_name", "open")
    code, out = _cli(bus, "answer-dispute", dispute_id, "--as", "health", "--reason", "x")
    assert code != 0
    assert "exactly one of --corrected and --confirmed" in out
    fixed = tmp_path / "fixed.jsonl"
    fixed.write_text(dumps(_record(loaded_catalog, "Y")) + "\n")
    code, out = _cli(bus, "publish", BMC, str(fixed), "--as", "health", "--corrects", dispute_id)
    assert code == 0, out
    assert f"dispute {dispute_id} is closed" in out
    code, out = _cli(bus, "disputes", "--as", "police", "--status", "answered")
    assert code == 0, out
    assert dispute_id in out
    assert "closed: corrected by record" in out

    code, out = _cli(
        bus, "dispute", BMC, shared, "--as", "police", "--field", "gender", "--reason", "性别",
    )  # fmt: skip
    second = out.strip()
    code, out = _cli(
        bus, "answer-dispute", second, "--as", "health", "--confirmed", "--reason", "核实无误",
    )  # fmt: skip
    assert code == 0, out
    assert "answered: confirmed" in out
    code, out = _cli(bus, "publish", BMC, str(fixed), "--as", "health", "--corrects", second)
    assert code != 0
    assert "answered 'confirmed'" in out


async def test_a_command_written_to_the_topic_by_hand_is_refused_on_replay(
    router: RouterRun, shared: str, principals: Principals
) -> None:
    async with Department(principals.of("police"), "police") as police:
        dispute_id = await police.dispute(BMC, shared, fields=["gender"], reason="疑义")
    # police answers its own dispute, written without a client: no check before writing
    forged = DisputeEvent(
        kind=DisputeKind.ANSWERED,
        actor="police",
        dispute_id=dispute_id,
        resource=BMC,
        answer="confirmed",
        reason="自行确认",
    )
    producer = kafka.producer(principals.of("police"), linger_ms=0)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.DISPUTES, key=dispute_id.encode(), value=DISPUTE_CODEC.encode(forged.to_avro())
        )
    finally:
        await producer.stop()
    watch = router.router.dispute_watch
    refusals: list[Any] = []

    async def poll() -> None:
        refusals.extend(d for d in await watch.check() if d.action is Action.COMMAND_REFUSED)

    await wait_for_async(poll, lambda: bool(refusals), what="the forged answer refused")
    (refused,) = refusals
    assert refused.actor == "police"
    assert "only the provider of" in (refused.reason or "")
    assert refused.details["dispute_id"] == dispute_id
    assert watch.book.disputes[dispute_id].status.value == "open"  # it changed nothing
