"""The router's send queue without a broker: order per partition, no wait for the caller,
bytes not yet acknowledged, a failure failing what is behind it, and order per partition
kept with a producer of its own beside the router's.

The producer here is a stand-in with the one behaviour that matters: ``send_batch`` of a
partition waits while that partition still has a batch the producer has not taken (as
aiokafka's accumulator does), and each batch's future is resolved by the test (the
broker's acknowledgement)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from exchange.bus.outbox import Outbox
from exchange.bus.send_queue import NotDelivered, SendQueue


class Batch:
    def __init__(self, name: str, size: int = 100) -> None:
        self.name = name
        self._size = size

    def size(self) -> int:
        return self._size

    def record_count(self) -> int:
        return 1


class Producer:
    """Takes one batch per partition at a time; ``take(where)`` lets the next one in."""

    def __init__(self) -> None:
        self.handed: list[tuple[str, int, str]] = []
        self.acks: dict[str, asyncio.Future[Any]] = {}
        self.gates: dict[tuple[str, int], asyncio.Event] = {}
        self.fail: set[str] = set()

    def gate(self, topic: str, partition: int) -> asyncio.Event:
        return self.gates.setdefault((topic, partition), asyncio.Event())

    async def send_batch(self, batch: Batch, topic: str, *, partition: int) -> Any:
        gate = self.gate(topic, partition)
        await gate.wait()  # the previous batch of this partition is not taken yet
        if batch.name in self.fail:
            raise RuntimeError(f"{batch.name} refused")
        self.handed.append((topic, partition, batch.name))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.acks[batch.name] = fut
        return fut


async def test_put_returns_at_once_and_hands_batches_over_in_order_per_partition() -> None:
    producer = Producer()
    queue = SendQueue(producer)
    futures = [queue.put("dlv", 0, Batch(f"b{i}")) for i in range(3)]
    other = queue.put("dlv", 1, Batch("x"))
    assert queue.busy("dlv", 0)
    assert queue.busy("dlv", 1)
    assert queue.unacked == 400
    await asyncio.sleep(0)
    assert producer.handed == []  # the producer has not taken any yet: nothing waited here
    producer.gate("dlv", 1).set()
    producer.gate("dlv", 0).set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [n for t, p, n in producer.handed if p == 0] == ["b0", "b1", "b2"]
    assert not queue.busy("dlv", 0)
    for name in ("b0", "b1", "b2", "x"):
        producer.acks[name].set_result(name)
    assert await asyncio.gather(*futures, other) == ["b0", "b1", "b2", "x"]
    assert queue.unacked == 0


async def test_a_refused_batch_fails_itself_and_every_batch_behind_it_not_other_partitions() -> (
    None
):
    producer = Producer()
    producer.fail.add("b1")
    queue = SendQueue(producer)
    futures = [queue.put("dlv", 0, Batch(f"b{i}")) for i in range(3)]
    fine = queue.put("dlv", 1, Batch("x"))
    producer.gate("dlv", 0).set()
    producer.gate("dlv", 1).set()
    for _ in range(5):
        await asyncio.sleep(0)
    producer.acks["b0"].set_result("b0")
    producer.acks["x"].set_result("x")
    assert await futures[0] == "b0"
    for fut in futures[1:]:
        with pytest.raises(RuntimeError, match="b1 refused"):
            await fut
    assert await fine == "x"
    assert ("dlv", 0, "b2") not in producer.handed  # never after a batch that failed
    assert queue.unacked == 0


async def test_live_batches_of_a_partition_with_queued_ones_go_behind_them() -> None:
    producer = Producer()
    queue = SendQueue(producer)
    producer.gate("dlv", 1).set()  # partition 1 is free: handed over directly
    queue.put("dlv", 0, Batch("backfill"))
    live = _outbox_of(producer, [("dlv", 0, "live0"), ("dlv", 1, "live1")])
    sent = await live.send(queue)
    assert producer.handed == [("dlv", 1, "live1")]  # partition 0 queued, nothing waited
    producer.gate("dlv", 0).set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert [n for _, p, n in producer.handed if p == 0] == ["backfill", "live0"]
    assert len(sent) == 2


async def test_own_producer_a_partition_is_busy_until_its_batches_are_acked() -> None:
    backfill, live = Producer(), Producer()
    queue = SendQueue(backfill, own_producer=True)
    backfill.gate("dlv", 0).set()
    live.gate("dlv", 0).set()
    queue.put("dlv", 0, Batch("backfill"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert backfill.handed == [("dlv", 0, "backfill")]  # taken, not acknowledged yet
    assert queue.busy("dlv", 0)
    await _outbox_of(live, [("dlv", 0, "live0")]).send(queue)
    for _ in range(5):
        await asyncio.sleep(0)
    # behind the backfill's batch on the same producer, never on the other connection
    assert live.handed == []
    assert backfill.handed == [("dlv", 0, "backfill"), ("dlv", 0, "live0")]
    backfill.acks["backfill"].set_result("backfill")
    backfill.acks["live0"].set_result("live0")
    await asyncio.sleep(0)
    assert not queue.busy("dlv", 0)
    await _outbox_of(live, [("dlv", 0, "live1")]).send(queue)
    assert live.handed == [("dlv", 0, "live1")]  # every one acknowledged: directly again


async def test_own_producer_a_batch_waits_for_the_other_producers_last_batch() -> None:
    backfill, live = Producer(), Producer()
    queue = SendQueue(backfill, own_producer=True)
    backfill.gate("dlv", 0).set()
    live.gate("dlv", 0).set()
    await _outbox_of(live, [("dlv", 0, "live0")]).send(queue)  # in flight, not acked
    retraction = queue.put("dlv", 0, Batch("retraction"))
    for _ in range(5):
        await asyncio.sleep(0)
    assert backfill.handed == []  # it would overtake live0 on the other connection
    live.acks["live0"].set_result("live0")
    for _ in range(5):
        await asyncio.sleep(0)
    assert backfill.handed == [("dlv", 0, "retraction")]
    backfill.acks["retraction"].set_result("retraction")
    assert await retraction == "retraction"
    assert queue.unacked == 0


async def test_own_producer_a_batch_behind_the_other_producers_failed_batch_fails_too() -> None:
    backfill, live = Producer(), Producer()
    queue = SendQueue(backfill, own_producer=True)
    backfill.gate("dlv", 0).set()
    live.gate("dlv", 0).set()
    await _outbox_of(live, [("dlv", 0, "live0")]).send(queue)
    retraction = queue.put("dlv", 0, Batch("retraction"))
    await asyncio.sleep(0)
    live.acks["live0"].set_exception(RuntimeError("the broker refused live0"))
    with pytest.raises(NotDelivered, match="partition 0"):
        await retraction
    assert backfill.handed == []  # never delivered without the batch before it
    assert queue.unacked == 0
    assert not queue.busy("dlv", 0)


async def test_close_cancels_what_is_still_queued() -> None:
    producer = Producer()
    queue = SendQueue(producer)
    fut = queue.put("dlv", 0, Batch("b0"))
    await asyncio.sleep(0)
    await queue.close()
    assert fut.cancelled()
    assert queue.unacked == 0
    assert not queue.busy("dlv", 0)


def _outbox_of(producer: Producer, batches: list[tuple[str, int, str]]) -> Outbox:
    """An outbox holding one ready batch per (topic, partition, name)."""
    outbox = Outbox(producer)
    outbox._full = [(t, p, Batch(n)) for t, p, n in batches]
    return outbox
