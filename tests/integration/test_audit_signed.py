"""Signed chain heads and the audit trace on a real broker (issue 19).

One scenario for the module (its own bus): a catalog registering two service
identities (gov-router-1 for the router, gov-session-1 for the command
sessions and the catalog load) is loaded; hrss and civil affairs subscribe to
the birth certificates (unconditional fields), police gets a grant with a row
filter (Zhejiang rows only); health publishes; the router is stopped cleanly.
Then: the log verifies; copies of it, altered as someone with write access to
``gov.audit`` and no service key could, are reported; the trace of a key lists
exactly the deliveries of the records with that key.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import NewTopic

from exchange.admin import acls, users
from exchange.audit import heads
from exchange.audit.archive_url import open_archive
from exchange.audit.archiver import Archiver
from exchange.audit.entry import Action, AuditEntry, Decision, Draft, chain
from exchange.audit.heads import HeadSigner
from exchange.audit.log import read_log
from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog import signing
from exchange.catalog.model import Catalog, ServiceIdentity
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.control import catalog_store
from exchange.dev import sample
from exchange.router.loop import Router

pytestmark = [
    pytest.mark.integration,
    # the module's scenario (a router joining its group, four sessions) is set up in the
    # first test: on the Kafka lane of a loaded machine that took up to 170 s
    pytest.mark.timeout(300),
]

RES = "birth_medical_certificate"
PURPOSE = "新生儿出生登记（落户） household registration of the newborn"
TRACE_KEY = "t" * 40
EXCHANGE = str(Path(sys.executable).with_name("exchange"))


@dataclass
class Scenario:
    records: list[dict[str, Any]]
    #: (consumer, source partition, source offset) of every record delivered, by its key
    delivered: dict[str, set[tuple[str, int, int]]]
    police_received: int
    secrets: list[str]  # every form of the private keys that must never be shown
    log_lines: list[str]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def _key() -> tuple[Any, str, list[str]]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    body = "".join(pem.splitlines()[1:-1])
    return key, signing.public_key_of(key), [base64.b64encode(raw).decode(), raw.hex(), body]


async def cli(bus: Connection, *args: str, **env: str) -> tuple[int, str]:
    """Run the installed ``exchange`` command; (exit code, stdout then stderr).

    Kept apart and in that order, so a JSON answer is not broken by a client library's
    warning on stderr (the Kafka lane's users are refused topics they may not read):
    :func:`parsed` reads the JSON at the start.
    """
    environ = dict(os.environ, **bus.environment(), **env)
    environ.pop("COLUMNS", None)
    proc = await asyncio.create_subprocess_exec(
        EXCHANGE, *args, env=environ, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    return proc.returncode or 0, out.decode() + err.decode()


def parsed(out: str) -> Any:
    """The JSON document a command printed on stdout (before anything on stderr)."""
    return json.JSONDecoder().raw_decode(out)[0]


@pytest.fixture(scope="module")
async def scenario(bus: Connection, sample_catalog: Catalog) -> AsyncIterator[Scenario]:
    router_key, router_public, router_secrets = _key()
    session_key, session_public, session_secrets = _key()
    catalog = sample_catalog.model_copy(
        update={
            "services": {
                "gov-router-1": ServiceIdentity(
                    id="gov-router-1", role="router", public_key=router_public
                ),
                "gov-session-1": ServiceIdentity(
                    id="gov-session-1", role="session", public_key=session_public
                ),
            }
        }
    )
    handler = _Lines()
    logging.getLogger().addHandler(handler)
    root_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        heads.install(HeadSigner("gov-session-1", session_key, every_entries=5, every_s=0.5))
        await catalog_store.load(bus, catalog, actor="tests", unsigned_override="test suite")
        heads.install(HeadSigner("gov-router-1", router_key, every_entries=7, every_s=0.5))
        router = Router(
            bus,
            group=f"signed-{uuid.uuid4().hex[:6]}",
            master_secret=b"k" * 32,
            trace_key=TRACE_KEY.encode(),
        )
        await router.start()  # its writer takes the router's signer
        heads.install(HeadSigner("gov-session-1", session_key, every_entries=5, every_s=0.5))
        stop = asyncio.Event()
        task = asyncio.create_task(router.run(stop))
        try:
            records = await _play(bus, catalog, router)
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)
            await router.stop()  # a clean stop: the router's chain ends with a signed head
        delivered, police = await _deliveries(bus, catalog)
        yield Scenario(records, delivered, police, router_secrets + session_secrets, handler.lines)
    finally:
        heads.install(None)
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(root_level)


async def _play(bus: Connection, catalog: Catalog, router: Router) -> list[dict[str, Any]]:
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe(RES)
    async with Department(bus, "civil_affairs") as ca:
        await ca.subscribe(RES)
    async with Department(bus, "police") as police:
        app_id = await police.apply(RES, fields=["mother_name"], purpose=PURPOSE)
    async with Department(bus, "health") as health:
        await health.approve(
            app_id, fields=["mother_name"], row_filter='region_code.startsWith("33")'
        )
    for _ in range(300):
        if len(router.views.get(RES, [])) == 3:
            break
        await asyncio.sleep(0.05)
    records = sample.generate(catalog.resource(RES).schema_, 40, seed=11)
    async with Publisher(bus, catalog, "health") as pub:
        await pub.publish(RES, records)
    for _ in range(600):
        if router.routed >= len(records):
            break
        await asyncio.sleep(0.05)
    assert router.routed >= len(records)
    return records


async def _deliveries(
    bus: Connection, catalog: Catalog
) -> tuple[dict[str, set[tuple[str, int, int]]], int]:
    """What each consumer read, by the key of the source record it came from."""
    key_field = catalog.resource(RES).key
    source = await kafka.read_to_end(bus, topics.source("health", RES))
    parsed = avro.parse(catalog.resource(RES).schema_)
    key_at = {
        (r.partition, r.offset): str(wire.decode(parsed, wire.unframe(r.value)[1])[key_field])
        for r in source
    }
    delivered: dict[str, set[tuple[str, int, int]]] = {}
    police = 0
    for consumer in ("hrss", "civil_affairs", "police"):
        for rec in await kafka.read_to_end(bus, topics.delivery(consumer, RES)):
            where = dict(rec.headers)["gov-source-offset"].decode()
            partition, offset = (int(x) for x in where.split(":"))
            key = key_at[(partition, offset)]
            delivered.setdefault(key, set()).add((consumer, partition, offset))
            police += consumer == "police"
    return delivered, police


async def _copy(bus: Connection, entries: list[AuditEntry], raw: list[bytes] | None = None) -> str:
    """A new topic holding ``entries`` (or raw values), in order, as an altered gov.audit."""
    name = f"gov.audit.copy-{uuid.uuid4().hex[:8]}"
    async with kafka.admin(bus) as client:
        await client.create_topics(
            [NewTopic(name, 1, bus.topics.replication_factor, topic_configs={"retention.ms": "-1"})]
        )
    async with kafka.producer(bus) as p:
        for value in raw if raw is not None else [e.encode() for e in entries]:
            await p.send(name, value=value)
        await p.flush()
    return name


async def _log(bus: Connection) -> list[AuditEntry]:
    return [e for _, e in await read_log(bus) if isinstance(e, AuditEntry)]


async def test_a_clean_run_verifies_with_every_chain_signed(
    bus: Connection, scenario: Scenario
) -> None:
    code, out = await cli(bus, "audit", "verify", "--json")
    assert code == 0, out
    report = parsed(out)
    assert report["intact"], report["findings"]
    signed_by = {h["service"] for h in report["heads"]}
    assert signed_by == {"gov-router-1", "gov-session-1"}
    assert all(h["unsigned_tail"] == 0 for h in report["heads"])  # every writer stopped cleanly
    heads_written = [e for e in await _log(bus) if e.action is Action.CHAIN_HEAD]
    assert len({e.writer for e in heads_written}) == len(report["heads"])


async def test_a_chain_forged_under_a_new_writer_id_is_reported(
    bus: Connection, scenario: Scenario
) -> None:
    log = await _log(bus)
    fake = Draft(
        Action.RECORDS_DELIVERED, actor="router", decision=Decision.DELIVERED, resource=RES,
        consumer="market", details={"record_count": "40", "fields": "certificate_no"},
    )  # fmt: skip
    forged = chain([fake, fake], writer="router-forger-1-abcdef")  # valid hashes, no key
    topic = await _copy(bus, [*log, *forged])
    code, out = await cli(bus, "audit", "verify", "--topic", topic)
    assert code == 1, out
    assert "FORGED [router-forger-1-abcdef]" in out
    assert out.count("FORGED") == 1  # the genuine chains are not suspected


async def test_an_edited_entry_inside_a_signed_range_is_reported_with_its_seq(
    bus: Connection, scenario: Scenario
) -> None:
    log = await _log(bus)
    i, victim = next(
        (i, e) for i, e in enumerate(log) if e.action is Action.RECORDS_DELIVERED and e.seq > 0
    )
    edited = [*log[:i], dataclasses.replace(victim, consumer="market"), *log[i + 1 :]]
    code, out = await cli(bus, "audit", "verify", "--topic", await _copy(bus, edited), "--json")
    assert code == 1, out
    problems = [f for f in parsed(out)["findings"] if f["kind"] == "modified"]
    assert [(f["writer"], f["seq"]) for f in problems] == [(victim.writer, victim.seq)]


async def test_a_tail_cut_after_a_signed_head_is_reported_through_the_archive(
    bus: Connection, scenario: Scenario, tmp_path: Path
) -> None:
    log = await _log(bus)
    router_heads = [
        i for i, e in enumerate(log)
        if e.action is Action.CHAIN_HEAD and e.details["service"] == "gov-router-1"
    ]  # fmt: skip
    assert len(router_heads) >= 2
    writer = log[router_heads[0]].writer
    # the router's chain cut right after its first signed head
    cut = [e for i, e in enumerate(log) if e.writer != writer or i <= router_heads[0]]
    whole = await _copy(bus, log)
    url = f"sqlite:///{tmp_path / 'audit.sqlite'}"
    db = await asyncio.to_thread(open_archive, url)
    try:
        await Archiver(bus, db, topic=whole).run()  # the archive saw the whole log
    finally:
        db.close()
    truncated = await _copy(bus, cut)
    code, out = await cli(bus, "audit", "verify", "--topic", truncated)
    assert code == 0, out  # the cut log alone looks intact: that is what the archive is for
    code, out = await cli(bus, "audit", "verify", "--topic", truncated, "--archive", url, "--json")
    assert code == 1, out
    [found] = [f for f in parsed(out)["findings"] if f["kind"] == "truncated"]
    assert found["writer"] == writer
    assert found["seq"] == log[router_heads[0]].seq + 1
    assert "signed head" in found["message"]


@pytest.fixture(scope="module")
def archive_of_log(bus: Connection, scenario: Scenario, tmp_path_factory: Any) -> Iterator[str]:
    url = f"sqlite:///{tmp_path_factory.mktemp('trace') / 'audit.sqlite'}"

    async def fill() -> None:
        db = await asyncio.to_thread(open_archive, url)
        try:
            await Archiver(bus, db).run()
        finally:
            db.close()

    asyncio.run(fill())
    return url


def _rows(out: str) -> set[tuple[str, int, int]]:
    rows = parsed(out)
    found = set()
    for r in rows:
        partition, offset = r["source"].split(" ")[1].split(":")
        found.add((r["consumer"], int(partition), int(offset)))
    return found


@pytest.mark.parametrize("where", ["topic", "archive"])
async def test_trace_returns_exactly_the_deliveries_of_a_key_across_three_consumers(
    principals: users.Principals, scenario: Scenario, archive_of_log: str, where: str
) -> None:
    bus = principals.of(acls.AUDITOR)  # its own user on a cluster with users
    to_all = [k for k, v in scenario.delivered.items() if len({c for c, _, _ in v}) == 3]
    to_two = [k for k, v in scenario.delivered.items() if len({c for c, _, _ in v}) == 2]
    assert to_all
    assert to_two
    source = ["--archive", archive_of_log] if where == "archive" else []
    env = {"EXCHANGE_AUDIT_TRACE_KEY": TRACE_KEY}
    for key in (to_all[0], to_two[0]):
        code, out = await cli(
            bus, "audit", "trace", "--resource", RES, "--key", key, "--format", "json",
            *source, **env,
        )  # fmt: skip
        assert code == 0, out
        assert _rows(out) == scenario.delivered[key]
        assert key not in out  # the key itself is never printed back
    code, out = await cli(
        bus, "audit", "trace", "--resource", RES, "--key", "never-delivered-0000",
        "--format", "json", *source, **env,
    )  # fmt: skip
    assert code == 0, out
    assert parsed(out) == []
    # without the trace key the hashes do not match: nothing is found
    code, out = await cli(
        bus, "audit", "trace", "--resource", RES, "--key", to_all[0], "--format", "json", *source
    )
    assert code == 0, out
    assert parsed(out) == []


async def test_a_department_sees_its_own_receipts_only(
    principals: users.Principals, scenario: Scenario, archive_of_log: str
) -> None:
    bus = principals.of("police")
    code, out = await cli(
        bus, "audit", "trace", "--as", "police", "--resource", RES, "--format", "json",
        "--archive", archive_of_log,
    )  # fmt: skip
    assert code == 0, out
    rows = parsed(out)
    assert rows
    assert {r["consumer"] for r in rows} == {"police"}
    assert {r["purpose"] for r in rows} == {PURPOSE}
    code, out = await cli(bus, "audit", "trace", "--as", "police", "--resource", RES, "--key", "x")
    assert code == 2
    assert "--key VALUE" in out  # a department does not trace keys
    if bus.sasl:  # a bus with users: police cannot ask about hrss's receipts, nor trace keys
        code, out = await cli(
            bus, "audit", "trace", "--as", "hrss", "--resource", RES, "--archive", archive_of_log
        )
        assert code == 2
        assert "may not list what 'hrss' received" in out
        code, out = await cli(
            bus, "audit", "trace", "--resource", RES, "--key", "x", "--archive", archive_of_log
        )
        assert code == 2
        assert "the auditor's" in out


async def test_signing_keys_are_never_logged(bus: Connection, scenario: Scenario) -> None:
    assert scenario.log_lines  # the router and sessions did log
    text = "\n".join(scenario.log_lines) + "".join(repr(e) for e in await _log(bus))
    for secret in scenario.secrets:
        assert secret not in text
