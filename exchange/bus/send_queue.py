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
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

#: (batch, the future handed out for it, its size in bytes)
_Queued = tuple[Any, "asyncio.Future[Any]", int]


class SendQueue:
    """Batches waiting their turn with the producer, per (topic, partition), in order."""

    def __init__(self, producer: Any) -> None:
        self._producer = producer
        self._queues: dict[tuple[str, int], deque[_Queued]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.unacked = 0  # bytes put and not acknowledged (or failed) yet

    def busy(self, topic: str, partition: int) -> bool:
        """True while batches put for (topic, partition) wait for the producer."""
        return (topic, partition) in self._queues

    def put(self, topic: str, partition: int, batch: Any) -> asyncio.Future[Any]:
        """Queue ``batch`` after the ones put before for its partition; returns a future
        done when the broker acknowledged it (or failed with the producer's error)."""
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        size = batch.size()
        self.unacked += size
        where = (topic, partition)
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
                try:
                    acked = await self._producer.send_batch(batch, topic, partition=partition)
                except Exception as exc:
                    # not handed over: this batch and every one behind it fail (a later
                    # batch must not be delivered without an earlier one of its partition)
                    self._fail(queue, exc)
                    return
                queue.popleft()
                acked.add_done_callback(lambda f, d=done, s=size: self._acked(f, d, s))
        finally:
            if self._queues.get(where) is queue:
                del self._queues[where]
            self._fail(queue, asyncio.CancelledError())  # cancelled meanwhile: none is left

    def _acked(self, acked: asyncio.Future[Any], done: asyncio.Future[Any], size: int) -> None:
        self.unacked -= size
        if done.done():
            return
        if acked.cancelled():
            done.cancel()
        elif acked.exception() is not None:
            done.set_exception(acked.exception())  # type: ignore[arg-type]
        else:
            done.set_result(acked.result())

    def _fail(self, queue: deque[_Queued], exc: BaseException) -> None:
        while queue:
            _, done, size = queue.popleft()
            self.unacked -= size
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
