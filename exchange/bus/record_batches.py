"""Records of one topic produced in record batches built here, not one ``send`` at a time.

aiokafka's ``send`` does, for every record: a wait on the topic's metadata, the
partitioner, a look-up of the open batch in its accumulator, a future made for the record
and, at the acknowledgement, a ``RecordMetadata`` made and set on it. A writer that sends
many small records to one partition, one after the other (an audit chain: the gateway
writes one entry per answer), pays that per record. :class:`RecordBatches` appends each
record to a batch it builds itself (aiokafka's public batch API: ``create_batch``,
``send_batch``): per record, one append in aiokafka's C record builder; per batch, one
future, one metadata wait, one hand-over.

* **Order.** Batches are handed to the producer one at a time, each once the one before
  is acknowledged: the records reach the partition in the order of the ``send`` calls
  (aiokafka retries a batch before it acknowledges it, so a retry cannot overtake).
* **Grouping.** Records sent while a batch is in flight wait in the open batch and travel
  together in the next one; a record sent when none is in flight waits at most
  ``linger_ms`` for others (the producer's ``linger_ms`` does not apply: a batch is closed
  when it is handed over, and leaves at once).
* **Acknowledgement.** ``send`` returns the future of the record's batch: done when the
  broker acknowledged the whole batch (with the producer's ``acks``), or failed with the
  batch. A batch that fails takes its records with it; the next batch is still sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from exchange.bus.partitioner import partition_of

#: how long :meth:`RecordBatches.close` waits for the batches not yet acknowledged
CLOSE_WAIT_S = 5.0


@dataclass
class _Batch:
    builder: Any  # aiokafka's BatchBuilder
    key: bytes | None
    partition: int
    future: asyncio.Future[None]
    since: float = field(default_factory=time.monotonic)


class RecordBatches:
    """Sends records to ``topic`` in batches built here (see the module's docstring).

    ``send(topic, value=..., key=...)`` is the part of aiokafka's ``send`` an
    :class:`~exchange.audit.writer.AuditWriter` uses. The partition of a key is Kafka's
    default (murmur2 of the key), as the producer's partitioner would choose it.
    """

    def __init__(self, producer: Any, topic: str, *, linger_ms: float) -> None:
        self.producer = producer
        self.topic = topic
        self.linger_s = linger_ms / 1000
        self._queue: deque[_Batch] = deque()  # not yet handed over, oldest first
        self._open: _Batch | None = None  # the newest, still taking records
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._partitions: dict[bytes | None, int] = {}
        self._sending: _Batch | None = None  # handed over, not yet acknowledged
        #: batches handed over (for tests and figures)
        self.batches_sent = 0

    async def send(
        self, topic: str, *, value: bytes, key: bytes | None = None
    ) -> asyncio.Future[None]:
        """Append a record to the open batch; the future of its batch's acknowledgement."""
        if topic != self.topic:
            raise ValueError(f"these batches go to {self.topic!r}, not {topic!r}")
        if self._closed:
            raise RuntimeError("the record batches are closed")
        batch = self._open
        if batch is None or batch.key != key:
            partition = self._partitions.get(key)
            if partition is None:
                partition = await self._partition_of(key)
            batch = self._new_batch(key, partition)
        if batch.builder.append(timestamp=None, key=key, value=value) is None:  # full
            batch = self._new_batch(key, batch.partition)
            if batch.builder.append(timestamp=None, key=key, value=value) is None:
                raise ValueError(f"a record of {len(value)} bytes does not fit in a batch")
        return batch.future

    async def _partition_of(self, key: bytes | None) -> int:
        partitions = sorted(await self.producer.partitions_for(self.topic))
        partition = partitions[partition_of(key, len(partitions))] if key else 0
        if len(self._partitions) >= 64:  # bounded: a writer has one key at a time
            self._partitions.clear()
        self._partitions[key] = partition
        return partition

    def _new_batch(self, key: bytes | None, partition: int) -> _Batch:
        batch = _Batch(
            self.producer.create_batch(), key, partition, asyncio.get_running_loop().create_future()
        )
        self._queue.append(batch)
        self._open = batch
        if self._task is None:
            self._task = asyncio.create_task(self._hand_over(), name=f"record-batches-{self.topic}")
        self._wake.set()
        return batch

    async def _hand_over(self) -> None:
        """Hand the batches to the producer in order, each once the previous is acknowledged."""
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue[0]
            lingered = time.monotonic() - batch.since
            if batch is self._open and lingered < self.linger_s and not self._closed:
                await asyncio.sleep(self.linger_s - lingered)
            self._queue.popleft()
            if batch is self._open:
                self._open = None
            batch.builder.close()  # no record joins it now, and the producer sends it at once
            self._sending = batch
            try:
                acked = await self.producer.send_batch(
                    batch.builder, self.topic, partition=batch.partition
                )
                self.batches_sent += 1
                await acked
            except Exception as exc:
                batch.future.set_exception(exc)
                batch.future.exception()  # retrieved: its records' writers see it when they wait
            else:
                batch.future.set_result(None)
            self._sending = None

    async def close(self) -> None:
        """Send what is open and wait (at most :data:`CLOSE_WAIT_S`) for it; refuse later
        records. Records not acknowledged by then fail. Idempotent."""
        self._closed = True
        task, self._task = self._task, None
        if task is None:
            return
        self._wake.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.shield(task), CLOSE_WAIT_S)
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        left = [self._sending, *self._queue] if self._sending is not None else list(self._queue)
        self._sending = None
        for batch in left:
            if not batch.future.done():
                batch.future.set_exception(RuntimeError("the record batches were closed"))
                batch.future.exception()
        self._queue.clear()
        self._open = None
