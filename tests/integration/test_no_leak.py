"""No record ever reaches a consumer without an entitlement.

Every not-shared field, and every conditional field, of every published
record carries a distinctive marker: strings ``LEAK-<run>-<resource>-<field>-<n>``,
ints and decimals from a range nothing else uses. Departments then take
every position there is: subscribed only, granted (some fields, masked),
rejected, granted then revoked, the provider of one resource consuming
another, a wholly not-shared resource with forged events written straight
to the grants topic. After the router has routed everything, EVERY
``gov.dlv.*`` topic is scanned, raw (value bytes, keys, headers) and decoded:
a marker may appear only in a conditional field granted in clear to that
very consumer, under its own field name.
"""

from __future__ import annotations

import decimal
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import fastavro
import pytest
from aiokafka import AIOKafkaProducer
from routing_support import (
    RouterRun,
    list_topics,
    publish,
    read_raw,
    read_topic,
    running_router,
    wait_for,
    wait_routed,
    wait_views,
)

from exchange.avro import wire
from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.bus.envelope import RECORD_ID
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog, ShareType
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.control.state import GRANT_CODEC, load
from exchange.dev import sample
from exchange.sharing.records import EventKind, GrantEvent, new_id, now

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"  # health: mixed
POP = "population_basic"  # police: conditional, key id_number is conditional
MLA = "minimum_living_allowance"  # civil_affairs: conditional, ints and decimals
DEATH = "death_registration"  # health: wholly not shared
N = 40
RUN = uuid.uuid4().hex[:12]
TOKEN = f"LEAK-{RUN}"

#: (consumer, resource) -> conditional fields granted in clear (a marker may show there)
CLEAR_GRANTS: dict[tuple[str, str], set[str]] = {
    ("police", BMC): {"mother_name", "address"},  # + mother_id_number masked keep:6:4
    ("hrss", POP): {"id_number"},  # + name masked surname
    ("civil_affairs", POP): {"name"},
    ("hrss", MLA): {"household_size", "allowance_status"},  # household_size: an int marker
}


def marker(resource: str, name: str, i: int) -> str:
    return f"{TOKEN}-{resource}-{name}-{i}"


def int_marker(resource: str, name: str, i: int) -> int:
    base = {"birth_weight_grams": 900_000_000, "gestational_weeks": 910_000_000}
    return base.get(name, 920_000_000) + 1000 * sorted(RESOURCES).index(resource) + i


def decimal_marker(field_no: int, i: int, scale: int) -> decimal.Decimal:
    return decimal.Decimal(f"7{field_no:02d}{i:03d}975.{'3' * scale}")


RESOURCES = (BMC, POP, MLA, DEATH)


@dataclass
class Markers:
    strings: int = 0
    ints: dict[int, tuple[str, str]] = field(default_factory=dict)  # value -> (res, field)
    decimals: dict[decimal.Decimal, tuple[str, str]] = field(default_factory=dict)
    int_bytes: dict[bytes, tuple[str, str]] = field(default_factory=dict)
    decimal_bytes: dict[bytes, tuple[str, str]] = field(default_factory=dict)


def marked_records(catalog: Catalog, resource: str, seed: int, m: Markers) -> list[dict[str, Any]]:
    res = catalog.resources[resource]
    records = sample.generate(res.schema_, N, seed=seed)
    for i, rec in enumerate(records):
        for field_no, f in enumerate(res.fields):
            if f.share_type is ShareType.UNCONDITIONAL:
                continue
            t = f.avro_type
            base = next(b for b in t if b != "null") if isinstance(t, list) else t
            if base == "string":
                rec[f.name] = marker(resource, f.name, i)
                m.strings += 1
            elif base == "int":
                rec[f.name] = value = int_marker(resource, f.name, i)
                m.ints[value] = (resource, f.name)
                buf = io.BytesIO()
                fastavro.schemaless_writer(buf, fastavro.parse_schema("int"), value)
                m.int_bytes[buf.getvalue()] = (resource, f.name)
            elif isinstance(base, dict) and base.get("logicalType") == "decimal":
                scale = int(base["scale"])
                rec[f.name] = amount = decimal_marker(field_no, i, scale)
                m.decimals[amount] = (resource, f.name)
                unscaled = int(amount.scaleb(scale))
                raw = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
                m.decimal_bytes[raw] = (resource, f.name)
    return records


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    async with running_router(bus) as run:
        yield run


async def forge(bus: Connection, *events: GrantEvent) -> None:
    """Write grant events straight to gov.ctl.grants, bypassing the API's checks."""
    async with AIOKafkaProducer(**bus.client_options(), acks="all") as producer:
        for ev in events:
            await producer.send_and_wait(
                topics.GRANTS, key=ev.resource.encode(), value=GRANT_CODEC.encode(ev.to_avro())
            )


@dataclass
class Published:
    markers: Markers
    count: int
    forged: list[GrantEvent]


@pytest.fixture(scope="module")
async def published(bus: Connection, loaded_catalog: Catalog, router: RouterRun) -> Published:
    catalog = loaded_catalog
    async with (
        Department(bus, "police") as police,
        Department(bus, "hrss") as hrss,
        Department(bus, "health") as health,
        Department(bus, "civil_affairs") as civil,
        Department(bus, "market") as market,
    ):
        # birth certificates: subscribed only / granted / rejected / revoked / the provider
        await hrss.subscribe(BMC)
        await health.subscribe(BMC)  # the provider itself: it reads its source topic
        await police.subscribe(BMC)
        app = await police.apply(
            BMC, fields=["mother_name", "mother_id_number", "address"], purpose="落户"
        )
        await health.approve(app, masks={"mother_id_number": "keep:6:4"})
        await civil.subscribe(BMC)
        app = await civil.apply(BMC, fields=["father_name"], purpose="婚姻登记")
        await health.reject(app, reason="用途不符 purpose does not match")
        await market.subscribe(BMC)
        app = await market.apply(BMC, fields=["mother_name"], purpose="测试")
        gid = await health.approve(app)
        await health.revoke(gid, reason="误批 approved by mistake")
        # population: the provider of BMC as a consumer; grants with masks; a hashed key
        await health.subscribe(POP)
        app = await hrss.apply(POP, fields=["id_number", "name"], purpose="参保")
        await police.approve(app, masks={"name": "surname"})
        app = await civil.apply(POP, fields=["name"], purpose="低保核对")
        await police.approve(app)
        # minimum living allowance: ints and decimals
        await health.subscribe(MLA)
        app = await hrss.apply(
            MLA, fields=["household_size", "allowance_status", "id_number"], purpose="就业救助"
        )
        await civil.approve(app, fields=["household_size", "allowance_status"])

    # a wholly not-shared resource: forged subscription and a forged self-approval
    forged_app = new_id("APP")
    forged = [
        GrantEvent(kind=EventKind.SUBSCRIBED, actor="police", consumer="police", resource=DEATH),
        GrantEvent(
            kind=EventKind.APPLIED,
            actor="police",
            consumer="police",
            resource=DEATH,
            application_id=forged_app,
            fields=("id_number", "name"),
            purpose="户籍注销",
        ),
        GrantEvent(
            kind=EventKind.APPROVED,
            actor="police",
            consumer="police",
            resource=DEATH,
            application_id=forged_app,
            grant_id=new_id("GR"),
            fields=("id_number", "name"),
        ),
        GrantEvent(  # a grant of a not-shared field of a mixed resource, "approved" by hrss
            kind=EventKind.APPROVED,
            actor="hrss",
            consumer="hrss",
            resource=BMC,
            application_id=new_id("APP"),
            grant_id=new_id("GR"),
            fields=("birth_weight_grams",),
        ),
    ]
    await forge(bus, *forged)

    unconditional = {r: catalog.resources[r].fields_of(ShareType.UNCONDITIONAL) for r in RESOURCES}
    await wait_views(
        router,
        BMC,
        {
            "hrss": unconditional[BMC],
            "police": [*unconditional[BMC], "mother_name", "mother_id_number", "address"],
            "civil_affairs": unconditional[BMC],
            "market": unconditional[BMC],
            "health": None,
        },
    )
    await wait_views(
        router,
        POP,
        {
            "health": unconditional[POP],
            "hrss": [*unconditional[POP], "id_number", "name"],
            "civil_affairs": [*unconditional[POP], "name"],
        },
    )
    await wait_views(
        router,
        MLA,
        {
            "health": unconditional[MLA],
            "hrss": [*unconditional[MLA], "household_size", "allowance_status"],
        },
    )
    # every forged event reached the router's book and was refused there
    ids = {ev.event_id for ev in forged}
    await wait_for(
        lambda: ids <= set(router.router.state.book.refused),
        within=10,
        what="the router to refuse the forged events",
    )
    assert router.views(DEATH) == {}

    markers = Markers()
    before = router.router.routed
    total = 0
    for seed, resource in enumerate(RESOURCES, start=100):
        records = marked_records(catalog, resource, seed, markers)
        await publish(bus, catalog, resource, records)
        total += len(records)
    await wait_routed(router, before + total)
    return Published(markers, total, forged)


@dataclass
class Findings:
    topics: list[str] = field(default_factory=list)
    records: int = 0
    allowed: dict[tuple[str, str, str], int] = field(default_factory=dict)
    leaks: list[str] = field(default_factory=list)


def _consumer_resource(topic: str) -> tuple[str, str]:
    _, _, consumer, resource = topic.split(".", 3)
    return consumer, resource


async def scan(bus: Connection, p: Published) -> Findings:
    found = Findings()
    registry = SchemaRegistry(bus)
    await registry.refresh()
    token = TOKEN.encode()
    for topic in sorted(t for t in await list_topics(bus) if t.startswith("gov.dlv.")):
        found.topics.append(topic)
        consumer, resource = _consumer_resource(topic)
        clear = CLEAR_GRANTS.get((consumer, resource), set())
        for rec in await read_raw(bus, topic):
            where = f"{topic}[{rec.partition}]@{rec.offset}"
            for hkey, hval in rec.headers or ():
                if token in hkey.encode() or token in hval:
                    found.leaks.append(f"{where}: header {hkey}={hval!r}")
            if rec.value is None:  # a deletion or a grant's retraction: a key, headers, no value
                if rec.key is not None and token in rec.key:
                    found.leaks.append(f"{where}: tombstone key {rec.key!r}")
                continue
            found.records += 1
            value = rec.value
            sid, body = wire.unframe(value)
            decoded = wire.decode(await registry.resolve(sid), body)
            shown = 0
            for name, v in decoded.items():
                if isinstance(v, str) and TOKEN in v:
                    parts = v.split("-")
                    origin = (parts[2], "-".join(parts[3:-1]))
                    if origin == (resource, name) and name in clear:
                        shown += v.count(TOKEN)
                        key = (consumer, resource, name)
                        found.allowed[key] = found.allowed.get(key, 0) + 1
                    else:
                        found.leaks.append(f"{where}: field {name}={v!r}")
                elif isinstance(v, int) and not isinstance(v, bool) and v in p.markers.ints:
                    if p.markers.ints[v] == (resource, name) and name in clear:
                        key = (consumer, resource, name)
                        found.allowed[key] = found.allowed.get(key, 0) + 1
                    else:
                        found.leaks.append(f"{where}: field {name}={v} from {p.markers.ints[v]}")
                elif isinstance(v, decimal.Decimal) and v in p.markers.decimals:
                    found.leaks.append(f"{where}: field {name}={v} from {p.markers.decimals[v]}")
            # raw bytes: no marker outside the fields decoded above
            if value.count(token) != shown:
                found.leaks.append(f"{where}: {value.count(token)} markers in the raw value")
            for raw, origin in p.markers.decimal_bytes.items():
                if raw in value:
                    found.leaks.append(f"{where}: raw bytes of the decimal marker of {origin}")
            for raw, origin in p.markers.int_bytes.items():
                allowed = origin[0] == resource and origin[1] in clear
                if raw in value and not allowed:
                    found.leaks.append(f"{where}: raw bytes of the int marker of {origin}")
            if rec.key is not None and token in rec.key:
                parts = rec.key.decode().split("-")
                if parts[2] != resource or "-".join(parts[3:-1]) not in clear:
                    found.leaks.append(f"{where}: key {rec.key!r}")
    return found


async def test_no_marker_reaches_a_consumer_without_entitlement(
    bus: Connection, published: Published, router: RouterRun
) -> None:
    found = await scan(bus, published)
    print(
        f"\nscanned {found.records} records on {len(found.topics)} delivery topics "
        f"({published.count} published with {published.markers.strings} string markers, "
        f"{len(published.markers.ints)} int and {len(published.markers.decimals)} decimal markers)"
    )
    for topic in found.topics:
        print(f"  {topic}")
    assert found.leaks == []
    router.check_alive()


async def test_the_scan_sees_what_was_granted(bus: Connection, published: Published) -> None:
    """The scanner is not blind: approved conditional fields do show their markers."""
    found = await scan(bus, published)
    assert found.allowed == {
        ("police", BMC, "mother_name"): N,
        ("police", BMC, "address"): N,
        ("hrss", POP, "id_number"): N,
        ("civil_affairs", POP, "name"): N,
        ("hrss", MLA, "household_size"): N,
    }
    expected_topics = {
        topics.delivery(c, r)
        for c, r in [
            ("hrss", BMC),
            ("police", BMC),
            ("civil_affairs", BMC),
            ("market", BMC),
            ("health", POP),
            ("hrss", POP),
            ("civil_affairs", POP),
            ("health", MLA),
            ("hrss", MLA),
        ]
    }
    assert set(found.topics) == expected_topics  # nothing for the provider, nothing for DEATH
    assert found.records == N * len(expected_topics)


async def test_forged_events_are_refused_by_every_reader_of_the_topic(
    bus: Connection, published: Published
) -> None:
    state = await load(bus)
    for ev in published.forged:
        assert ev.event_id in state.book.refused
        assert ev.event_id not in state.book.accepted
    reasons = [state.book.refused[ev.event_id] for ev in published.forged]
    assert "不予共享" in reasons[0]  # subscription to death_registration
    assert "不予共享" in reasons[1]  # application for it
    assert "only the provider" in reasons[2]  # police approving its own application
    assert "only the provider" in reasons[3]  # hrss approving itself a not-shared field
    assert state.book.grant_for("police", DEATH, now()) is None
    assert state.book.grant_for("hrss", BMC, now()) is None
    assert ("police", DEATH) not in state.book.subscriptions


# ------------------------------------------- what a provider's raw producer adds


async def _raw_record(
    bus: Connection, catalog: Catalog, key: bytes, headers: list[tuple[str, bytes]]
) -> str:
    """A valid birth certificate written by a provider's own producer with ``key``/``headers``."""
    rec = sample.generate(catalog.resources[BMC].schema_, 1, seed=77)[0]
    cert = f"RAW-{uuid.uuid4().hex[:8]}"
    rec["certificate_no"] = cert
    async with Publisher(bus, catalog, "health") as pub:
        value = pub.prepare(BMC, rec).value
    async with AIOKafkaProducer(**bus.client_options(), acks="all") as producer:
        await producer.send_and_wait(
            topics.source("health", BMC), value=value, key=key, headers=headers
        )
    return cert


async def _delivered_to_hrss(bus: Connection, cert: str) -> Any:
    got = await read_topic(
        bus,
        topics.delivery("hrss", BMC),
        until=lambda out: any(r.value["certificate_no"] == cert for r in out),
        within=20,
    )
    return next(r for r in got if r.value["certificate_no"] == cert)


async def test_a_source_key_that_is_not_the_key_field_is_not_forwarded(
    bus: Connection, loaded_catalog: Catalog, published: Published
) -> None:
    secret = f"{TOKEN}-key-330102199001011234".encode()
    cert = await _raw_record(bus, loaded_catalog, secret, [])
    rec = await _delivered_to_hrss(bus, cert)
    assert TOKEN not in (rec.key or "")
    assert rec.key == cert  # the key field's value, which hrss is entitled to


async def test_a_forged_record_id_header_is_not_forwarded(
    bus: Connection, loaded_catalog: Catalog, published: Published
) -> None:
    secret = f"{TOKEN}-header-birth-weight-4200".encode()
    cert = await _raw_record(bus, loaded_catalog, b"k", [(RECORD_ID, secret)])
    rec = await _delivered_to_hrss(bus, cert)
    assert all(TOKEN not in v for v in rec.headers.values())
