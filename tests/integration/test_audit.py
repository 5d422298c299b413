"""The access log on a real broker: what it answers, what verify finds, the archive, the report.

One scenario per module (its own embedded broker): hrss subscribes; police
applies and health approves with a mask and a row filter; civil affairs is
refused a not-shared field and a not-shared resource; police tries to
approve an application of health's resource; a hand-written grant event is
refused on replay; health publishes; a garbage record goes to the DLQ;
health revokes police's grant and publishes more. Then the log alone must
answer who received what, under which grant and purpose, and who was
refused and why, with counts equal to what the consumers read.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import datetime as dt
import io
import json
import os
import re
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import NewTopic

from exchange.audit.archive_url import open_archive
from exchange.audit.archiver import Archiver
from exchange.audit.entry import Action, AuditEntry, Decision, Draft, chain
from exchange.audit.log import entries_only, read_log
from exchange.audit.query import Filter, select
from exchange.audit.verify import Kind, verify
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.control.state import GRANT_CODEC
from exchange.dev import sample
from exchange.dev.databases import ThrowawayPostgres
from exchange.errors import CommandRefused, PermissionDenied, UnknownResource
from exchange.metrics import AuditMetrics
from exchange.router.loop import Router
from exchange.sharing.records import EventKind, GrantEvent, now
from exchange.tables import width

pytestmark = pytest.mark.integration


RES = "birth_medical_certificate"
MARRIAGE = "marriage_registration"
OLD_APP = "APP-20200101-0ld0ld00"
PURPOSE = "新生儿出生登记（落户） household registration of the newborn"
EXCHANGE = str(Path(sys.executable).with_name("exchange"))


@dataclass
class Scenario:
    grant_id: str
    app_id: str
    received: dict[str, int]  # what each consumer read from its delivery topic
    dead_letter: tuple[int, int]  # partition, offset
    forged_event_id: str
    published: int


async def wait_until(condition: Any, what: str, within_s: float = 30) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def cli(bus: Connection, *args: str) -> tuple[int, str]:
    """Run the installed ``exchange`` command; (exit code, stdout + stderr)."""
    env = dict(os.environ, **bus.environment())
    env.pop("COLUMNS", None)  # not a terminal: tables are fitted to 100 columns
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints every thread's stack (see below)
    proc = await asyncio.create_subprocess_exec(
        EXCHANGE,
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    # 180 s: on the Kafka lane, run beside the embedded one on two cores, `audit archive`
    # reads every module's entries so far from gov.audit (over 90 s once, under load)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    except TimeoutError:
        proc.send_signal(signal.SIGABRT)  # where each thread waits, for the message below
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout=10)
        except TimeoutError:
            proc.kill()
            out, _ = await proc.communicate()
        raise AssertionError(
            f"exchange {' '.join(args)} did not end in 180 s; its output: {out.decode()}"
        ) from None
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.fixture(scope="module")
async def scenario(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[Scenario]:
    router = Router(bus, group=f"audit-{uuid.uuid4().hex[:6]}", master_secret=b"k" * 32)
    await router.start()
    stop = asyncio.Event()
    task = asyncio.create_task(router.run(stop))
    try:
        yield await _play(bus, loaded_catalog, router)
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
        await router.stop()


async def _play(bs: str, catalog: Catalog, router: Router) -> Scenario:
    async with Department(bs, "hrss") as hrss:
        await hrss.subscribe(RES)
    async with Department(bs, "police") as police:
        app_id = await police.apply(
            RES, fields=["mother_name", "mother_id_number", "address"], purpose=PURPOSE
        )
        with pytest.raises(CommandRefused, match="only the provider"):
            await police.approve(app_id)  # police does not provide the resource
    async with Department(bs, "health") as health:
        grant_id = await health.approve(
            app_id,
            fields=["mother_name", "mother_id_number"],
            masks={"mother_id_number": "keep:6:4"},
            row_filter='region_code.startsWith("33")',
        )
    async with Department(bs, "civil_affairs") as ca:
        with pytest.raises(CommandRefused, match="不予共享"):
            await ca.apply(RES, fields=["birth_weight_grams"], purpose="统计 statistics")
        with pytest.raises(PermissionDenied):
            await ca.subscribe("death_registration")  # wholly not shared
    with pytest.raises(UnknownResource):
        async with Department(bs, "nobody"):
            pass  # not a department of the catalog
    # a grant event written by hand, not through the API: police approving for itself
    forged = GrantEvent(
        kind=EventKind.APPROVED,
        actor="police",
        consumer="police",
        resource=RES,
        application_id=app_id,
        grant_id="GR-forged",
        fields=("father_name",),
    )
    async with kafka.producer(bs) as p:
        await p.send_and_wait(topics.GRANTS, value=GRANT_CODEC.encode(forged.to_avro()))
    await wait_until(lambda: forged.event_id in router.state.book.refused, "the forged event")

    records = sample.generate(catalog.resource(RES).schema_, 60, seed=7)
    await wait_until(lambda: len(router.views.get(RES, [])) == 2, "views of hrss and police")
    async with Publisher(bs, catalog, "health") as pub:
        await pub.publish(RES, records[:40])
    async with kafka.producer(bs) as p:
        meta = await p.send_and_wait(topics.source("health", RES), value=b"not avro", key=b"x")
    await wait_until(lambda: router.routed >= 41, "the first 41 records routed")

    async with Department(bs, "health") as health:
        await health.revoke(grant_id, reason="落户办结 registration completed")
    await wait_until(lambda: len(router.views.get(RES, [])) == 1, "police's view dropped")
    async with Publisher(bs, catalog, "health") as pub:
        await pub.publish(RES, records[40:])
    await wait_until(lambda: router.routed >= 61, "every record routed")

    await _expiry_and_overdue(bs, router)
    received = {  # records; police's topic also ends with the revoked grant's retraction
        c: sum(1 for r in await kafka.read_to_end(bs, topics.delivery(c, RES)) if r.value)
        for c in ("hrss", "police")
    }
    assert received["hrss"] == 60
    assert 0 < received["police"] < 40  # Zhejiang rows of the first 40 only
    return Scenario(grant_id, app_id, received, (meta.partition, meta.offset), forged.event_id, 61)


async def _expiry_and_overdue(bs: str, router: Router) -> None:
    """A grant that expires, and an application (written by hand, 40 days ago) never answered."""
    async with Department(bs, "hrss") as hrss:
        app_id = await hrss.apply(
            MARRIAGE, fields=["registration_no", "registration_date"], purpose="参保 enrolment"
        )
    async with Department(bs, "civil_affairs") as ca:
        expiring = await ca.approve(app_id, until=now() + dt.timedelta(seconds=2))
    old = GrantEvent(
        kind=EventKind.APPLIED,
        actor="market",
        consumer="market",
        resource=MARRIAGE,
        application_id=OLD_APP,
        fields=("registration_no",),
        purpose="企业登记核验 verification",
        at=now() - dt.timedelta(days=40),
    )
    async with kafka.producer(bs) as p:
        await p.send_and_wait(topics.GRANTS, value=GRANT_CODEC.encode(old.to_avro()))

    def sample(name: str, **labels: str) -> float:
        value = router.metrics.registry.get_sample_value(f"gov_exchange_audit_{name}", labels)
        return value or 0.0

    await wait_until(
        lambda: (
            sample("entries_written_total", action="GRANT_EXPIRED") == 1
            and sample("entries_written_total", action="APPLICATION_OVERDUE") == 1
        ),
        f"the expiry of {expiring} and the overdue {OLD_APP} audited",
    )
    age = sample("oldest_unanswered_application_age_seconds")
    assert age > 39 * 86400


async def entries(bs: str) -> list[AuditEntry]:
    return [e for _, e in entries_only(await read_log(bs))]


async def test_the_log_says_who_received_the_resource_under_which_grant_and_purpose(
    bus: Connection, scenario: Scenario
) -> None:
    log = await entries(bus)
    deliveries = [e for e in log if e.action is Action.RECORDS_DELIVERED and e.resource == RES]
    received = Counter[str]()
    for e in deliveries:
        assert e.consumer is not None
        received[e.consumer] += int(e.details["record_count"])
    assert dict(received) == scenario.received  # the log agrees with the delivery topics
    police = [e for e in deliveries if e.consumer == "police"]
    assert {(e.grant_id, e.purpose) for e in police} == {(scenario.grant_id, PURPOSE)}
    assert all(e.details["masks"] == "mother_id_number=keep:6:4" for e in police)
    for e in police:
        assert {"mother_name", "mother_id_number"} <= set(e.details["fields"].split(","))
        assert "address" not in e.details["fields"]  # applied for, not granted
    assert sum(int(e.details["filtered_count"]) for e in police) == 40 - scenario.received["police"]
    hrss = [e for e in deliveries if e.consumer == "hrss"]
    assert {(e.grant_id, e.purpose) for e in hrss} == {(None, None)}  # unconditional
    assert all("mother_name" not in e.details["fields"] for e in hrss)
    # after the revocation, nothing more for police; the revocation itself is logged
    [revoked] = [e for e in log if e.action is Action.GRANT_REVOKED]
    assert (revoked.grant_id, revoked.actor, revoked.consumer) == (
        scenario.grant_id,
        "health",
        "police",
    )
    assert all(e.at <= revoked.at for e in police)
    # ranges of source offsets, never a value
    assert all(e.details["offsets"].count("-") == 1 for e in deliveries)


async def test_the_log_says_who_was_refused_and_why(bus: Connection, scenario: Scenario) -> None:
    log = await entries(bus)
    refused = {
        (e.action, e.actor, e.details.get("command")): e.reason or ""
        for e in log
        if e.action in (Action.COMMAND_REFUSED, Action.SUBSCRIPTION_DENIED)
    }
    assert "only the provider" in refused[(Action.COMMAND_REFUSED, "police", "approve")]
    assert "birth_weight_grams" in refused[(Action.COMMAND_REFUSED, "civil_affairs", "apply")]
    assert "不予共享" in refused[(Action.SUBSCRIPTION_DENIED, "civil_affairs", None)]
    assert "nobody" in refused[(Action.COMMAND_REFUSED, "nobody", "start")]
    [forged] = [e for e in log if e.details.get("event_id") == scenario.forged_event_id]
    assert (forged.action, forged.actor, forged.grant_id) == (
        Action.COMMAND_REFUSED,
        "police",
        "GR-forged",
    )
    [dlq] = [e for e in log if e.action is Action.RECORD_DEAD_LETTERED]
    assert (int(dlq.details["partition"]), int(dlq.details["offset"])) == scenario.dead_letter
    assert dlq.resource == RES
    assert dlq.reason
    [expired] = [e for e in log if e.action is Action.GRANT_EXPIRED]
    assert (expired.consumer, expired.provider, expired.resource) == (
        "hrss",
        "civil_affairs",
        MARRIAGE,
    )
    [overdue] = [e for e in log if e.action is Action.APPLICATION_OVERDUE]
    assert (overdue.application_id, overdue.consumer) == (OLD_APP, "market")
    actions = Counter(e.action for e in log)
    for action in (
        Action.CATALOG_CHANGED,
        Action.SUBSCRIPTION_GRANTED,
        Action.APPLICATION_SUBMITTED,
        Action.APPLICATION_APPROVED,
    ):
        assert actions[action] >= 1, action


async def test_query_command_answers_from_the_log(bus: Connection, scenario: Scenario) -> None:
    code, out = await cli(
        bus, "audit", "query", "--resource", RES, "--action", "records_delivered",
        "--format", "json", "--limit", "1000",
    )  # fmt: skip
    assert code == 0, out
    rows = json.loads(out)
    assert {r["consumer"] for r in rows} == {"hrss", "police"}
    assert {r["grant_id"] for r in rows if r["consumer"] == "police"} == {scenario.grant_id}
    assert rows == sorted(rows, key=lambda r: r["at"], reverse=True)

    code, out = await cli(
        bus, "audit", "query", "--dept", "civil_affairs", "--decision", "denied",
        "--format", "csv",
    )  # fmt: skip
    assert code == 0, out
    assert "SUBSCRIPTION_DENIED" in out
    assert "death_registration" in out

    code, out = await cli(bus, "audit", "query", "--grant", scenario.grant_id)
    assert code == 0, out
    for action in ("APPLICATION_APPROVED", "RECORDS_DELIVERED", "GRANT_REVOKED"):
        assert action in out


async def test_query_table_fits_a_100_column_terminal(bus: Connection, scenario: Scenario) -> None:
    async def json_rows() -> list[dict[str, object]]:
        code, full = await cli(bus, "audit", "query", "--limit", "1000", "--format", "json")
        assert code == 0, full
        rows: list[dict[str, object]] = json.loads(full)
        return rows

    # the routers may still append entries (expiries, commands written without a client)
    # while the test runs: the table's count lies between two JSON queries around it
    before = await json_rows()
    code, out = await cli(bus, "audit", "query", "--limit", "1000")
    assert code == 0, out
    after = await json_rows()
    lines = out.splitlines()
    assert max(width(line) for line in lines) <= 100, max(lines, key=width)
    shown = int(lines[-1].split(" entries")[0])
    assert len(before) <= shown <= len(after), lines[-1]
    for action in {str(r["action"]) for r in before}:
        assert action in out


async def test_an_untouched_log_verifies(bus: Connection, scenario: Scenario) -> None:
    report = verify(await read_log(bus))
    assert not report.broken, [f.message for f in report.problems]
    code, out = await cli(bus, "audit", "verify")
    assert code == 0, out
    assert "intact" in out
    assert "router-" in out


async def test_verify_finds_each_tampering_in_a_copy_of_the_log(
    bus: Connection, scenario: Scenario
) -> None:
    raw = await kafka.read_to_end(bus, topics.AUDIT)
    router_idx = [
        i for i, r in enumerate(raw) if AuditEntry.decode(r.value).writer.startswith("router-")
    ]
    assert len(router_idx) >= 8
    edit, gone, swap_a, swap_b, copy_of = (
        router_idx[1],
        router_idx[3],
        *router_idx[5:7],
        router_idx[7],
    )
    values = [r.value for r in raw]
    edited = dataclasses.replace(AuditEntry.decode(values[edit]), consumer="market")
    values[edit] = edited.encode()
    values[swap_a], values[swap_b] = values[swap_b], values[swap_a]
    forged = dataclasses.replace(AuditEntry.decode(values[copy_of]), grant_id="GR-x").rehashed()
    values.insert(copy_of + 1, forged.encode())
    del values[gone]
    copy = f"audit-copy-{uuid.uuid4().hex[:8]}"
    await kafka.ensure_topics(bus, [copy])
    async with kafka.producer(bus) as p:
        for v in values:
            await p.send_and_wait(copy, value=v)

    code, out = await cli(bus, "audit", "verify", "--topic", copy, "--json")
    assert code == 1, out
    found = {f["kind"]: f for f in json.loads(out)["findings"] if f["writer"] == edited.writer}
    seq = {i: AuditEntry.decode(raw[i].value).seq for i in router_idx}
    assert (found[Kind.MODIFIED]["seq"], found[Kind.MODIFIED]["offset"]) == (seq[edit], edit)
    assert found[Kind.DELETED]["seq"] == seq[gone]
    assert found[Kind.REORDERED]["seq"] == seq[swap_a]
    assert found[Kind.INSERTED]["seq"] == seq[copy_of]
    assert set(found) == {"modified", "deleted", "reordered", "inserted"}


@pytest.fixture
def pg_url(postgres_server: ThrowawayPostgres) -> Iterator[str]:
    """A PostgreSQL archive URL in a schema of its own, dropped afterwards."""
    import psycopg

    schema = f"audit_test_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(postgres_server.url, autocommit=True)
    conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{postgres_server.url}?options=-csearch_path%3D{schema}"
    finally:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
        conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def archive_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


# three commands of up to 180 s each (see cli) on a loaded Kafka lane: the default 120 s
# ended a run of this test there while its last command still read gov.audit
@pytest.mark.timeout(600)
async def test_archive_restarted_midway_has_no_duplicates_and_no_gaps(
    bus: Connection, scenario: Scenario, archive_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = await read_log(bus)
    db = await asyncio.to_thread(open_archive, archive_url)
    try:
        # stopped right after its first batch, as a crash or Ctrl-C would
        stop = asyncio.Event()
        store = db.store

        def store_then_stop(*args: Any) -> int:
            stop.set()
            return store(*args)

        monkeypatch.setattr(db, "store", store_then_stop)
        first = await Archiver(bus, db, batch=4).run(follow=True, stop=stop)
        monkeypatch.undo()
        assert 0 < first.added == db.count() < len(log)
        again = await Archiver(bus, db).run()
        assert db.count() == len(log)
        assert again.read == again.added == len(log) - first.added  # resumed where it stopped
        # progress lost: everything is read again, nothing is added twice
        with db.transaction() as cur:
            cur.execute("DELETE FROM audit_progress")
        replay = await Archiver(bus, db).run()
        assert (replay.read, replay.added) == (len(log), 0)
        assert db.count() == len(log)
        assert not verify(db.log()).broken
        police = db.query(Filter(dept="police", action=Action.RECORDS_DELIVERED))
        expected = select(entries_only(log), Filter(dept="police", action=Action.RECORDS_DELIVERED))
        assert [e for _, e in police] == expected
    finally:
        db.close()
    code, out = await cli(
        bus, "audit", "query", "--archive", archive_url, "--dept", "police",
        "--action", "RECORDS_DELIVERED", "--format", "json",
    )  # fmt: skip
    assert code == 0, out
    assert {r["grant_id"] for r in json.loads(out)} == {scenario.grant_id}
    code, out = await cli(bus, "audit", "verify", "--archive", archive_url)
    assert code == 0, out
    code, out = await cli(bus, "audit", "archive", "--to", archive_url, "--once")
    assert code == 0, out
    # only what was written since (the module's router still signs its chain's head now
    # and then): nothing archived twice, nothing left out
    found = re.search(r"read (\d+) records, archived (\d+) new entries; (\d+) entries", out)
    assert found is not None, out
    read, added, held = map(int, found.groups())
    assert added == read, out  # each entry read since the last run was new
    assert held == len(log) + added, out


async def test_monthly_report_has_the_scenario_numbers(bus: Connection, scenario: Scenario) -> None:
    month = dt.datetime.now(CHINA_TZ).strftime("%Y-%m")
    code, out = await cli(bus, "audit", "report", "--period", month, "--format", "csv")
    assert code == 0, out
    rows = list(csv.reader(io.StringIO(out.strip())))[1:]
    values: Counter[tuple[str, str]] = Counter()
    sections: dict[str, set[str]] = {}
    for period, dept, metric, _, _, value, section in rows:
        assert period == month
        values[(dept, metric)] += int(value)
        sections.setdefault(section, set()).add(dept)
    # 'nobody' (a refused --as) is no department: its own section (issue 23 item 4)
    assert "nobody" not in sections["department"]
    assert sections["unknown actor"] == {"nobody"}
    assert values[("nobody", "denied")] == 1
    assert values[("police", "records_received")] == scenario.received["police"]
    assert values[("hrss", "records_received")] == scenario.received["hrss"]
    assert values[("health", "applications_answered_within_10_working_days")] == 1
    assert values[("health", "applications_answered_beyond_10_working_days")] == 0
    assert values[("police", "grants_held_revoked")] == 1
    assert values[("police", "grants_held_active")] == 0
    assert values[("health", "grants_given_revoked")] == 1
    assert values[("hrss", "grants_held_expired")] == 1
    assert values[("civil_affairs", "grants_given_expired")] == 1
    assert values[("civil_affairs", "applications_answered_within_10_working_days")] == 1
    assert values[("civil_affairs", "applications_unanswered_overdue")] == 1  # market's
    assert values[("civil_affairs", "denied")] == 2
    assert values[("police", "denied")] == 2  # its approval refused, its forged event refused
    code, out = await cli(bus, "audit", "report", "--period", month, "--dept", "hrss")
    assert code == 0, out
    assert "records_received" in out
    assert "police" not in out.split("\n", 2)[2]
    code, out = await cli(bus, "audit", "report", "--period", month)
    assert code == 0, out
    departments, unknown = out.split("unknown actors (names that are not departments")
    assert "nobody" not in departments
    assert "nobody" in unknown


async def test_a_forged_entry_appended_to_the_log_breaks_verify(
    bus: Connection, scenario: Scenario, tmp_path: Path
) -> None:
    """Last in this module: it leaves the module's log broken on purpose."""
    raw = await kafka.read_to_end(bus, topics.AUDIT)
    last = AuditEntry.decode(raw[-1].value)
    forged = dataclasses.replace(
        last, seq=last.seq + 1, id=f"{last.writer}#{last.seq + 1}", prev_hash=last.hash,
        consumer="market", hash="0" * 63 + "1",
    )  # fmt: skip
    async with kafka.producer(bus) as p:
        meta = await p.send_and_wait(topics.AUDIT, value=forged.encode())
    code, out = await cli(bus, "audit", "verify")
    assert code == 1, out
    assert f"MODIFIED [{last.writer}]: seq {forged.seq} at offset {meta.offset}" in out
    # the archiver checks chains on the way and counts what it finds
    metrics = AuditMetrics()
    with open_archive(str(tmp_path / "a.sqlite")) as db:
        await Archiver(bus, db, metrics=metrics).run()
    failures = metrics.registry.get_sample_value(
        "gov_exchange_audit_verification_failures_total", {"kind": "modified"}
    )
    assert failures == 1


async def test_archive_once_ends_while_routers_keep_writing(
    bus: Connection, tmp_path: Path
) -> None:
    """``--once`` stops at the end the log had when it began, though entries keep coming
    (and so does reading the whole log, for ``audit verify`` and ``audit query``).

    On a busy bus routers append to gov.audit many times a second; an archiver that waited
    for a quiet moment never ended (a run of the Kafka lane waited 180 s for it).
    """
    name = f"gov.audit.busy-{uuid.uuid4().hex[:8]}"
    async with kafka.admin(bus) as client:
        await client.create_topics(
            [NewTopic(name, 1, bus.topics.replication_factor, topic_configs={"retention.ms": "-1"})]
        )
    draft = Draft(Action.RECORDS_DELIVERED, actor="router", decision=Decision.DELIVERED,
                  resource=RES, consumer="police", details={"record_count": "1"})  # fmt: skip
    entries = chain([draft] * 3000, writer="router-busy-1-abcdef")
    before, later = entries[:500], iter(entries[500:])
    stop_writing = asyncio.Event()
    async with kafka.producer(bus) as p:
        for e in before:
            await p.send(name, value=e.encode())
        await p.flush()

        async def keep_writing() -> int:  # an entry every 20 ms, as a busy router does
            n = 0
            while not stop_writing.is_set():
                entry = next(later, None)
                if entry is None:
                    break
                await p.send_and_wait(name, value=entry.encode())
                n += 1
                await asyncio.sleep(0.02)
            return n

        writing = asyncio.create_task(keep_writing())
        db = await asyncio.to_thread(open_archive, f"sqlite:///{tmp_path / 'busy.sqlite'}")
        try:
            began = time.monotonic()
            first = await asyncio.wait_for(Archiver(bus, db, topic=name).run(), 60)
            took = time.monotonic() - began
            # what 'audit verify' and 'audit query' read ends the same way
            assert len(await asyncio.wait_for(read_log(bus, name), 60)) >= first.read
            stop_writing.set()
            written = await writing
            print(f"--once read {first.read} entries in {took:.1f} s; {written} written meanwhile")
            assert first.read >= len(before)  # all that was there when it began
            assert first.added == first.read == await asyncio.to_thread(db.count)
            rest = await Archiver(bus, db, topic=name).run()  # the rest, nothing twice
            assert (first.read + rest.read, await asyncio.to_thread(db.count)) == (
                len(before) + written,
                len(before) + written,
            )
        finally:
            stop_writing.set()
            await asyncio.gather(writing, return_exceptions=True)
            db.close()
