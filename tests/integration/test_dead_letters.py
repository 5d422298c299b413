"""Undecodable records go to gov.dlq.<resource> with the reason; the router keeps routing.

Bad values are written raw with a plain producer (a department's system
that does not use our publisher, or a broken one) between valid records, in
one partition, so the valid records after each bad one show the router went
on. Records on a source topic that does not match the catalog (a department
writing under another provider's name, or a resource the catalog does not
have) are dead-lettered too, never routed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer
from routing_support import (
    RouterRun,
    publish,
    read_raw,
    read_topic,
    running_router,
    wait_routed,
    wait_views,
)

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog, ShareType
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.dev import sample
from exchange.router.dead_letters import DLQ_REASON, SOURCE_OFFSET, SOURCE_TOPIC

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
LICENCE = "business_licence"
IMPOSTOR_TOPIC = topics.source("police", BMC)  # police writing health's resource
UNKNOWN_TOPIC = topics.source("health", "vaccination_record")  # not in the catalog


@pytest.fixture(scope="module")
async def router(bus: Connection, loaded_catalog: Catalog) -> AsyncIterator[RouterRun]:
    # created before the router starts, so its pattern subscription has them at once
    await kafka.ensure_topics(bus, [IMPOSTOR_TOPIC, UNKNOWN_TOPIC], partitions=1)
    async with running_router(bus) as run:
        yield run


def bad_values(catalog: Catalog, valid: bytes) -> list[tuple[str, bytes | None, str]]:
    """(name, value, expected start of the reason) for each kind of undecodable record."""
    bmc = catalog.resources[BMC]
    licence = catalog.resources[LICENCE]
    licence_body = wire.encode(
        avro.parse(licence.schema_), sample.generate(licence.schema_, 1, seed=5)[0]
    )
    return [
        ("wrong magic byte", b"\x01" + valid[1:], "wrong magic byte 1"),
        (
            "unknown schema id",
            wire.frame(2_000_000_001, valid[5:]),
            f"schema id 2000000001 is not a registered version of {BMC!r}",
        ),
        ("truncated Avro", valid[: len(valid) // 2], "Avro body does not match its schema"),
        ("empty value", b"", "empty value"),
        # a tombstone (a key, no value) is a deletion: test_deletions
        ("header cut short", b"\x00\x00\x01", "value of 3 bytes is shorter than the 5-byte"),
        (
            "another resource's schema id",
            wire.frame(licence.schema_id, licence_body),
            f"schema id {licence.schema_id} is not a registered version of {BMC!r}",
        ),
        (
            "another resource's bytes under this schema id",
            wire.frame(bmc.schema_id, licence_body),
            "Avro body does not match its schema",
        ),
        ("trailing bytes", valid + b"\x00\x02", "Avro body has 2 bytes left over"),
        ("garbage", wire.frame(bmc.schema_id, b"\xff" * 64), "Avro body does not match"),
    ]


async def test_undecodable_records_go_to_the_dead_letter_topic_and_routing_goes_on(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    catalog = loaded_catalog
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe(BMC)
    unconditional = catalog.resources[BMC].fields_of(ShareType.UNCONDITIONAL)
    await wait_views(router, BMC, {"hrss": unconditional})

    records = sample.generate(catalog.resources[BMC].schema_, 30, seed=21)
    for i, rec in enumerate(records):
        rec["certificate_no"] = f"D{i:05d}"
    async with Publisher(bus, catalog, "health") as pub:
        prepared = [pub.prepare(BMC, rec) for rec in records]
    bad = bad_values(catalog, prepared[0].value)
    source = topics.source("health", BMC)

    sent_bad: dict[str, tuple[str, bytes | None, str]] = {}  # "partition:offset" -> bad
    valid_sent = []
    before = router.router.routed
    written = 0
    async with AIOKafkaProducer(**bus.client_options(), acks="all") as producer:
        # valid, bad, valid, bad, ... all in partition 0, so every bad one is followed by a good one
        for i, (name, value, reason) in enumerate(bad):
            p = prepared[i]
            await producer.send_and_wait(
                source, value=p.value, key=p.key, headers=p.headers, partition=0
            )
            valid_sent.append(p.key.decode())
            meta = await producer.send_and_wait(
                source,
                value=value,
                key=b"bad-" + str(i).encode(),
                partition=0,
                # headers of the DLQ's own names, forged by the provider: never passed on
                headers=[(DLQ_REASON, b"forged"), (SOURCE_OFFSET, b"9:9"), ("x-trace", b"kept")],
            )
            sent_bad[f"{meta.partition}:{meta.offset}"] = (name, value, reason)
            written += 2
        # a valid record under another provider's name, and one for a resource nobody has
        await producer.send_and_wait(IMPOSTOR_TOPIC, value=prepared[20].value, key=prepared[20].key)
        await producer.send_and_wait(UNKNOWN_TOPIC, value=prepared[21].value, key=b"v-1")
        written += 2
    # and the ordinary publisher afterwards: the router is still routing
    await publish(bus, catalog, BMC, records[len(bad) : 20])
    written += 20 - len(bad)
    await wait_routed(router, before + written)
    router.check_alive()

    # every valid record reached the subscriber; none of the bad or misplaced ones did
    got = await read_topic(bus, topics.delivery("hrss", BMC), idle=1.0)
    delivered = sorted(r.value["certificate_no"] for r in got)
    assert delivered == sorted(valid_sent + [f"D{i:05d}" for i in range(len(bad), 20)])
    for r in got:
        assert list(r.value) == unconditional

    # every bad record is on the DLQ, unchanged, with the reason and where it came from
    dlq = await read_raw(bus, topics.dead_letter(BMC))
    from_source = {}
    from_impostor = []
    for rec in dlq:
        headers = {k: v for k, v in rec.headers}
        if headers[SOURCE_TOPIC] == source.encode():
            from_source[headers[SOURCE_OFFSET].decode()] = (rec, headers)
        else:
            from_impostor.append((rec, headers))
    assert set(from_source) == set(sent_bad), "each bad record exactly once, nothing else"
    print("\ndead letters:")
    for where, (name, value, reason) in sent_bad.items():
        rec, headers = from_source[where]
        got_reason = headers[DLQ_REASON].decode()
        print(f"  {name:<48} {got_reason}")
        assert got_reason.startswith(reason), (name, got_reason)
        assert rec.value == value  # the bytes as they were
        names = [k for k, _ in rec.headers]
        assert names.count(DLQ_REASON) == names.count(SOURCE_OFFSET) == 1, names
        assert headers["x-trace"] == b"kept"  # the provider's other headers travel on
    assert len(from_impostor) == 1
    rec, headers = from_impostor[0]
    assert headers[SOURCE_TOPIC] == IMPOSTOR_TOPIC.encode()
    assert headers[DLQ_REASON].decode() == f"{BMC!r} is provided by 'health', not 'police'"
    assert rec.value == prepared[20].value

    unknown = await read_raw(bus, topics.dead_letter("vaccination_record"))
    assert len(unknown) == 1
    reason = dict(unknown[0].headers)[DLQ_REASON].decode()
    assert reason == f"topic {UNKNOWN_TOPIC} is not the source topic of a catalog resource"

    registry = router.router.metrics.registry
    counted = registry.get_sample_value(
        "gov_exchange_records_dead_lettered_total", {"resource": BMC}
    )
    assert counted == len(bad) + 1


async def test_the_router_still_routes_afterwards(
    bus: Connection, loaded_catalog: Catalog, router: RouterRun
) -> None:
    records = sample.generate(loaded_catalog.resources[BMC].schema_, 3, seed=22)
    for i, rec in enumerate(records):
        rec["certificate_no"] = f"AFTER{i}"
    await publish(bus, loaded_catalog, BMC, records)
    got = await read_topic(
        bus,
        topics.delivery("hrss", BMC),
        until=lambda out: (
            {"AFTER0", "AFTER1", "AFTER2"} <= {r.value["certificate_no"] for r in out}
        ),
        within=20,
    )
    assert got
    router.check_alive()
