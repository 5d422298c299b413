"""Following ``gov.audit`` into an archive database (``exchange audit archive``).

Reads from the offsets stored in the archive (or the beginning), stores
each batch together with the offsets to resume from, and checks every
chain on the way (bounded memory), counting what it finds in the
``audit_verification_failures`` metric. A gap is only reported by a full
``exchange audit verify``, since after a restart a chain's earlier entries
are in the database, not in memory.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition

from exchange.audit.archive import Archive
from exchange.audit.log import decode_record
from exchange.audit.verify import ChainChecker, Position
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.kafka import ensure_control_topics
from exchange.errors import BrokerUnavailable
from exchange.metrics import AuditMetrics

log = logging.getLogger(__name__)

#: how long ``--once`` waits for a read position to move before it gives up with an error
#: naming where it stands (a broker that stops answering fetches must not hang a cron job)
ONCE_STALL_S = 60.0


@dataclass
class ArchiveRun:
    read: int = 0  # records read from the topic
    added: int = 0  # entries new to the archive


class Archiver:
    def __init__(
        self,
        bus: Connection,
        archive: Archive,
        *,
        metrics: AuditMetrics | None = None,
        topic: str = topics.AUDIT,
        batch: int = 5000,
    ) -> None:
        self.bus = bus
        self.archive = archive
        self.metrics = metrics or AuditMetrics()
        self.topic = topic
        self.batch = batch
        self.checker = ChainChecker(window=4096, max_writers=100_000)

    async def run(self, *, follow: bool = False, stop: asyncio.Event | None = None) -> ArchiveRun:
        """Archive until caught up (``follow=False``) or until ``stop`` is set."""
        stop = stop or asyncio.Event()
        await ensure_control_topics(self.bus)
        # an access log that loses entries before they are archived cannot be archived whole
        await kafka.require_safe_control_topics(self.bus, [self.topic])
        c = kafka.consumer(self.bus)
        try:  # stopped however it ends, also cancelled or failed mid-start
            await c.start()
            return await self._run(c, follow, stop)
        finally:
            await c.stop()

    async def _run(self, c: Any, follow: bool, stop: asyncio.Event) -> ArchiveRun:
        tps = await kafka.topic_partitions(c, self.topic) or [TopicPartition(self.topic, 0)]
        c.assign(tps)
        resume = await asyncio.to_thread(self.archive.progress, self.topic)
        for tp in tps:
            if tp.partition in resume:
                c.seek(tp, resume[tp.partition])
            else:
                await c.seek_to_beginning(tp)
        # --once stops at the end of the log as it was when it began: on a busy bus routers
        # append entries all the time, and waiting for a quiet moment would never end
        end = kafka.LogEnd(c, await c.end_offsets(tps))
        done = ArchiveRun()
        loop = asyncio.get_running_loop()
        moved_at, where = loop.time(), await self._positions(c, tps)
        while not stop.is_set():
            batch = await c.getmany(timeout_ms=500, max_records=self.batch)
            items = []
            next_offsets: dict[int, int] = {}
            for tp, records in batch.items():
                for rec in records:
                    items.append(self._check(decode_record(rec)))
                next_offsets[tp.partition] = records[-1].offset + 1
            if items:
                done.read += len(items)
                done.added += await asyncio.to_thread(
                    self.archive.store, self.topic, items, next_offsets
                )
            if not follow:
                end.observe(c, tps)
                pending = await end.pending(c, tps)
                if not pending:
                    break
                now = await self._positions(c, tps)
                if now != where:
                    moved_at, where = loop.time(), now
                elif loop.time() - moved_at > ONCE_STALL_S:
                    raise BrokerUnavailable(self._stalled(pending, where, end.ends))
        return done

    @staticmethod
    async def _positions(c: Any, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: await c.position(tp) for tp in tps}

    def _stalled(
        self,
        pending: list[TopicPartition],
        at: dict[TopicPartition, int],
        ends: dict[TopicPartition, int],
    ) -> str:
        parts = ", ".join(
            f"partition {tp.partition} at offset {at[tp]} of {ends[tp]}" for tp in pending
        )
        return (
            f"{self.topic} did not move for {ONCE_STALL_S:.0f} s before its end ({parts}) "
            f"on {self.bus.describe()}: what was archived is kept; run it again to go on"
        )

    def _check(self, item: tuple[Position, Any]) -> tuple[Position, Any]:
        pos, entry = item
        found = (
            [self.checker.unreadable(pos, entry)]
            if isinstance(entry, str)
            else self.checker.feed(pos, entry)
        )
        for f in found:
            if f.broken:
                self.metrics.verification_failures.labels(f.kind.value).inc()
                log.warning("audit log %s: %s", f.kind.value, f.message)
        return item
