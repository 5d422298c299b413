"""The router's outbox on the real broker: per-partition order, acks, oversize records."""

from __future__ import annotations

import pytest

from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.bus.outbox import Outbox

pytestmark = pytest.mark.integration


async def test_batches_arrive_in_order_per_partition(bus: Connection) -> None:
    topics = ["outbox.a", "outbox.b"]
    await kafka.ensure_topics(bus, topics, partitions=2)
    async with kafka.producer(bus, max_batch_size=4096) as producer:
        outbox = Outbox(producer)
        for i in range(2000):  # many batches per partition: 4 KB each
            outbox.add(topics[i % 2], i % 4 // 2, f"k{i}".encode(), f"v{i:06d}".encode(), [])
        assert outbox.records == 2000
        futures = await outbox.send()
        assert len(futures) > 4
        for fut in futures:
            await fut
    for topic in topics:
        records = await kafka.read_to_end(bus, topic)
        by_partition: dict[int, list[int]] = {}
        for rec in records:
            by_partition.setdefault(rec.partition, []).append(int(rec.value[1:]))
        assert sum(len(v) for v in by_partition.values()) == 1000
        for values in by_partition.values():
            assert values == sorted(values)


async def test_a_record_bigger_than_a_batch_goes_in_a_batch_of_its_own(bus: Connection) -> None:
    await kafka.ensure_topics(bus, ["outbox.big"], partitions=1)
    async with kafka.producer(bus, max_batch_size=1024) as producer:
        outbox = Outbox(producer)
        for size in (10, 5000, 10):
            outbox.add("outbox.big", 0, b"kk", b"x" * size, [])
        futures = await outbox.send()
        assert len(futures) == 3
        for fut in futures:
            await fut
    assert [len(r.value) for r in await kafka.read_to_end(bus, "outbox.big")] == [
        10,
        5000,
        10,
    ]
