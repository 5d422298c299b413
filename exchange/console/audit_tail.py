"""The access log as the console reads it: once from the beginning, then only what is new.

Each page of the log (and the monthly report) needs every entry: the chains
are verified over the whole log, and filters run over all of it. Reading
``gov.audit`` from the beginning on every page load would cost the whole log
each time; this keeps one consumer assigned to the topic and the records read
so far (decoded, or why not), and each call reads only what was written
since. Memory grows with the log: for logs of many millions of entries, point
auditors at the archive (``exchange audit query --archive``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from exchange.audit.log import Item, decode_record
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.errors import BrokerUnavailable


class AuditTail:
    def __init__(
        self, bus: Connection, topic: str = topics.AUDIT, *, timeout_s: float = 60
    ) -> None:
        self.bus, self.topic, self.timeout_s = bus, topic, timeout_s
        self._consumer: Any = None
        self._tps: list[Any] = []
        self._items: list[Item] = []
        self._lock = asyncio.Lock()

    async def _start(self) -> None:
        c = kafka.consumer(self.bus)
        try:
            try:
                await c.start()
            except Exception as exc:
                raise BrokerUnavailable(f"cannot read {self.topic}: {exc}") from exc
            tps = await kafka.topic_partitions(c, self.topic)
            if tps:
                c.assign(tps)
                await c.seek_to_beginning(*tps)
        except BaseException:  # failed, or the request cancelled, half-way: closed
            await c.stop()
            raise
        if not tps:  # nothing audited yet: look again next time
            await c.stop()
            return
        self._consumer, self._tps = c, tps

    async def read(self) -> list[Item]:
        """Every record of the log so far, in partition order (a copy)."""
        async with self._lock:
            if self._consumer is None:
                await self._start()
            if self._consumer is not None:
                records = await kafka.drain(self._consumer, self._tps, timeout_s=self.timeout_s)
                self._items.extend(decode_record(r) for r in records)
                self._items.sort(key=lambda item: item[0])  # (partition, offset)
            return list(self._items)

    async def stop(self) -> None:
        if self._consumer is not None:
            c, self._consumer = self._consumer, None
            await c.stop()
