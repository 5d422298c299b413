"""Outgoing records gathered into one Kafka record batch per partition, sent as batches.

``AIOKafkaProducer.send`` costs about 6 µs a record in Python (a future, a
partitioner call, a metadata check, an accumulator lookup), which was more
than half of the router's time per delivered record, and a third of the
database source's. A caller that knows each record's partition (the router:
the source partition modulo the delivery topic's partition count; the
:class:`~exchange.clients.publisher.Publisher`: Kafka's default partition of
the key, :mod:`exchange.bus.partitioner`) appends it to that partition's
:class:`aiokafka.producer.BatchBuilder` (the client's own C record-batch
builder, about 0.6 µs a record) and hands every batch to ``send_batch`` at
the end. The producer then sends them as usual: acks=all, retries, one future
per batch.

Order per partition is kept: records are appended in the order they are
added, and a full batch is queued before the next one of its partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from exchange.bus.send_queue import SendQueue


class Outbox:
    """Record batches being filled, by (topic, partition), for one source batch."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[str, int, Any]] = []
        self.records = 0
        #: the records in each batch of the last :meth:`send`, in the order of its futures
        self.batch_records: list[int] = []
        #: the futures of the batches the last :meth:`send` queued, so far
        self.sent: list[asyncio.Future[Any]] = []

    def lane(self, topic: str, partition: int) -> Lane:
        """An appender for one (topic, partition): no lookup per record."""
        return Lane(self, topic, partition)

    def add(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]],
    ) -> Any:
        """Append a record to its partition's open batch; returns that batch."""
        where = (topic, partition)
        batch = self._open.get(where)
        if batch is None:
            batch = self._open[where] = self._producer.create_batch()
        if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
            # full: queue it and start the next one of this partition
            self._full.append((topic, partition, batch))
            batch = self._open[where] = self._producer.create_batch()
            # an empty batch takes any record, however big (the broker's limit applies)
            batch.append(timestamp=None, key=key, value=value, headers=headers)
        self.records += 1
        return batch

    def _take(self) -> list[tuple[str, int, Any]]:
        batches = [*self._full, *((t, p, b) for (t, p), b in self._open.items())]
        self._full, self._open = [], {}
        self.batch_records = [batch.record_count() for _, _, batch in batches]
        return batches

    async def send(self, queue: SendQueue | None = None) -> list[asyncio.Future[Any]]:
        """Queue every batch with the producer; one future per batch, done when acknowledged.

        A batch for a partition that ``queue`` still holds batches of goes behind them
        (in order), without waiting for the producer to take them. If the producer
        refuses a batch, the futures of those queued before it stay in :attr:`sent`
        (with their record counts in :attr:`batch_records`).
        """
        self.sent = []
        for topic, partition, batch in self._take():
            if queue is not None and queue.busy(topic, partition):
                self.sent.append(queue.put(topic, partition, batch))
            else:
                acked = await self._producer.send_batch(batch, topic, partition=partition)
                self.sent.append(acked)
                if queue is not None:
                    queue.direct(topic, partition, acked)
        return self.sent

    def hand_over(self, queue: SendQueue) -> list[asyncio.Future[Any]]:
        """Put every batch in ``queue`` (no wait); one future per batch, done when acknowledged."""
        return [queue.put(topic, partition, batch) for topic, partition, batch in self._take()]


class Lane:
    """Appends records to one partition's open batch of an :class:`Outbox`."""

    __slots__ = ("_batch", "outbox", "partition", "topic")

    def __init__(self, outbox: Outbox, topic: str, partition: int) -> None:
        self.outbox, self.topic, self.partition = outbox, topic, partition
        self._batch: Any = None

    def add(
        self, key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
    ) -> None:
        batch = self._batch
        if (
            batch is None
            or batch.append(timestamp=None, key=key, value=value, headers=headers) is None
        ):
            # none yet, or full: the outbox opens (or queues and replaces) this partition's batch
            self._batch = self.outbox.add(self.topic, self.partition, key, value, headers)
            return
        self.outbox.records += 1
