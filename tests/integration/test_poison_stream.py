"""Poison records in a long stream: each one dead-lettered and audited, every valid one delivered.

A stream of valid birth certificates is written to the source topic with
malformed values interleaved at random positions in every partition (about
1.2 %, the six kinds a broken or hostile department system produces: wrong
magic byte, unknown schema id, truncated Avro, another resource's bytes,
empty value, oversized value). Two departments are entitled (hrss by
subscription, police by an approved application with a mask); a third
(market) is not. Through one real router on the real broker, the test then
checks what is actually on the topics:

* every bad record is on ``gov.dlq.<resource>`` once, found by its source
  offset header, with the reason its kind calls for, its bytes unchanged
  (an oversized one without its value);
* every bad record has a ``RECORD_DEAD_LETTERED`` entry on ``gov.audit``
  naming its partition and offset and the same reason;
* every valid record reached both entitled departments, by record id, as
  the record it was; nothing else reached them, and nothing reached market;
* the router is still routing afterwards: one more record is delivered.

CI runs 5,000 records; ``EXCHANGE_LONG_TESTS=1`` runs 50,000.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from routing_support import (
    RouterRun,
    list_topics,
    read_topic,
    running_router,
    wait_for,
    wait_routed,
)

from exchange.audit.entry import Action
from exchange.audit.log import entries_only, read_log
from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.envelope import RECORD_ID
from exchange.bus.limits import MAX_VALUE_BYTES
from exchange.catalog.model import Catalog
from exchange.clients.department import Department
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader
from exchange.dev import sample
from exchange.errors import DecodeError
from exchange.router.dead_letters import DLQ_REASON, SOURCE_OFFSET, SOURCE_TOPIC

pytestmark = pytest.mark.integration

BMC = "birth_medical_certificate"
LICENCE = "business_licence"
LONG = bool(os.environ.get("EXCHANGE_LONG_TESTS"))
TOTAL = 50_000 if LONG else 5_000  # valid records
BAD = TOTAL * 12 // 1000  # 1.2 % of the valid ones, at least 10 of each kind
PARTITIONS = 3  # of the source topic (catalog_store.load's default)
ENTITLED = ("hrss", "police")
NOT_ENTITLED = "market"


@dataclass(frozen=True)
class Poison:
    kind: str
    value: bytes | None
    reason: Callable[[str], bool]  # does the dead letter's reason fit this kind?
    reason_text: str  # what it should say, for failure messages


def _starts(prefix: str) -> Callable[[str], bool]:
    return lambda reason: reason.startswith(prefix)


def _any_of(*prefixes: str) -> Callable[[str], bool]:
    return lambda reason: reason.startswith(prefixes)


def make_poison(catalog: Catalog, rng: random.Random, count: int) -> list[Poison]:
    """``count`` bad values, the six kinds in turn, each built from real records."""
    bmc = catalog.resources[BMC]
    licence = catalog.resources[LICENCE]
    bmc_parsed = avro.parse(bmc.schema_)
    licence_parsed = avro.parse(licence.schema_)
    # valid BMC bodies to break; their certificate numbers are never among the valid ones
    bodies = [
        wire.encode(bmc_parsed, {**rec, "certificate_no": f"BAD{i:06d}"})
        for i, rec in enumerate(sample.generate(bmc.schema_, 50, seed=101))
    ]
    # business licences that do not decode as a birth certificate (checked, not hoped)
    foreign: list[bytes] = []
    for rec in sample.generate(licence.schema_, 200, seed=102):
        body = wire.encode(licence_parsed, rec)
        try:
            wire.decode(bmc_parsed, body)
        except DecodeError:
            foreign.append(body)
    assert len(foreign) >= 20, "too few business licences that do not decode as BMC"
    avro_mismatch = ("Avro body does not match its schema", "Avro body has ")
    mismatch = " or ".join(avro_mismatch)

    out: list[Poison] = []
    for i in range(count):
        body = bodies[i % len(bodies)]
        valid = wire.frame(bmc.schema_id, body)
        kind = i % 6
        if kind == 0:
            text = "wrong magic byte 1"
            out.append(Poison("wrong magic byte", b"\x01" + valid[1:], _starts(text), text))
        elif kind == 1:
            sid = 2_000_000_000 + i
            text = f"schema id {sid} is not a registered version of {BMC!r}"
            out.append(Poison("unknown schema id", wire.frame(sid, body), _starts(text), text))
        elif kind == 2:
            cut = rng.randrange(wire.HEADER_SIZE + 1, len(valid))  # a header and part of a body
            out.append(Poison("truncated Avro", valid[:cut], _any_of(*avro_mismatch), mismatch))
        elif kind == 3:
            value = wire.frame(bmc.schema_id, foreign[i % len(foreign)])
            out.append(Poison("another schema's bytes", value, _any_of(*avro_mismatch), mismatch))
        elif kind == 4:
            value = b""  # (a tombstone with a key is a deletion: see test_deletions)
            out.append(Poison("empty value", value, _starts("empty value"), "empty value"))
        else:
            padding = b"\x00" * (MAX_VALUE_BYTES - len(valid) + 1 + rng.randrange(1000))
            value = valid + padding
            text = f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}"
            out.append(Poison("oversized value", value, _starts(text), text))
    return out


async def read_raw(bus: Connection, topic: str) -> list[Any]:
    return await kafka.read_to_end(bus, topic, timeout_s=300 if LONG else 30)


async def entitle(bus: Connection, catalog: Catalog) -> dict[str, tuple[str, ...]]:
    """hrss subscribes, police is granted mother_name (masked); their view fields."""
    async with Department(bus, "hrss") as hrss:
        await hrss.subscribe(BMC)
    async with Department(bus, "police") as police:
        app = await police.apply(BMC, fields=["mother_name"], purpose="落户 household registration")
    async with Department(bus, "health") as health:
        await health.approve(app, masks={"mother_name": "surname"})
    fields = {}
    for dept in ENTITLED:
        async with Department(bus, dept) as d:
            fields[dept] = d.explain(BMC).fields
    assert "mother_name" in fields["police"]
    assert "mother_name" not in fields["hrss"]
    return fields


@pytest.mark.timeout(1800 if LONG else 120)
async def test_poison_records_in_a_long_stream(bus: Connection, loaded_catalog: Catalog) -> None:
    catalog = loaded_catalog
    rng = random.Random(20240505)
    fields = await entitle(bus, catalog)
    source = topics.source("health", BMC)

    # the stream: valid records in order, the bad ones at random positions
    template = sample.generate(catalog.resources[BMC].schema_, 1, seed=9)[0]
    async with Publisher(bus, catalog, "health") as pub:
        valid = [
            pub.prepare(BMC, {**template, "certificate_no": f"P{i:07d}"}) for i in range(TOTAL)
        ]
    poison = make_poison(catalog, rng, BAD)
    stream: list[tuple[str, Any]] = [("valid", p) for p in valid]
    for p in poison:
        stream.insert(rng.randrange(len(stream) + 1), ("bad", p))
    expected_ids = {p.record_id: p.value for p in valid}
    certificate_of = {p.record_id: f"P{i:07d}" for i, p in enumerate(valid)}
    assert len(expected_ids) == TOTAL

    async with running_router(bus) as run:
        await wait_views_ready(run)
        before = run.router.routed
        started = time.monotonic()
        sent: list[tuple[str, Any, Any]] = []
        async with AIOKafkaProducer(
            **bus.client_options(), acks="all", max_request_size=2 * MAX_VALUE_BYTES
        ) as producer:
            for what, item in stream:
                if what == "valid":
                    fut = await producer.send(
                        source, value=item.value, key=item.key, headers=item.headers
                    )
                else:  # written raw, to a random partition, as a broken system would
                    fut = await producer.send(
                        source,
                        value=item.value,
                        key=f"bad-{len(sent)}".encode(),
                        partition=rng.randrange(PARTITIONS),
                    )
                sent.append((what, item, fut))
            metas = [(what, item, await fut) for what, item, fut in sent]
        bad_at = {f"{m.partition}:{m.offset}": item for what, item, m in metas if what == "bad"}
        assert len(bad_at) == BAD
        per_partition = Counter(where.split(":")[0] for where in bad_at)
        assert set(per_partition) == {str(p) for p in range(PARTITIONS)}, per_partition
        await wait_routed(run, before + TOTAL + BAD, within=600 if LONG else 45)
        routed_in = time.monotonic() - started
        run.check_alive()

        # the dead letters: each bad record once, with its kind's reason, as it was sent
        dlq = await read_raw(bus, topics.dead_letter(BMC))
        dead: dict[str, tuple[Any, dict[str, bytes]]] = {}
        for rec in dlq:
            headers = dict(rec.headers)
            assert headers[SOURCE_TOPIC] == source.encode()
            where = headers[SOURCE_OFFSET].decode()
            assert where not in dead, f"{where} dead-lettered twice"
            dead[where] = (rec, headers)
        assert set(dead) == set(bad_at), (
            f"{len(set(bad_at) - set(dead))} bad records missing from the DLQ, "
            f"{len(set(dead) - set(bad_at))} records there that were not bad"
        )
        kinds = Counter[str]()
        for where, p in bad_at.items():
            rec, headers = dead[where]
            reason = headers[DLQ_REASON].decode()
            assert p.reason(reason), (where, p.kind, reason, p.reason_text)
            kinds[p.kind] += 1
            if p.kind == "oversized value":
                assert rec.value is None  # not copied: it would not fit either
            else:
                assert rec.value == p.value, (where, p.kind)
        assert len(kinds) == 6, kinds

        # each one audited, naming its offset, with the same reason
        log = [e for _, e in entries_only(await read_log(bus))]
        audited = {}
        for e in log:
            if e.action is Action.RECORD_DEAD_LETTERED and e.details["source_topic"] == source:
                where = f"{e.details['partition']}:{e.details['offset']}"
                assert where not in audited, f"{where} audited twice"
                audited[where] = e
        assert set(audited) == set(bad_at)
        for where, e in audited.items():
            assert (e.resource, e.provider, e.actor) == (BMC, "health", "router")
            assert e.details["dead_letter_topic"] == topics.dead_letter(BMC)
            assert e.reason == dict(dead[where][1])[DLQ_REASON].decode()

        # every valid record reached every entitled department, as itself; nothing else did
        for dept in ENTITLED:
            topic = topics.delivery(dept, BMC)
            raw = await read_raw(bus, topic)
            ids = Counter(dict(r.headers)[RECORD_ID].decode() for r in raw)
            assert set(ids) == set(expected_ids), (
                f"{dept}: {len(set(expected_ids) - set(ids))} valid records missing, "
                f"{len(set(ids) - set(expected_ids))} records that were never valid"
            )
            assert sum(ids.values()) == TOTAL, f"{dept}: duplicates without a crash"
            async with Reader(bus, topic) as reader:
                got = await reader.read(idle_timeout=1.0)
            assert len(got) == TOTAL
            for r in got:
                assert r.record_id is not None
                assert r.value["certificate_no"] == certificate_of[r.record_id]
                assert tuple(r.value) == fields[dept]
            delivered = sum(
                int(e.details["record_count"])
                for e in log
                if e.action is Action.RECORDS_DELIVERED and e.consumer == dept and e.resource == BMC
            )
            assert delivered == TOTAL, f"{dept}: the audit log counts {delivered} deliveries"
        market = topics.delivery(NOT_ENTITLED, BMC)
        if market in await list_topics(bus):
            assert await read_raw(bus, market) == []

        counted = run.router.metrics.registry.get_sample_value(
            "gov_exchange_records_dead_lettered_total", {"resource": BMC}
        )
        assert counted == BAD

        # and it is still routing: one more record, delivered to both
        async with Publisher(bus, catalog, "health") as pub:
            [last_id] = await pub.publish(BMC, [{**template, "certificate_no": "LAST"}])
        for dept in ENTITLED:
            await read_topic(
                bus,
                topics.delivery(dept, BMC),
                until=lambda out: any(r.record_id == last_id for r in out),
                within=20,
            )
        run.check_alive()
    print(
        f"\n{TOTAL} valid + {BAD} bad records ({dict(kinds)}) routed in {routed_in:.1f} s; "
        f"all bad ones dead-lettered and audited, all valid ones delivered to {ENTITLED}"
    )


async def wait_views_ready(run: RouterRun) -> None:
    def ready() -> bool:
        run.check_alive()
        return set(ENTITLED) <= set(run.views(BMC)) and not run.router.view_table.stale

    await wait_for(ready, within=15, what=f"views of {BMC} for {ENTITLED}")
