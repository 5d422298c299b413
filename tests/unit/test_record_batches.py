"""Records sent through :class:`RecordBatches`: in order, grouped while a batch is in flight,
acknowledged or failed with their batch; an audit chain written through it verifies.

The batches are aiokafka's own (its C record builder, read back with its record reader); the
producer is a stand-in that keeps each batch handed over and acknowledges it when the test
says (the gateway's integration tests write through a real broker).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from exchange.audit.entry import Action, AuditEntry, Decision, Draft
from exchange.audit.verify import positioned, verify
from exchange.audit.writer import AuditWriter
from exchange.bus.record_batches import RecordBatches

TOPIC = "gov.audit"


class _Producer:
    """Keeps the batches handed over; acknowledges them at once or when told."""

    def __init__(self, *, hold: bool = False, partitions: int = 1) -> None:
        self.hold = hold
        self.partitions = partitions
        self.handed: list[tuple[list[bytes], int, asyncio.Future[None]]] = []
        self.fail_next: Exception | None = None
        self.sent: list[bytes] = []  # records sent one at a time (the schema registration)

    async def partitions_for(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(16_384, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *, partition: int) -> Any:
        assert topic == TOPIC
        values = [r.value for r in DefaultRecordBatch(bytes(batch._build()))]
        acked: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.fail_next is not None:
            acked.set_exception(self.fail_next)
            self.fail_next = None
        elif not self.hold:
            acked.set_result(None)
        self.handed.append((values, partition, acked))
        return acked

    async def send(self, topic: str, *, value: bytes, key: bytes) -> asyncio.Future[None]:
        self.sent.append(value)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


async def _until(predicate: Any) -> None:
    for _ in range(500):
        if predicate():
            return
        await asyncio.sleep(0.002)
    raise AssertionError("not reached")


async def test_records_sent_while_a_batch_is_in_flight_travel_in_order_in_the_next() -> None:
    producer = _Producer(hold=True)
    batches = RecordBatches(producer, TOPIC, linger_ms=2)
    first = await batches.send(TOPIC, value=b"0", key=b"w")
    await _until(lambda: len(producer.handed) == 1)  # alone, after its linger
    later = [await batches.send(TOPIC, value=str(i).encode(), key=b"w") for i in range(1, 6)]
    await asyncio.sleep(0.02)
    assert len(producer.handed) == 1, "nothing is handed over while a batch is in flight"
    assert not first.done()
    producer.handed[0][2].set_result(None)
    await first
    await _until(lambda: len(producer.handed) == 2)
    assert [values for values, _, _ in producer.handed] == [[b"0"], [b"1", b"2", b"3", b"4", b"5"]]
    assert len(set(map(id, later))) == 1  # one future for the batch
    assert not later[0].done()
    producer.handed[1][2].set_result(None)
    await asyncio.gather(*later)
    await batches.close()


async def test_a_failed_batch_fails_its_records_and_the_next_batch_is_still_sent() -> None:
    producer = _Producer()
    producer.fail_next = RuntimeError("broker gone")
    batches = RecordBatches(producer, TOPIC, linger_ms=1)
    lost = await batches.send(TOPIC, value=b"a", key=b"w")
    with pytest.raises(RuntimeError, match="broker gone"):
        await lost
    kept = await batches.send(TOPIC, value=b"b", key=b"w")
    await kept
    assert [values for values, _, _ in producer.handed] == [[b"a"], [b"b"]]
    await batches.close()
    with pytest.raises(RuntimeError, match="closed"):
        await batches.send(TOPIC, value=b"c", key=b"w")


async def test_a_key_goes_to_the_partition_kafkas_default_partitioner_gives_it() -> None:
    from aiokafka.partitioner import DefaultPartitioner

    producer = _Producer(partitions=6)
    batches = RecordBatches(producer, TOPIC, linger_ms=0)
    for key in (b"gateway-h-1-aa", b"gateway-h-2-bb", b"gateway-h-3-cc"):
        await (await batches.send(TOPIC, value=b"x", key=key))
    expected = [DefaultPartitioner()(k, list(range(6)), list(range(6))) for k in (b"gateway-h-1-aa", b"gateway-h-2-bb", b"gateway-h-3-cc")]  # fmt: skip
    assert [partition for _, partition, _ in producer.handed] == expected
    await batches.close()


async def test_a_chain_written_through_record_batches_by_concurrent_callers_verifies() -> None:
    producer = _Producer()

    class _Registry:
        async def register(self, producer: Any, schema: Any) -> int:
            return 1

    batches = RecordBatches(producer, TOPIC, linger_ms=2)
    writer = AuditWriter(
        producer, _Registry(), role="gateway", instance="h-1", signer=None, sender=batches
    )  # type: ignore[arg-type]

    async def caller(i: int) -> None:
        draft = Draft(Action.RECORD_QUERIED, actor="hrss", decision=Decision.ANSWERED, resource="population_basic", details={"n": str(i)})  # fmt: skip
        await (await writer.send([draft])).acknowledged()

    await asyncio.gather(*(caller(i) for i in range(200)))
    await writer.stop()
    await batches.close()
    values = [v for values, _, _ in producer.handed for v in values]
    entries = [AuditEntry.decode(v) for v in values]
    assert [e.seq for e in entries] == list(range(200))
    assert sorted(int(e.details["n"]) for e in entries) == list(range(200))
    report = verify(positioned(entries))
    assert not report.problems
    assert len(producer.handed) < 200 / 4, "the entries travelled in batches"
    assert producer.sent == []  # none went one at a time
