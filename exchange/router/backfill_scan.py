"""Reading a consumer's current state from the source: each key's latest record, as its view.

A :class:`BackfillScan` reads the source partitions of one resource that a
router owns, from their first record on, with a consumer of its own (no
group: it commits nothing and never pauses the router's fetches), in worker
processes (:mod:`exchange.router.backfill_worker`: the router's backfills, on
cores of their own, up to :data:`WORKERS` of them, each partition read by one)
or a thread (:mod:`exchange.router.backfill_reader`), each
record rendered by :mod:`exchange.router.backfill_render`. For each
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
import logging
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from exchange.bus.connection import Connection
from exchange.catalog.model import Resource
from exchange.router.backfill_pending import Pending
from exchange.router.backfill_process import WorkerReader
from exchange.router.backfill_reader import ScanReader
from exchange.router.backfill_render import Renderer, Step
from exchange.router.backfill_worker import Recipe
from exchange.router.view import CompiledView
from exchange.router.view_table import Decoder

log = logging.getLogger(__name__)

#: a scan of fewer records before its cut-over reads them in the router's thread (one step
#: of a few milliseconds), not a worker process: starting one takes longer than that
WORKER_MIN_RECORDS = 2_000
#: worker processes a backfill reads its partitions in, at most (each partition in one): a
#: backfill's partition is delivered once it is read up to its cut-over, so with one
#: worker the partitions were read one after the other and the last one's reading held the
#: whole backfill; with two, two are read at once, on both cores of a 2-core machine when
#: live routing leaves them free (each at the worker's lower CPU priority). Measured in
#: "Full data, then changes" (benchmarks/backfill.py)
WORKERS = 2


@dataclass
class Part:
    """One source partition of a backfill: what is left to deliver, and how far it got."""

    tp: TopicPartition
    cutover: int  # first source offset routed live with the view
    through: int = -1  # last source offset delivered by the backfill (resume after it)
    delivered: int = 0
    total: int = -1  # records to deliver in all, once the scan reached the cut-over
    read_to: int = 0  # next source offset the scan reads
    #: key -> (source offset, the view's framed bytes or None if filtered out, record id)
    pending: Pending = field(default_factory=Pending)
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


class BackfillScan:
    """The scan of one consumer's view over the source partitions this router owns.

    Reading and rendering run in worker processes when the scan has a ``recipe`` to
    compile the view there (:class:`~exchange.router.backfill_process.WorkerReader`: the
    router's backfills of :data:`WORKER_MIN_RECORDS` or more), else in a thread
    (:class:`~exchange.router.backfill_reader.ScanReader`: ``exchange snapshot``); each
    step is applied to its :class:`Part` on the event loop that began the scan.
    """

    def __init__(
        self,
        bus: Connection,
        res: Resource,
        decoder: Decoder,
        view: CompiledView,
        recipe: Recipe | None = None,
    ) -> None:
        self.bus = bus
        self.res = res
        self.decoder = decoder
        self.view = view
        self.recipe = recipe
        self.parts: dict[TopicPartition, Part] = {}
        #: the readers, and which one reads each partition (its index there)
        self._readers: list[ScanReader | WorkerReader] = []
        self._owner: dict[TopicPartition, int] = {}
        self._halted = False
        self._renderer = Renderer(res, decoder, view)

    @property
    def begun(self) -> bool:
        return bool(self._readers)

    async def add(self, part: Part) -> None:
        """Scan ``part`` too, from its first record (once :meth:`begin` was called)."""
        self.parts[part.tp] = part
        if self._readers:
            at = self._owner.get(part.tp)
            if at is None:  # to the reader with the fewest partitions
                load = [0] * len(self._readers)
                for i in self._owner.values():
                    load[i] += 1
                at = self._owner[part.tp] = load.index(min(load))
            self._readers[at].assign(self._parts_of(at), [part])

    async def begin(self) -> None:
        """Start reading every partition added, from its first record: in up to
        :data:`WORKERS` worker processes (each partition in one of them), or in a thread."""
        if self._readers:
            return
        before = sum(p.cutover for p in self.parts.values())  # records to read, at most
        parts = sorted(self.parts.values(), key=lambda p: p.tp.partition)
        if self.recipe is not None and before >= WORKER_MIN_RECORDS:
            count = max(1, min(WORKERS, len(parts)))
            self._readers = [
                WorkerReader(self.recipe, self.view.topic, self._apply) for _ in range(count)
            ]
        else:
            self._readers = [ScanReader(self.bus, self.view.topic, self.render, self._apply)]
        self._owner = {p.tp: i % len(self._readers) for i, p in enumerate(parts)}
        for at, reader in enumerate(self._readers):
            reader.start(self._parts_of(at))

    def _parts_of(self, at: int) -> list[Part]:
        """The partitions reader ``at`` reads, in partition order."""
        mine = [p for tp, p in self.parts.items() if self._owner.get(tp) == at]
        return sorted(mine, key=lambda p: p.tp.partition)

    def drop(self, tp: TopicPartition) -> None:
        """Stop scanning ``tp`` (it went to another router, or its backfill ended)."""
        self.parts.pop(tp, None)
        at = self._owner.pop(tp, None)
        if at is not None and self._readers:
            mine = self._parts_of(at)
            if mine:  # a reader left without any reads on, its steps ignored (see _apply)
                self._readers[at].assign(mine, [])

    @property
    def failed(self) -> BaseException | None:
        return next((r.failed for r in self._readers if r.failed is not None), None)

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
        self._renderer.view = self.view  # the same shape, perhaps compiled again
        return self._renderer.render(part.cutover, records)

    @staticmethod
    def apply(part: Part, step: Step) -> None:
        """Apply a :meth:`render` step to ``part``'s pending state."""
        pending, through = part.pending, part.through
        offsets, outs, rids = pending.offsets, pending.outs, pending.rids
        was_scanned = part.scanned
        rows, part.read_to = step
        count = part.to_deliver
        taken = 0
        for key, offset, out, rid in rows:
            before = offsets.pop(key, None)
            if before is not None:  # superseded, or dropped
                taken += 1
                del rids[key]
                if outs.pop(key) is not None and before > through:
                    count -= 1
            if offset < 0:
                continue
            offsets[key], outs[key], rids[key] = offset, out, rid  # at the end: offset order
            if out is not None and offset > through:
                count += 1
        if taken:
            pending.took(taken)
        part.to_deliver = count
        if part.scanned and not was_scanned:
            part.total = part.delivered + count

    def halt(self) -> None:
        """Stop reading at once (no await): what it has not read yet is never rendered, and
        a step read meanwhile is not applied. The reader closes at :meth:`stop`."""
        self._halted = True
        for reader in self._readers:
            reader.halt()

    async def stop(self) -> None:
        """Stop reading and close the readers' consumers; idempotent."""
        self.halt()
        readers, self._readers = self._readers, []
        await asyncio.gather(*(reader.stop() for reader in readers))
