"""Reading a consumer's current state from the source: each key's latest record, as its view.

A :class:`BackfillScan` reads the source partitions of one resource that a
router owns, from their first record on, with a consumer of its own (no
group: it commits nothing and never pauses the router's fetches), in a thread
of its own (:mod:`exchange.router.backfill_reader`). For each
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

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from exchange.avro import wire
from exchange.avro.scan import LazyRecord
from exchange.bus.connection import Connection
from exchange.bus.envelope import record_id
from exchange.bus.limits import MAX_VALUE_BYTES
from exchange.catalog.model import Resource
from exchange.errors import DecodeError
from exchange.router.backfill_reader import ScanReader
from exchange.router.routing import decode_other
from exchange.router.view import CompiledView
from exchange.router.view_table import Decoder

log = logging.getLogger(__name__)

#: key -> (source offset, the view's framed bytes or None if filtered out, record id)
Pending = OrderedDict[bytes, tuple[int, bytes | None, bytes]]


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
    #: records pending to deliver (in the view, after ``through``), counted as the scan goes
    #: (counting them at the cut-over held the router's loop for a large partition)
    to_deliver: int = 0

    @property
    def scanned(self) -> bool:
        """True once every record before the cut-over was read."""
        return self.read_to >= self.cutover


#: what reading a batch of a partition's records gave: per record, (key, source offset,
#: the view's framed bytes or None if filtered out, record id), or (key, -1, None, b"")
#: for a key to drop (a tombstone, or a record from the cut-over on); and the next offset
Step = tuple[list[tuple[bytes, int, bytes | None, bytes]], int]


class BackfillScan:
    """The scan of one consumer's view over the source partitions this router owns.

    Reading and rendering run in a thread (:class:`~exchange.router.backfill_reader.ScanReader`);
    each step is applied to its :class:`Part` on the router's event loop.
    """

    def __init__(
        self, bus: Connection, res: Resource, decoder: Decoder, view: CompiledView
    ) -> None:
        self.bus = bus
        self.res = res
        self.decoder = decoder
        self.view = view
        self.parts: dict[TopicPartition, Part] = {}
        self._reader: ScanReader | None = None
        self._halted = False
        self._header = wire.frame(res.schema_id, b"")
        scanner = decoder.scanner
        self._key_bytes = scanner.string_bytes(res.key) if scanner is not None else None

    @property
    def begun(self) -> bool:
        return self._reader is not None

    async def add(self, part: Part) -> None:
        """Scan ``part`` too, from its first record (once :meth:`begin` was called)."""
        self.parts[part.tp] = part
        if self._reader is not None:
            self._reader.assign(list(self.parts.values()), [part])

    async def begin(self) -> None:
        """Start reading every partition added, from its first record."""
        if self._reader is not None:
            return
        self._reader = ScanReader(self.bus, self.view.topic, self.render, self._apply)
        self._reader.start(list(self.parts.values()))

    def drop(self, tp: TopicPartition) -> None:
        """Stop scanning ``tp`` (it went to another router, or its backfill ended)."""
        self.parts.pop(tp, None)
        if self._reader is not None and self.parts:
            self._reader.assign(list(self.parts.values()), [])

    @property
    def failed(self) -> BaseException | None:
        return self._reader.failed if self._reader is not None else None

    def scan(self, part: Part, records: list[Any]) -> None:
        """Take ``records`` (the next ones of ``part``, in order) into its pending state."""
        self.apply(part, self.render(part, records))

    def _apply(self, part: Part, step: Step) -> None:
        """A step read in the thread, on the router's loop: ignored once halted or dropped."""
        if not self._halted and self.parts.get(part.tp) is part:
            self.apply(part, step)

    def render(self, part: Part, records: list[Any]) -> Step:
        """Read ``records`` (the next ones of ``part``): what to keep and drop, and the next
        offset. Touches nothing the router's loop uses (it runs in the reader's thread)."""
        cutover = part.cutover
        out: list[tuple[bytes, int, bytes | None, bytes]] = []
        for rec in records:
            value = rec.value
            if value is None:  # a tombstone: the key was deleted, nothing older comes back
                if rec.key is not None:
                    out.append((rec.key, -1, None, b""))
                continue
            try:
                if rec.offset >= cutover:  # delivered live: drop what the backfill holds
                    out.append((self._key(value), -1, None, b""))
                    continue
                key, view_bytes, rid = self._render(value)
            except DecodeError:
                continue  # live routing dead-lettered it
            out.append((key, rec.offset, view_bytes, rid))
        return out, records[-1].offset + 1

    @staticmethod
    def apply(part: Part, step: Step) -> None:
        """Apply a :meth:`render` step to ``part``'s pending state."""
        pending, through = part.pending, part.through
        was_scanned = part.scanned
        rows, part.read_to = step
        count = part.to_deliver
        for key, offset, out, rid in rows:
            before = pending.pop(key, None)
            if before is not None and before[1] is not None and before[0] > through:
                count -= 1
            if offset < 0:
                continue
            pending[key] = (offset, out, rid)  # at the end: source-offset order
            if out is not None and offset > through:
                count += 1
        part.to_deliver = count
        if part.scanned and not was_scanned:
            part.total = part.delivered + count

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
        """Stop reading at once (no await): what it has not read yet is never rendered, and
        a step read meanwhile is not applied. The reader closes at :meth:`stop`."""
        self._halted = True
        if self._reader is not None:
            self._reader.halt()

    async def stop(self) -> None:
        """Stop reading and close the reader's consumer; idempotent."""
        self.halt()
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()
