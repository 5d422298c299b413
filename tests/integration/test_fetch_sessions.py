"""Incremental fetch sessions on Apache Kafka: every record once, in order, through
pauses, seeks back and partitions added, with fetches that name only what moved."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.bus.fetch_sessions import SessionConsumer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.kafka_only("the embedded broker keeps plain fetches (it has no sessions)"),
]

TOPICS = [f"fs.t{i:02d}" for i in range(20)]


async def _read(c: SessionConsumer, want: int, seconds: float = 30) -> list[tuple[str, int, int]]:
    got: list[tuple[str, int, int]] = []
    deadline = asyncio.get_running_loop().time() + seconds
    while len(got) < want and asyncio.get_running_loop().time() < deadline:
        batch = await c.getmany(timeout_ms=200)
        for tp, records in batch.items():
            got.extend((tp.topic, tp.partition, int(r.value)) for r in records)
    return got


async def test_every_record_once_in_order_through_pause_seek_and_new_partitions(
    bus: Connection,
) -> None:
    await kafka.ensure_topics(bus, TOPICS, partitions=3)
    c = kafka.consumer(bus, fetch_max_wait_ms=bus.fetch_wait_ms(embedded_ms=5))
    assert isinstance(c, SessionConsumer)
    await c.start()
    try:
        tps = [TopicPartition(t, p) for t in TOPICS[:15] for p in range(3)]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        async with kafka.producer(bus) as producer:
            busy = TopicPartition(TOPICS[0], 1)
            for i in range(300):  # one busy partition among 45, records arriving over time
                await producer.send(busy.topic, value=str(i).encode(), partition=1)
                if i % 50 == 49:
                    await producer.flush()
                    got = await _read(c, 50)
                    assert [v for _, _, v in got] == list(range(i - 49, i + 1))
            # paused: the session forgets it; resumed: it comes back where it was
            c.pause(busy)
            for i in range(300, 320):
                await producer.send(busy.topic, value=str(i).encode(), partition=1)
            await producer.flush()
            assert await _read(c, 1, seconds=2) == []
            c.resume(busy)
            assert [v for _, _, v in await _read(c, 20)] == list(range(300, 320))
            # a seek back: the partition is named again with its old offset
            c.seek(busy, 310)
            assert [v for _, _, v in await _read(c, 10)] == list(range(310, 320))
            # partitions added to the assignment join the session
            more = [TopicPartition(t, p) for t in TOPICS[15:] for p in range(3)]
            c.assign(tps + more)  # a new assignment: read the old partitions from their end
            await c.seek_to_end(*tps)
            await c.seek_to_beginning(*more)
            for n, tp in enumerate(more):
                await producer.send(tp.topic, value=str(n).encode(), partition=tp.partition)
            await producer.flush()
            got = await _read(c, len(more))
            assert sorted(got) == sorted((tp.topic, tp.partition, n) for n, tp in enumerate(more))
    finally:
        sessions = c.fetch_sessions
        await c.stop()
    assert sessions is not None
    print(
        f"fetches: {sessions.full_fetches} full, {sessions.incremental_fetches} incremental "
        f"(45-60 partitions, one busy)"
    )
    # a full fetch opens each broker's session, and again after the assignment changed with
    # fetches in flight (their epochs were spent): every other fetch is an increment
    assert sessions.incremental_fetches > 3 * sessions.full_fetches
