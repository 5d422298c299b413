"""Record batches handed to the producer in order per partition, without the router waiting.

The producer keeps one batch per partition waiting to be sent: ``send_batch``
of a second one waits until the first is taken into a produce request, and a
node has one request in flight, which carries one batch per partition. A
backfill chunk of many batches into one delivery partition therefore took
one round trip to the broker per batch, and the router, handing its batches
over one after the other, held every other consumer's live records until
the last of them was taken (seconds, for a chunk of 20,000 records).

A :class:`SendQueue` takes batches at once and feeds each partition's to the
producer from a task of its own, in the order they were put: the backfill's
batches go through it, and so do live batches for a partition that still has
batches queued (so a key's live record never overtakes its backfilled one).
Every other live batch is handed to the producer directly, as before.
:attr:`SendQueue.unacked` counts the bytes put and not yet acknowledged: the
backfill puts more only while it is under its budget, so each produce
request carries at most a batch of it per partition beside the live ones.

With a producer of its own (``own_producer``: the router gives the backfill a
connection of its own), a live batch never waits behind a backfill's produce
request: a node has one request in flight per connection, and a request
carrying a backfill's batches took the live batches' turn on the router's
connection. Order per partition across the two producers is kept both ways:
a partition stays :meth:`busy` until every batch put for it is acknowledged
(so a live batch after them goes through the queue too), and a batch put for
a partition whose last batch went to the other producer (:meth:`direct`)
goes out once that one is acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

#: (batch, the future handed out for it, its size in bytes)
_Queued = tuple[Any, "asyncio.Future[Any]", int]


class NotDelivered(Exception):
    """A batch was not sent: an earlier batch of its partition, through the other producer,
    failed (a later one must not be delivered without it)."""

    def __init__(self, topic: str, partition: int) -> None:
        super().__init__(
            f"not sent: an earlier batch of {topic} partition {partition} was not delivered"
        )


class SendQueue:
    """Batches waiting their turn with the producer, per (topic, partition), in order."""

    def __init__(self, producer: Any, *, own_producer: bool = False) -> None:
        self._producer = producer
        #: ``producer`` is not the one the other batches go to (see :meth:`direct`)
        self.own_producer = own_producer
        self._queues: dict[tuple[str, int], deque[_Queued]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.unacked = 0  # bytes put and not acknowledged (or failed) yet
        #: batches put and not acknowledged (or failed) yet, per (topic, partition)
        self._held: dict[tuple[str, int], int] = {}
        #: the last batch of a (topic, partition) handed to the other producer, until acked
        self._direct: dict[tuple[str, int], asyncio.Future[Any]] = {}

    def busy(self, topic: str, partition: int) -> bool:
        """True while batches put for (topic, partition) wait for the producer (with a
        producer of its own: until they are acknowledged)."""
        where = (topic, partition)
        return where in self._queues or (self.own_producer and where in self._held)

    def direct(self, topic: str, partition: int, acked: asyncio.Future[Any]) -> None:
        """A batch of (topic, partition) went to the other producer (``acked``: done when
        acknowledged): a batch put for it later goes out only after it."""
        if not self.own_producer:
            return
        where = (topic, partition)
        self._direct[where] = acked
        acked.add_done_callback(lambda f: self._forget(where, f))

    def _forget(self, where: tuple[str, int], acked: asyncio.Future[Any]) -> None:
        if self._direct.get(where) is acked:
            del self._direct[where]

    def put(self, topic: str, partition: int, batch: Any) -> asyncio.Future[Any]:
        """Queue ``batch`` after the ones put before for its partition; returns a future
        done when the broker acknowledged it (or failed with the producer's error)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        size = batch.size()
        self.unacked += size
        where = (topic, partition)
        self._held[where] = self._held.get(where, 0) + 1
        queue = self._queues.get(where)
        if queue is None:
            queue = self._queues[where] = deque()
            task = asyncio.create_task(self._feed(where, queue), name=f"send-{topic}-{partition}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        queue.append((batch, done, size))
        return done

    async def _feed(self, where: tuple[str, int], queue: deque[_Queued]) -> None:
        topic, partition = where
        try:
            while queue:
                batch, done, size = queue[0]
                before = self._direct.get(where)
                if before is not None:  # the other producer's batch of it goes first
                    await asyncio.wait([before])
                    if before.cancelled() or before.exception() is not None:
                        # not delivered: nothing after it in this partition may be either
                        self._fail(queue, NotDelivered(topic, partition), where)
                        return
                try:
                    acked = await self._producer.send_batch(batch, topic, partition=partition)
                except Exception as exc:
                    # not handed over: this batch and every one behind it fail (a later
                    # batch must not be delivered without an earlier one of its partition)
                    self._fail(queue, exc, where)
                    return
                queue.popleft()
                acked.add_done_callback(lambda f, d=done, s=size: self._acked(f, d, s, where))
        finally:
            if self._queues.get(where) is queue:
                del self._queues[where]
            self._fail(queue, asyncio.CancelledError(), where)  # cancelled meanwhile: none is left

    def _acked(
        self,
        acked: asyncio.Future[Any],
        done: asyncio.Future[Any],
        size: int,
        where: tuple[str, int],
    ) -> None:
        self.unacked -= size
        self._release(where)
        if done.done():
            return
        if acked.cancelled():
            done.cancel()
        elif acked.exception() is not None:
            done.set_exception(acked.exception())  # type: ignore[arg-type]
        else:
            done.set_result(acked.result())

    def _release(self, where: tuple[str, int]) -> None:
        """One batch put for ``where`` was acknowledged, or failed."""
        left = self._held.get(where, 0) - 1
        if left > 0:
            self._held[where] = left
        else:
            self._held.pop(where, None)

    def _fail(self, queue: deque[_Queued], exc: BaseException, where: tuple[str, int]) -> None:
        while queue:
            _, done, size = queue.popleft()
            self.unacked -= size
            self._release(where)
            if not done.done():
                if isinstance(exc, asyncio.CancelledError):
                    done.cancel()
                else:
                    done.set_exception(exc)

    async def close(self) -> None:
        """Stop feeding the producer: what is still queued fails as cancelled; idempotent."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
