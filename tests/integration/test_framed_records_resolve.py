"""Every framed record on the bus resolves through ``gov.ctl.schemas``, as an outside tool sees it.

A realistic scenario (catalog load, a subscription, an application approved
with a mask and later revoked, a refused command, records published and
routed, a dead letter, the audit entries of all of it), then every topic on
the broker is scanned: each value that starts with magic byte 0 is decoded
with the schema registered under its id on ``gov.ctl.schemas`` and nothing
else, by the small reader below (a plain Kafka client and fastavro, none of
the bus's own decoding), as Karapace or a Kafka Connect converter would.

The one exception is a record the router dead-lettered: the provider wrote
it, the bus refused it, and its dead letter quotes it byte for byte; the
scan checks the quote and skips both.

A bus written before every control schema was registered (grant events
under an id nothing resolved) is made readable by the next router start,
catalog load or department command.

Each test has an embedded broker of its own: a scan of every topic must see
only its own scenario, never records other modules left on a shared cluster.
"""

from __future__ import annotations

import io
import json
import struct
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fastavro
import pytest
from lanes import fresh_bus
from routing_support import (
    list_topics,
    publish,
    running_router,
    wait_for,
    wait_routed,
    wait_views,
)

from exchange.audit.entry import AUDIT_ENTRY
from exchange.avro import wire
from exchange.avro.control_records import CATALOG_SNAPSHOT
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.control import catalog_store
from exchange.control.state import GRANT_CODEC
from exchange.dev import sample
from exchange.dev.kafka import KafkaCluster
from exchange.errors import CommandRefused
from exchange.router.dead_letters import SOURCE_OFFSET, SOURCE_TOPIC
from exchange.sharing.records import EventKind, GrantEvent

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
FOREIGN_ID = 2_000_000_001  # a provider framing with a registry of its own


@pytest.fixture
def bus(kafka_lane: KafkaCluster | None) -> Iterator[Connection]:
    """An empty bus for each test (the schema ids it checks start from nothing)."""
    yield from fresh_bus(kafka_lane)


# --- the outside reader ---------------------------------------------------------------


@dataclass
class Scan:
    decoded: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # topic -> records
    problems: list[str] = field(default_factory=list)
    dead_lettered: int = 0


async def registered(bus: Connection) -> dict[int, Any]:
    """Schema id -> parsed schema, from the records of ``gov.ctl.schemas`` (key: the id)."""
    schemas: dict[int, Any] = {}
    for rec in await kafka.read_to_end(bus, "gov.ctl.schemas"):
        if rec.value is None:
            schemas.pop(int(rec.key), None)
        else:
            schemas[int(rec.key)] = fastavro.parse_schema(json.loads(rec.value))
    return schemas


def decode(value: bytes, schemas: dict[int, Any]) -> dict[str, Any]:
    sid = struct.unpack_from(">I", value, 1)[0]
    if sid not in schemas:
        raise LookupError(f"schema id {sid} is not registered on gov.ctl.schemas")
    body = io.BytesIO(value[5:])
    record = fastavro.schemaless_reader(body, schemas[sid], None)
    if body.tell() != len(value) - 5:
        raise ValueError(f"{len(value) - 5 - body.tell()} bytes left over (schema id {sid})")
    assert isinstance(record, dict)
    return record


async def scan(bus: Connection) -> Scan:
    """Decode every framed record of every topic (Kafka's internal ``__`` topics aside)."""
    schemas = await registered(bus)
    names = sorted(t for t in await list_topics(bus) if not t.startswith("__"))
    records = {t: await kafka.read_to_end(bus, t) for t in names}
    result, quoted = Scan(), set()
    for topic in (t for t in names if t.startswith("gov.dlq.")):
        for letter in records[topic]:
            headers = dict(letter.headers)
            source = headers[SOURCE_TOPIC].decode()
            partition, offset = map(int, headers[SOURCE_OFFSET].decode().split(":"))
            [original] = [
                r for r in records[source] if (r.partition, r.offset) == (partition, offset)
            ]
            assert letter.value == original.value, "a dead letter quotes its record verbatim"
            quoted |= {(topic, letter.partition, letter.offset), (source, partition, offset)}
            result.dead_lettered += 1
    for topic in names:
        for rec in records[topic]:
            if not rec.value or rec.value[0] != 0 or (topic, rec.partition, rec.offset) in quoted:
                continue
            try:
                result.decoded.setdefault(topic, []).append(decode(rec.value, schemas))
            except Exception as exc:
                result.problems.append(f"{topic}[{rec.partition}]@{rec.offset}: {exc}")
    return result


# --- the scenario -----------------------------------------------------------------------


async def test_every_framed_record_of_a_busy_bus_decodes_by_its_registered_id(
    bus: Connection, sample_catalog: Catalog
) -> None:
    catalog = sample_catalog
    await catalog_store.load(bus, catalog, actor="tests", unsigned_override="test suite")
    records = sample.generate(catalog.resources[BMC].schema_, 25, seed=12)
    source = topics.source("health", BMC)
    async with running_router(bus) as run:
        async with Department(bus, "hrss") as hrss:
            await hrss.subscribe(BMC)
        async with Department(bus, "police") as police:
            app_id = await police.apply(
                BMC, fields=["mother_name", "mother_id_number"], purpose="落户 registration"
            )
        async with Department(bus, "health") as health:
            grant_id = await health.approve(app_id, masks={"mother_id_number": "keep:6:4"})
        async with Department(bus, "civil_affairs") as ca:
            with pytest.raises(CommandRefused):
                await ca.apply(BMC, fields=["birth_weight_grams"], purpose="统计 statistics")
        await wait_for(
            lambda: set(run.views(BMC)) == {"hrss", "police"}, within=15, what="both views"
        )
        await publish(bus, catalog, BMC, records[:20])
        async with Publisher(bus, catalog, "health") as pub:
            body = pub.prepare(BMC, records[0]).value[5:]
        async with kafka.producer(bus) as p:  # framed by the provider's own registry
            await p.send_and_wait(source, value=wire.frame(FOREIGN_ID, body), key=b"x")
        await wait_routed(run, 21)
        async with Department(bus, "health") as health:
            await health.revoke(grant_id, reason="落户办结 registration completed")
        await wait_views(run, BMC, {"police": None})
        await publish(bus, catalog, BMC, records[20:])
        await wait_routed(run, 26)

    found = await scan(bus)
    assert found.problems == []
    assert found.dead_lettered == 1
    grant_kinds = Counter(r["kind"] for r in found.decoded[topics.GRANTS])
    assert grant_kinds == {"SUBSCRIBED": 1, "APPLIED": 1, "APPROVED": 1, "REVOKED": 1}
    assert len(found.decoded[topics.CATALOG]) == 1
    assert len(found.decoded[source]) == 25
    assert len(found.decoded[topics.delivery("hrss", BMC)]) == 25
    masked = found.decoded[topics.delivery("police", BMC)]
    assert 0 < len(masked) <= 20
    assert all("*" in r["mother_id_number"] for r in masked)
    actions = {r["action"] for r in found.decoded[topics.AUDIT]}
    assert {"CATALOG_CHANGED", "COMMAND_REFUSED", "RECORDS_DELIVERED"} <= actions
    assert {"GRANT_REVOKED", "RECORD_DEAD_LETTERED"} <= actions


# --- a bus written before every control schema was registered ------------------------------


async def write_bus_of_before(bus: Connection, catalog: Catalog) -> None:
    """What a load and a subscription wrote before the fix: grant events under an unknown id."""
    await kafka.ensure_control_topics(bus)
    snap = catalog_store.new_snapshot(
        None, catalog_store.check_evolution(None, catalog), actor="tests"
    )
    registry = SchemaRegistry(bus)
    event = GrantEvent(kind=EventKind.SUBSCRIBED, actor="hrss", consumer="hrss", resource=BMC)
    async with kafka.producer(bus) as p:
        resource_schemas = [r.schema_ for r in catalog.resources.values()]
        await registry.register_all(p, [CATALOG_SNAPSHOT, AUDIT_ENTRY, *resource_schemas])
        await p.send_and_wait(
            topics.CATALOG, key=b"catalog", value=catalog_store.SNAPSHOT.encode(snap.to_avro())
        )
        await p.send_and_wait(
            topics.GRANTS, key=BMC.encode(), value=GRANT_CODEC.encode(event.to_avro())
        )


async def _router_start(bus: Connection, catalog: Catalog) -> None:
    async with running_router(bus):
        pass


async def _catalog_load(bus: Connection, catalog: Catalog) -> None:
    await catalog_store.load(
        bus, catalog, actor="tests", unsigned_override="test suite"
    )  # the same catalog again


async def _department_command(bus: Connection, catalog: Catalog) -> None:
    async with Department(bus, "police") as police:
        await police.subscribe(BMC)


@pytest.mark.parametrize(
    "upgrade",
    [_router_start, _catalog_load, _department_command],
    ids=["router", "catalog", "department"],
)
async def test_a_bus_written_before_gets_its_control_schemas_registered(
    bus: Connection,
    sample_catalog: Catalog,
    upgrade: Callable[[str, Catalog], Awaitable[None]],
) -> None:
    await write_bus_of_before(bus, sample_catalog)
    before = await scan(bus)
    [problem] = before.problems
    assert problem.startswith(topics.GRANTS)
    assert f"schema id {GRANT_CODEC.schema_id} is not registered" in problem
    await upgrade(bus, sample_catalog)
    after = await scan(bus)
    assert after.problems == []
    assert {r["consumer"] for r in after.decoded[topics.GRANTS]} >= {"hrss"}
