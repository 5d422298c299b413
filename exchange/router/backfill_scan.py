"""Reading a consumer's current state from the source: each key's latest record, as its view.

A :class:`BackfillScan` reads the source partitions of one resource that a
router owns, from their first record on, with a consumer of its own (no
group: it commits nothing and never pauses the router's fetches). For each
partition (:class:`Part`) it keeps, in source-offset order, the latest record
of every key written before the cut-over offset, already rendered through
the consumer's compiled view (filtered, projected, masked: the same
:class:`~exchange.router.view.CompiledView` live routing uses), or None when
the view's row filter drops it.

From the cut-over on it keeps reading, and drops every key it sees again
(live routing delivers that record, and a newer one must not be followed by
an older one); a tombstone (a record with a key and no value: a deletion)
drops its key whatever its offset, so a deleted key never comes back from a
backfill. Delivering is the router's (:mod:`exchange.router.backfill`): a
partition's records may go out once this scan has read as far as live
routing has routed, so no record it holds was superseded by one already
delivered live.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from exchange.avro import wire
from exchange.avro.scan import LazyRecord
from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.bus.envelope import record_id
from exchange.bus.limits import MAX_VALUE_BYTES
from exchange.catalog.model import Resource
from exchange.errors import DecodeError
from exchange.router.routing import decode_other
from exchange.router.view import CompiledView
from exchange.router.view_table import Decoder

log = logging.getLogger(__name__)

#: key -> (source offset, the view's framed bytes or None if filtered out, record id)
Pending = OrderedDict[bytes, tuple[int, bytes | None, bytes]]
FETCH = 5000  # source records read per step: the event loop is the router's too


@dataclass
class Part:
    """One source partition of a backfill: what is left to deliver, and how far it got."""

    tp: TopicPartition
    cutover: int  # first source offset routed live with the view
    through: int = -1  # last source offset delivered by the backfill (resume after it)
    delivered: int = 0
    total: int = -1  # records to deliver in all, once the scan reached the cut-over
    read_to: int = 0  # next source offset the scan reads
    pending: Pending = field(default_factory=OrderedDict)
    done: bool = False
    #: where live routing of this partition (re)started here; -1: the cut-over. Nothing
    #: is delivered before the scan read that far (a resumed backfill after a crash)
    floor: int = -1

    @property
    def scanned(self) -> bool:
        """True once every record before the cut-over was read."""
        return self.read_to >= self.cutover


class BackfillScan:
    """The scan of one consumer's view over the source partitions this router owns."""

    def __init__(
        self, bus: Connection, res: Resource, decoder: Decoder, view: CompiledView
    ) -> None:
        self.bus = bus
        self.res = res
        self.decoder = decoder
        self.view = view
        self.parts: dict[TopicPartition, Part] = {}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._header = wire.frame(res.schema_id, b"")
        scanner = decoder.scanner
        self._key_bytes = scanner.string_bytes(res.key) if scanner is not None else None

    @property
    def begun(self) -> bool:
        return self._consumer is not None

    async def add(self, part: Part) -> None:
        """Scan ``part`` too, from its first record (once :meth:`begin` was called)."""
        self.parts[part.tp] = part
        if self._consumer is not None:
            self._consumer.assign(list(self.parts))
            await self._consumer.seek_to_beginning(part.tp)

    async def begin(self) -> None:
        """Start reading every partition added, from its first record."""
        if self._consumer is not None:
            return
        # fetch_max_wait: once caught up, the scan's fetch must not hold a record long
        self._consumer = kafka.consumer(
            self.bus,
            enable_auto_commit=False,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            fetch_max_wait_ms=50,
        )
        await self._consumer.start()
        self._consumer.assign(list(self.parts))
        await self._consumer.seek_to_beginning(*self.parts)
        self._task = asyncio.create_task(self._read(), name=f"backfill-{self.view.topic}")

    def drop(self, tp: TopicPartition) -> None:
        """Stop scanning ``tp`` (it went to another router, or its backfill ended)."""
        self.parts.pop(tp, None)
        if self._consumer is not None and self.parts:
            self._consumer.assign(list(self.parts))

    @property
    def failed(self) -> BaseException | None:
        task = self._task
        return task.exception() if task is not None and task.done() else None

    async def _read(self) -> None:
        while True:
            try:
                batch = await self._consumer.getmany(timeout_ms=200, max_records=FETCH)
            except KafkaError as exc:  # read again at the next step
                log.warning("backfill of %s: source not read: %s", self.view.topic, exc)
                await asyncio.sleep(1)
                continue
            for tp, records in batch.items():
                part = self.parts.get(tp)
                if part is not None and records:
                    self.scan(part, records)
            await asyncio.sleep(0)  # let live routing run between two steps

    def scan(self, part: Part, records: list[Any]) -> None:
        """Take ``records`` (the next ones of ``part``, in order) into its pending state."""
        pending, cutover = part.pending, part.cutover
        was_scanned = part.scanned
        for rec in records:
            value = rec.value
            if value is None:  # a tombstone: the key was deleted, nothing older comes back
                if rec.key is not None:
                    pending.pop(rec.key, None)
                continue
            try:
                if rec.offset >= cutover:  # delivered live: drop what the backfill holds
                    pending.pop(self._key(value), None)
                    continue
                key, out, rid = self._render(value)
            except DecodeError:
                continue  # live routing dead-lettered it
            pending[key] = (rec.offset, out, rid)
            pending.move_to_end(key)  # source-offset order: resume after ``through``
        part.read_to = records[-1].offset + 1
        if part.scanned and not was_scanned:
            part.total = part.delivered + sum(
                1 for off, out, _ in pending.values() if out is not None and off > part.through
            )

    def _body(self, value: bytes) -> tuple[Any, bool, Any, Any]:
        """(body, current schema, record, scan offsets) of a source value."""
        scanner = self.decoder.scanner
        if scanner is not None and value[:5] == self._header and len(value) <= MAX_VALUE_BYTES:
            body = value[5:]
            offsets = scanner.offsets(body)
            return body, True, LazyRecord(scanner, body, offsets), offsets
        sid, other, record = decode_other(self.decoder, value)
        return other, sid == self.res.schema_id, record, None

    def _key(self, value: bytes) -> bytes:
        body, _, record, offsets = self._body(value)
        if self._key_bytes is not None and offsets is not None:
            return bytes(self._key_bytes(body, offsets))
        return str(record[self.res.key]).encode()

    def _render(self, value: bytes) -> tuple[bytes, bytes | None, bytes]:
        """Key, the view's framed bytes (None: filtered out) and record id of a value."""
        view = self.view
        body, same_schema, record, offsets = self._body(value)
        if self._key_bytes is not None and offsets is not None:
            key = bytes(self._key_bytes(body, offsets))
        else:
            key = str(record[self.res.key]).encode()
        if view.passthrough and same_schema:
            out: bytes | None = value
        elif offsets is not None and view.slice_renderer is not None:
            out = view.slice_renderer(body, offsets, record)
        else:
            out = view.render(record)
        return key, out, record_id(self.res.id, body).encode()

    def halt(self) -> None:
        """Stop reading at once (no await): what it has not read yet is never rendered. The
        consumer stays open until :meth:`stop`."""
        if self._task is not None:
            self._task.cancel()

    async def stop(self) -> None:
        """Stop reading and close the consumer; idempotent."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await self._task
            self._task = None
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
