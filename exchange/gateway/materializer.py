"""Keeps the latest-state store up to date from the source topics of the catalog in force.

One consumer, no consumer group: it is assigned every partition of every
source topic the catalog names (``gov.src.<provider>.<resource>``, made if
missing) and starts each where the store's rows end, or at the earliest
record. A poll waits at most :data:`POLL_MS`, so a published record is in
the store well within a second. Offsets live in the store, in the same
transaction as the rows (:mod:`.store`); nothing is committed to Kafka.
When the catalog changes, the assignment follows it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.gateway.store import Change, LatestStore
from exchange.lifecycle import AsyncService

log = logging.getLogger(__name__)

POLL_MS = 100
MAX_RECORDS = 5000


def source_topics(catalog: Catalog | None) -> set[str]:
    if catalog is None:
        return set()
    return {topics.source(r.provider, r.id) for r in catalog.resources.values()}


class Materializer(AsyncService):
    """Reads the source topics into the store; ``caught_up`` once a poll finds nothing new."""

    def __init__(
        self,
        bus: Connection,
        store: LatestStore,
        catalog: Callable[[], Catalog | None],
        *,
        partitions: int | None = None,
    ) -> None:
        self.bus = bus
        self.store = store
        self.catalog = catalog
        self.partitions = partitions
        self.caught_up = asyncio.Event()
        self.applied = 0
        self.last_applied_at: float | None = None  # time.time() of the last batch written
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._assigned: set[str] = set()

    async def start(self) -> None:
        self._consumer = kafka.consumer(self.bus, max_poll_records=MAX_RECORDS)
        await self._consumer.start()
        await self._follow_catalog()
        self._task = asyncio.create_task(self._run(), name="gateway-materializer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()

    @property
    def failed(self) -> BaseException | None:
        task = self._task
        if task is None or not task.done() or task.cancelled():
            return None
        return task.exception()

    async def _follow_catalog(self) -> None:
        """Assign the partitions of every source topic of the catalog in force (if changed)."""
        wanted = source_topics(self.catalog())
        if wanted == self._assigned:
            return
        if wanted:
            await kafka.ensure_topics(self.bus, wanted, partitions=self.partitions)
        tps: list[TopicPartition] = []
        for topic in sorted(wanted):
            tps += await kafka.topic_partitions(self._consumer, topic)
        self._consumer.assign(tps)
        stored = self.store.positions()
        for tp in tps:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, offset)
        await asyncio.to_thread(self.store.forget_topics, wanted)
        self._assigned = wanted
        log.info("gateway store follows %d source topics (%d partitions)", len(wanted), len(tps))

    async def _run(self) -> None:
        while True:
            await self._follow_catalog()
            if not self._assigned:
                await asyncio.sleep(POLL_MS / 1000)
                self.caught_up.set()
                continue
            batches = await self._consumer.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
            changes = [
                Change(rec.topic, rec.partition, rec.offset, rec.key, rec.value)
                for records in batches.values()
                for rec in records
                if rec.key is not None
            ]
            if changes:
                # a record without a key has no place in a store by key: skipped
                await asyncio.to_thread(self.store.apply, changes)
                self.applied += len(changes)
                self.last_applied_at = time.time()
            elif not self.caught_up.is_set():
                self.caught_up.set()
                log.info("gateway store caught up: %d records", self.store.count())
