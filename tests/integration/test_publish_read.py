"""Typed publishing and reading on a real broker: round trip, validation, permission, dedup.

Several tests publish to the same source topics, so each test recognises its
own records by their record ids, and "nothing was sent" is checked by counting
the whole topic before and after (read to the high watermark the fetches
report, never trusting ListOffsets: DESIGN.md §3).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner

from exchange.avro.jsoncodec import from_json
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.envelope import PUBLISHER, RECORD_ID
from exchange.catalog.model import Catalog
from exchange.clients.publisher import Publisher
from exchange.clients.reader import Reader, Received, topic_for
from exchange.dev.sample import generate, iter_json_lines
from exchange.errors import PermissionDenied, RecordInvalid, UnknownResource

pytestmark = pytest.mark.integration

BIRTH = "birth_medical_certificate"
CJK = re.compile(r"[\u4e00-\u9fff]")


async def count(bus: Connection, topic: str) -> int:
    """Every record on the topic, whatever its content."""
    return len(await kafka.read_to_end(bus, topic, timeout_s=10))


async def read_all(bus: Connection, topic: str, *, dedup: bool = True) -> list[Received]:
    async with Reader(bus, topic, dedup=dedup) as reader:
        return await reader.read(idle_timeout=1.0)


async def read_until(bus: Connection, topic: str, ids: Iterable[str]) -> dict[str, Received]:
    """Read from the beginning until every one of ``ids`` arrived (others are skipped)."""
    wanted = set(ids)
    got: dict[str, Received] = {}
    reader = Reader(bus, topic)
    async with reader, contextlib.aclosing(reader.batches(idle_timeout=5.0)) as batches:
        async for batch in batches:
            got.update((r.record_id, r) for r in batch if r.record_id in wanted)
            if got.keys() == wanted:
                break
    return got


def source_of(catalog: Catalog, resource: str) -> str:
    res = catalog.resource(resource)
    return topics.source(res.provider, res.id)


@pytest.mark.parametrize(
    ("resource", "seed"),
    [
        (BIRTH, 101),  # Chinese names, enum, date, timestamp, nullable strings
        ("business_licence", 102),  # decimal money, boolean
        ("death_registration", 103),
        ("enterprise_registration", 104),
        ("marriage_registration", 105),
        ("minimum_living_allowance", 106),  # three decimals
        ("population_basic", 107),
        ("social_insurance_enrolment", 108),
    ],
)
async def test_sample_records_read_back_equal(
    bus: Connection, loaded_catalog: Catalog, resource: str, seed: int
) -> None:
    res = loaded_catalog.resource(resource)
    records = generate(res.schema_, 20, seed=seed)
    async with Publisher(bus, loaded_catalog, res.provider) as pub:
        ids = await pub.publish(resource, records)
    assert len(set(ids)) == len(records)
    sent = dict(zip(ids, records, strict=True))

    topic = topic_for(loaded_catalog, res.provider, resource)
    assert topic == f"gov.src.{res.provider}.{resource}"
    got = await read_until(bus, topic, sent)

    assert got.keys() == sent.keys()
    for rid, want in sent.items():
        item = got[rid]
        assert item.value == want
        for name, value in want.items():  # Decimal("1.5") == 1.5, so check the types too
            assert type(item.value[name]) is type(value), (name, item.value[name], value)
        assert item.key == str(want[res.key])
        assert item.headers[RECORD_ID] == rid
        assert item.headers[PUBLISHER] == res.provider
        assert item.schema_id == res.schema_id
        assert item.topic == topic

    values = [v for rec in records for v in rec.values()]
    assert any(isinstance(v, str) and CJK.search(v) for v in values), "no Chinese text"
    assert any(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in values)
    assert any(isinstance(v, dt.datetime) and v.tzinfo is not None for v in values)
    if resource in ("business_licence", "minimum_living_allowance"):
        assert any(isinstance(v, decimal.Decimal) for v in values)


async def test_topic_counts_agree_with_the_reader(bus: Connection, loaded_catalog: Catalog) -> None:
    """The fast counter the other tests use sees what a plain Reader sees."""
    topic = source_of(loaded_catalog, "population_basic")
    async with Publisher(bus, loaded_catalog, "police") as pub:
        await pub.publish(
            "population_basic",
            generate(loaded_catalog.resource("population_basic").schema_, 7, seed=7),
        )
    assert await count(bus, topic) == len(await read_all(bus, topic, dedup=False)) > 0


def _birth(catalog: Catalog, n: int, seed: int) -> list[dict[str, Any]]:
    return generate(catalog.resource(BIRTH).schema_, n, seed=seed)


def _wrong_type(r: dict[str, Any]) -> None:
    r["birth_weight_grams"] = "3200"


def _missing(r: dict[str, Any]) -> None:
    del r["mother_name"]


def _extra(r: dict[str, Any]) -> None:
    r["nickname"] = "小明"


def _null(r: dict[str, Any]) -> None:
    r["child_name"] = None


def _bad_enum(r: dict[str, Any]) -> None:
    r["gender"] = "男"


def _bad_date(r: dict[str, Any]) -> None:
    r["birth_date"] = "2024-02-30"


@pytest.mark.parametrize(
    ("spoil", "field"),
    [
        (_wrong_type, "birth_weight_grams"),
        (_missing, "mother_name"),
        (_extra, "nickname"),
        (_null, "child_name"),
        (_bad_enum, "gender"),
        (_bad_date, "birth_date"),
    ],
    ids=["wrong-type", "missing-field", "extra-field", "null-not-nullable", "enum", "date"],
)
async def test_invalid_record_is_rejected_and_nothing_is_sent(
    bus: Connection, loaded_catalog: Catalog, spoil: Any, field: str
) -> None:
    topic = source_of(loaded_catalog, BIRTH)
    before = await count(bus, topic)
    good = _birth(loaded_catalog, 3, seed=200)
    bad = dict(good[1])
    spoil(bad)
    async with Publisher(bus, loaded_catalog, "health") as pub:
        with pytest.raises(RecordInvalid) as caught:
            await pub.publish(BIRTH, [good[0], bad, good[2]])  # the good ones are not sent either
    assert caught.value.facts["field"] == field
    assert f"field {field!r}" in str(caught.value)
    assert f"resource {BIRTH!r}" in str(caught.value)
    assert await count(bus, topic) == before


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (decimal.Decimal("1234.567"), "Scale"),
        (decimal.Decimal("12345678901.25"), "precision"),
        (1234.5, "not a valid"),
    ],
    ids=["scale", "precision", "float"],
)
async def test_invalid_decimal_is_rejected_naming_the_field(
    bus: Connection, loaded_catalog: Catalog, value: Any, reason: str
) -> None:
    resource = "minimum_living_allowance"
    record = generate(loaded_catalog.resource(resource).schema_, 1, seed=202)[0]
    record["monthly_allowance"] = value
    topic = source_of(loaded_catalog, resource)
    before = await count(bus, topic)
    async with Publisher(bus, loaded_catalog, "civil_affairs") as pub:
        with pytest.raises(RecordInvalid, match=reason) as caught:
            await pub.publish(resource, [record])
    assert caught.value.facts["field"] == "monthly_allowance"
    assert await count(bus, topic) == before


async def test_null_rejection_says_the_field_is_not_nullable(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    record = _birth(loaded_catalog, 1, seed=201)[0]
    record["child_name"] = None
    async with Publisher(bus, loaded_catalog, "health") as pub:
        with pytest.raises(RecordInvalid, match="child_name") as caught:
            pub.prepare(BIRTH, record)
    assert "None" in caught.value.reason or "null" in caught.value.reason


def _json_lines(catalog: Catalog, resource: str, n: int, seed: int) -> list[str]:
    return list(iter_json_lines(catalog.resource(resource).schema_, n, seed))


@pytest.mark.parametrize(
    ("spoil", "field", "reason"),
    [
        (lambda line: line[:-1], None, "not valid JSON"),
        (lambda line: _set(line, "birth_date", "2024/01/05"), "birth_date", "expected a date"),
        (lambda line: _set(line, "gestational_weeks", "39"), "gestational_weeks", "integer"),
        (lambda line: _drop(line, "mother_id_number"), "mother_id_number", "is missing"),
        (lambda line: _set(line, "blood_type", "O"), "blood_type", "not a field of the schema"),
        (lambda line: _set(line, "child_name", None), "child_name", "not nullable"),
        (lambda line: _set(line, "issued_at", "yesterday"), "issued_at", "ISO-8601"),
    ],
    ids=["json", "date", "int", "missing", "extra", "null", "timestamp"],
)
async def test_file_with_a_bad_line_in_the_middle_sends_nothing(
    bus: Connection,
    loaded_catalog: Catalog,
    tmp_path: Path,
    spoil: Any,
    field: str | None,
    reason: str,
) -> None:
    lines = _json_lines(loaded_catalog, BIRTH, 9, seed=300)
    lines[4] = spoil(lines[4])  # line 5 of 9
    path = tmp_path / "births.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    topic = source_of(loaded_catalog, BIRTH)
    before = await count(bus, topic)

    async with Publisher(bus, loaded_catalog, "health") as pub:
        with pytest.raises(RecordInvalid) as caught:
            await pub.publish_file(BIRTH, path)

    assert caught.value.facts["line"] == 5
    assert str(caught.value).startswith("line 5: ")
    assert reason in str(caught.value)
    if field is not None:
        assert caught.value.facts["field"] == field
    assert await count(bus, topic) == before


async def test_good_file_is_published_whole_and_reads_back_equal(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path
) -> None:
    schema = loaded_catalog.resource(BIRTH).schema_
    lines = _json_lines(loaded_catalog, BIRTH, 12, seed=301)
    path = tmp_path / "births.jsonl"
    # a blank line does not count as a record, nor shift the line numbers
    path.write_text("\n".join(lines[:6]) + "\n\n" + "\n".join(lines[6:]) + "\n", encoding="utf-8")
    async with Publisher(bus, loaded_catalog, "health") as pub:
        assert await pub.publish_file(BIRTH, path) == 12
    want = [from_json(schema, json.loads(line)) for line in lines]
    async with Publisher(bus, loaded_catalog, "health") as pub:
        ids = [pub.prepare(BIRTH, record).record_id for record in want]
    got = await read_until(bus, source_of(loaded_catalog, BIRTH), ids)
    assert [got[rid].value for rid in ids] == want


def _set(line: str, name: str, value: Any) -> str:
    data = json.loads(line)
    data[name] = value
    return json.dumps(data, ensure_ascii=False)


def _drop(line: str, name: str) -> str:
    data = json.loads(line)
    del data[name]
    return json.dumps(data, ensure_ascii=False)


async def test_only_the_provider_publishes(bus: Connection, loaded_catalog: Catalog) -> None:
    topic = source_of(loaded_catalog, BIRTH)
    before = await count(bus, topic)
    async with Publisher(bus, loaded_catalog, "police") as pub:
        with pytest.raises(PermissionDenied) as caught:
            await pub.publish(BIRTH, _birth(loaded_catalog, 2, seed=400))
        with pytest.raises(PermissionDenied):
            pub.prepare_json_lines(BIRTH, Path("does-not-matter.jsonl"))
    assert "'police'" in str(caught.value)
    assert "'health'" in str(caught.value)  # who the provider is
    assert caught.value.rule == "only the provider publishes a resource"
    assert await count(bus, topic) == before
    assert await count(bus, topics.source("police", BIRTH)) == 0

    with pytest.raises(UnknownResource, match="nobody"):
        Publisher(bus, loaded_catalog, "nobody")


async def test_republished_record_keeps_its_id_and_the_reader_drops_it(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    first, second = _birth(loaded_catalog, 2, seed=500)
    async with Publisher(bus, loaded_catalog, "health") as pub:
        ids = await pub.publish(BIRTH, [first, second])
        again = await pub.publish(BIRTH, [dict(first)])
    assert again == ids[:1]

    topic = source_of(loaded_catalog, BIRTH)
    raw = [r for r in await read_all(bus, topic, dedup=False) if r.record_id in ids]
    assert sorted(r.record_id for r in raw) == sorted([ids[0], ids[0], ids[1]])

    async with Reader(bus, topic) as reader:
        deduped = [r for r in await reader.read(idle_timeout=1.0) if r.record_id in ids]
        assert reader.seen is not None
        assert reader.seen.duplicates >= 1
    assert sorted(r.record_id for r in deduped) == sorted(ids)
    assert next(r.value for r in deduped if r.record_id == ids[0]) == first


def test_json_refers_to_a_named_type_by_its_inherited_full_name() -> None:
    """An enum declared inside a record inherits its namespace and can be named in full."""
    schema = {
        "type": "record",
        "name": "Pair",
        "namespace": "gov.exchange.health",
        "fields": [
            {"name": "a", "type": {"type": "enum", "name": "Gender", "symbols": ["MALE"]}},
            {"name": "b", "type": "gov.exchange.health.Gender"},
            {"name": "c", "type": ["null", "Gender"], "default": None},
        ],
    }
    assert from_json(schema, {"a": "MALE", "b": "MALE", "c": "MALE"}) == {
        "a": "MALE",
        "b": "MALE",
        "c": "MALE",
    }


async def test_each_key_goes_where_any_kafka_client_would_put_it(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    # the publisher computes partitions itself (it sends whole record batches): they must
    # be the default partitioner's, or one key's records from two clients lose their order
    res = loaded_catalog.resource(BIRTH)
    records = generate(res.schema_, 60, seed=77)
    topic = topics.source(res.provider, BIRTH)
    before = {(r.partition, r.offset) for r in await kafka.read_to_end(bus, topic)}
    async with Publisher(bus, loaded_catalog, res.provider, partitions=3) as pub:
        await pub.publish(BIRTH, records)
    mine = [r for r in await kafka.read_to_end(bus, topic) if (r.partition, r.offset) not in before]
    assert len(mine) == 60
    async with kafka.producer(bus) as producer:
        every = sorted(await producer.partitions_for(topic))
    assert len(every) >= 3
    for rec in mine:
        assert rec.partition == DefaultPartitioner()(rec.key, every, every), rec.key
    assert len({r.partition for r in mine}) > 1  # 60 keys: spread, not all on one
