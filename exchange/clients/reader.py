"""Reading records (the subscriber side).

A consumer department reads its own delivery topic ``gov.dlv.<dept>.<res>``
and decodes every record with the view schema the router registered; it
never needs the provider's schema. A provider reading its own resource reads
the source topic. Records carry a stable id; the reader drops ids it has
already seen, so at-least-once delivery looks like exactly-once to the
application.

Besides records (:class:`Received`), a reader yields two events, typed so an
application cannot mistake them for data:

* :class:`Deletion`: the record of a key is gone from the reader's view, because
  the provider deleted it (``reason`` ``deleted``) or an update moved it out of
  the reader's row filter (``left-view``). Drop the key's row.
* :class:`Retraction`: a grant was revoked or expired; ``at_rest`` says what to do
  with what was received under it: ``delete`` the rows, or ``keep-frozen`` (keep
  them, no longer updated, marked as retracted). One arrives on each partition
  of the topic, after every record delivered there under the grant.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Self

from aiokafka import TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError

from exchange.avro import wire
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.envelope import (
    AT_REST,
    DELETED,
    DELETION,
    RECORD_ID,
    RETRACTION,
    RETRACTION_REASON,
)
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog
from exchange.errors import DecodeError, ExchangeError


@dataclass(frozen=True)
class Received:
    record_id: str | None
    key: str | None
    value: dict[str, Any]
    schema_id: int
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]


@dataclass(frozen=True)
class Deletion:
    """The record of ``key`` left the reader's view: deleted by its provider, or filtered out."""

    record_id: str | None
    key: str
    #: ``deleted`` (the provider deleted it) or ``left-view`` (no longer in the row filter)
    reason: str
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]


@dataclass(frozen=True)
class Retraction:
    """Grant ``grant_id`` ended (revoked or expired): handle its rows as ``at_rest`` says."""

    record_id: str | None
    grant_id: str
    #: ``delete`` or ``keep-frozen``
    at_rest: str
    #: ``revoked`` or ``expired``
    reason: str
    topic: str
    partition: int
    offset: int
    headers: dict[str, str]


#: what a reader yields
Event = Received | Deletion | Retraction


class SeenIds:
    """Bounded memory of recently seen record ids (oldest forgotten first)."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.duplicates = 0

    def first_time(self, rid: str) -> bool:
        if rid in self._ids:
            self.duplicates += 1
            return False
        self._ids[rid] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


def topic_for(catalog: Catalog, department: str, resource: str) -> str:
    """Where ``department`` reads ``resource``: its delivery topic, or the source if it provides it."""
    res = catalog.resource(resource)
    catalog.department(department)
    if res.provider == department:
        return topics.source(res.provider, res.id)
    return topics.delivery(department, res.id)


class Reader:
    """Reads and decodes one department's records of one resource.

    ``group`` set: offsets are committed after each batch is handed out
    (a restarted reader goes on where it stopped). ``group`` None: reads from
    the beginning every time, committing nothing.
    """

    def __init__(
        self,
        bus: Connection,
        topic: str,
        *,
        group: str | None = None,
        dedup: bool = True,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self.bus = bus
        self.topic = topic
        self.group = group
        self.registry = registry or SchemaRegistry(bus)
        self.seen = SeenIds() if dedup else None
        self._consumer: Any = None

    async def start(self) -> None:
        if self._consumer is not None:
            return
        # a department may not create its delivery topic: the router makes it when it
        # applies the subscription, which may be a moment after subscribe() returned
        await kafka.ensure_topics(self.bus, [self.topic], partitions=None, others_may_create=True)
        c = kafka.consumer(self.bus, group_id=self.group)
        try:  # closed if the start fails or is cancelled half-way
            await c.start()
            tps = await kafka.topic_partitions(c, self.topic)
            kafka.require_authorized(c, self.bus, self.topic)
        except BaseException:
            await c.stop()
            raise
        if self.group is None:
            c.assign(tps or [TopicPartition(self.topic, 0)])
        else:
            c.subscribe([self.topic])
        self._consumer = c

    async def stop(self) -> None:
        if self._consumer is not None:
            c, self._consumer = self._consumer, None
            await c.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def batches(self, *, idle_timeout: float = 5.0) -> AsyncIterator[list[Event]]:
        """Batches of new records and events; ends after ``idle_timeout`` seconds without any."""
        if self._consumer is None:
            raise ExchangeError("Reader is not started: use 'async with Reader(...)'")
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            try:
                fetched = await self._consumer.getmany(timeout_ms=200, max_records=2000)
            except TopicAuthorizationFailedError:
                raise kafka.refused(self.bus, "read", self.topic) from None
            if not fetched:
                if loop.time() - last >= idle_timeout:
                    return
                continue
            last = loop.time()
            out: list[Event] = []
            for _tp, records in fetched.items():
                for rec in records:
                    item = await self._decode(rec)
                    if item.record_id and self.seen and not self.seen.first_time(item.record_id):
                        continue
                    out.append(item)
            yield out
            if self.group is not None:
                await self._consumer.commit()

    async def read(
        self, *, max_records: int | None = None, idle_timeout: float = 5.0
    ) -> list[Event]:
        """Up to ``max_records`` records and events (all available if None)."""
        out: list[Event] = []
        async for batch in self.batches(idle_timeout=idle_timeout):
            out.extend(batch)
            if max_records is not None and len(out) >= max_records:
                return out[:max_records]
        return out

    async def _decode(self, rec: Any) -> Event:
        headers = {k: v.decode("utf-8", "replace") for k, v in (rec.headers or [])}
        if rec.value is None:
            return _tombstone(rec, headers)
        try:
            sid, body = wire.unframe(rec.value)
            value = wire.decode(await self.registry.resolve(sid), body)
        except DecodeError as exc:
            raise DecodeError(
                f"{rec.topic}[{rec.partition}]@{rec.offset}: {exc}",
                topic=rec.topic,
                offset=rec.offset,
            ) from exc
        return Received(
            record_id=headers.get(RECORD_ID),
            key=rec.key.decode("utf-8", "replace") if rec.key is not None else None,
            value=value,
            schema_id=sid,
            topic=rec.topic,
            partition=rec.partition,
            offset=rec.offset,
            headers=headers,
        )


def _tombstone(rec: Any, headers: dict[str, str]) -> Deletion | Retraction:
    """What a record with no value means: a grant's retraction, or a key's deletion."""
    where = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
    grant = headers.get(RETRACTION)
    if grant:
        return Retraction(
            record_id=headers.get(RECORD_ID),
            grant_id=grant,
            at_rest=headers.get(AT_REST, "delete"),
            reason=headers.get(RETRACTION_REASON, "revoked"),
            headers=headers,
            **where,
        )
    if rec.key is None:
        raise DecodeError(
            f"{rec.topic}[{rec.partition}]@{rec.offset}: a record with neither key nor value",
            topic=rec.topic,
            offset=rec.offset,
        )
    return Deletion(
        record_id=headers.get(RECORD_ID),
        key=rec.key.decode("utf-8", "replace"),
        reason=headers.get(DELETION, DELETED),
        headers=headers,
        **where,
    )
