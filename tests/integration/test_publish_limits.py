"""A publish is all or nothing, also when a record is too large for Kafka (issue 12, item 1).

Every record's size as produced (a record batch holding it alone: Confluent
framing, key and headers) is checked against the producer's
``max_request_size`` and the topic's ``max.message.bytes`` before anything is
sent. A file whose third line holds a 5 MB string used to leave its first two
records on the bus and end in aiokafka's ``MessageSizeTooLargeError``; now the
command line, the Python ``Publisher`` and the file connector refuse it whole,
name the line (or the record's index), its size and the limit, and send
nothing. The source topic is read to its end to check.
"""

from __future__ import annotations

import asyncio
import csv
import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cli_support import EXCHANGE, cli_env

from connectors import runner
from connectors.config import load
from connectors.errors import ConnectorDataError
from exchange.avro.jsoncodec import dumps
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.limits import MAX_VALUE_BYTES, framed_size
from exchange.catalog.model import Catalog
from exchange.clients.publisher import Prepared, Publisher
from exchange.dev.sample import generate
from exchange.errors import RecordTooLarge

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

BIRTH = "birth_medical_certificate"
ALLOWANCES = "minimum_living_allowance"
BIG = 5 * 1024 * 1024  # the 5 MB string
PRODUCER_LIMIT = 1_048_576  # the publisher's max_request_size


async def count(bus: Connection, topic: str) -> int:
    return len(await kafka.read_to_end(bus, topic, timeout_s=10))


def births(catalog: Catalog, n: int, seed: int) -> list[dict[str, Any]]:
    return generate(catalog.resource(BIRTH).schema_, n, seed=seed)


def with_address(record: dict[str, Any], size: int) -> dict[str, Any]:
    return {**record, "address": "地" * (size // 3)}  # 3 bytes each in UTF-8


def write_lines(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def sized(
    pub: Publisher, record: dict[str, Any], size: int, measure: Callable[[Prepared], int]
) -> dict[str, Any]:
    """``record`` with its address grown or cut until ``measure`` of it is ``size``."""
    for _ in range(10):
        got = measure(pub.prepare(BIRTH, record))
        if got == size:
            return record
        record = {**record, "address": "x" * (len(record["address"]) + size - got)}
    raise AssertionError(f"no address length gives a record of exactly {size} bytes")


def value_size(p: Prepared) -> int:
    return len(p.value)


async def test_publisher_refuses_the_whole_batch_naming_the_record_size_and_limit(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    topic = topics.source("health", BIRTH)
    before = await count(bus, topic)
    first, second, third = births(loaded_catalog, 3, seed=1201)
    async with Publisher(bus, loaded_catalog, "health") as pub:
        with pytest.raises(RecordTooLarge) as caught:
            await pub.publish(BIRTH, [first, second, with_address(third, BIG)])
    facts = caught.value.facts
    assert facts["index"] == 2
    assert facts["size"] > BIG
    assert facts["limit"] == PRODUCER_LIMIT  # the smaller of the producer's and the topic's
    message = str(caught.value)
    assert message.startswith("record 2: ")
    assert f"{facts['size']} bytes" in message
    assert f"{PRODUCER_LIMIT} bytes" in message
    assert "max_request_size" in message
    assert "nothing was sent" in message
    assert await count(bus, topic) == before


async def test_a_record_of_exactly_the_producers_limit_is_sent_one_byte_more_is_refused(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    """The check counts what aiokafka counts, neither more nor less.

    A 500 kB key (the certificate number, also in the value) makes the record
    reach the producer's limit while its value stays under the router's.
    """
    topic = topics.source("health", BIRTH)
    (record,) = births(loaded_catalog, 1, seed=1202)
    record["certificate_no"] = "C" * 500_000
    async with Publisher(bus, loaded_catalog, "health") as pub:
        over = sized(pub, record, PRODUCER_LIMIT + 1, framed_size)
        before = await count(bus, topic)
        with pytest.raises(RecordTooLarge, match="max_request_size") as caught:
            await pub.publish(BIRTH, [over])
        assert caught.value.facts["size"] == PRODUCER_LIMIT + 1
        assert await count(bus, topic) == before
        exact = sized(pub, record, PRODUCER_LIMIT, framed_size)
        assert len(exact["address"]) < len(over["address"])
        assert len(await pub.publish(BIRTH, [exact])) == 1
    assert await count(bus, topic) == before + 1


async def test_a_value_over_the_routers_limit_is_refused_not_dead_lettered(
    bus: Connection, loaded_catalog: Catalog
) -> None:
    """The router dead-letters a source value over MAX_VALUE_BYTES: the publisher refuses it."""
    topic = topics.source("health", BIRTH)
    (record,) = births(loaded_catalog, 1, seed=1207)
    async with Publisher(bus, loaded_catalog, "health") as pub:
        over = sized(pub, record, MAX_VALUE_BYTES + 1, value_size)
        before = await count(bus, topic)
        with pytest.raises(RecordTooLarge) as caught:
            await pub.publish(BIRTH, [over])
        assert f"value is {MAX_VALUE_BYTES + 1} bytes" in str(caught.value)
        assert f"gov.dlq.{BIRTH}" in str(caught.value)
        assert caught.value.facts["limit"] == MAX_VALUE_BYTES
        assert await count(bus, topic) == before
        exact = sized(pub, record, MAX_VALUE_BYTES, value_size)
        assert len(await pub.publish(BIRTH, [exact])) == 1
    assert await count(bus, topic) == before + 1


async def test_a_file_larger_than_one_request_is_published_whole(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path
) -> None:
    """Six records of 600 kB each (3.6 MB) go out in several acknowledged requests."""
    topic = topics.source("health", BIRTH)
    before = await count(bus, topic)
    records = [with_address(r, 600_000) for r in births(loaded_catalog, 6, seed=1203)]
    path = write_lines(tmp_path / "large.jsonl", records)
    async with Publisher(bus, loaded_catalog, "health") as pub:
        assert await pub.publish_file(BIRTH, path) == 6
    assert await count(bus, topic) == before + 6


async def test_publisher_names_the_line_of_a_file(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path
) -> None:
    topic = topics.source("health", BIRTH)
    before = await count(bus, topic)
    first, second, third = births(loaded_catalog, 3, seed=1204)
    path = write_lines(tmp_path / "births.jsonl", [first, second, with_address(third, BIG)])
    async with Publisher(bus, loaded_catalog, "health") as pub:
        with pytest.raises(RecordTooLarge) as caught:
            await pub.publish_file(BIRTH, path)
    assert caught.value.facts["line"] == 3
    assert str(caught.value).startswith("line 3: ")
    assert await count(bus, topic) == before


async def test_cli_refuses_the_file_in_one_line_and_sends_nothing(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path
) -> None:
    """The issue's case: two valid lines, then one with a 5 MB string."""
    topic = topics.source("health", BIRTH)
    before = await count(bus, topic)
    first, second, third = births(loaded_catalog, 3, seed=1205)
    path = write_lines(tmp_path / "births.jsonl", [first, second, with_address(third, BIG)])
    env = cli_env(bus, EXCHANGE_STATE_DIR=str(tmp_path / "state"))
    args = [EXCHANGE, "publish", "--as", "health", BIRTH, str(path)]

    result = await asyncio.to_thread(
        subprocess.run, args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stderr.startswith("error: line 3: ")
    size = re.search(r"record is (\d+) bytes", result.stderr)
    assert size is not None, result.stderr
    assert int(size[1]) > BIG
    assert f"limit of {PRODUCER_LIMIT} bytes" in result.stderr
    assert "published" not in result.stdout
    assert await count(bus, topic) == before


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_file_import_refuses_the_file_before_sending_anything(
    bus: Connection, loaded_catalog: Catalog, tmp_path: Path, fmt: str
) -> None:
    res = loaded_catalog.resource(ALLOWANCES)
    topic = topics.source("civil_affairs", ALLOWANCES)
    before = await count(bus, topic)
    records = generate(res.schema_, 3, seed=1206)
    # three cells of 390 kB: a CSV cell holds at most 131,072 characters (Python's csv module)
    records[2] = {**records[2], **{f: "地" * 130_000 for f in ("name", "address", "phone")}}
    path = tmp_path / f"allowances.{fmt}"
    if fmt == "jsonl":
        write_lines(path, records)
    else:
        names = res.field_names()
        with path.open("w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(names)
            for r in records:
                plain = json.loads(dumps(r))
                w.writerow(["" if plain[n] is None else plain[n] for n in names])
    config = tmp_path / "connectors.yaml"
    entry = {
        "name": "imp",
        "type": "file_import",
        "department": "civil_affairs",
        "resource": ALLOWANCES,
        "path": path.name,
        "batch_size": 1,  # one request per record: the check must come before the first
    }
    config.write_text(yaml.safe_dump({"connectors": [entry]}, allow_unicode=True))
    (connector,) = await runner.build(load(config), bus, environ={}, only=["imp"])

    with pytest.raises(ConnectorDataError) as caught:
        async with connector:
            await connector.run(idle_exit_s=0)

    line = 3 if fmt == "jsonl" else 4  # the CSV header is line 1
    message = str(caught.value)
    assert f"{path}:{line}" in message, message
    assert caught.value.facts["size"] > 3 * 390_000
    assert f"limit of {PRODUCER_LIMIT} bytes" in message
    assert "nothing of the file was published" in message
    assert connector.progress.published == 0
    assert await count(bus, topic) == before
