"""Establishing which keys a row-filtered view holds before a partition is routed.

The keys a consumer's row-filtered view holds (:mod:`exchange.router.membership`)
are learnt from what the router delivers, so they are not known when a router
takes a source partition (it started, or a rebalance gave it the partition) or
when a view without a row filter gains one (its consumer holds every key).
Until they are, a provider's deletion of a key delivered earlier would not
reach a view that receives keys in clear (an unknown key never goes there:
the tombstone would reveal it), and a record leaving the filter would stay in
the consumer's copy. So the router establishes them first, from **the current
state of the resource**: the compacted source partition, read up to the
router's position with the backfill's scan
(:class:`~exchange.router.backfill_scan.BackfillScan`), each key's latest
record tested against the rule the consumer's copy was built under.

That rule is read from the view's backfill progress on ``gov.ctl.backfill``
(:mod:`exchange.router.backfill_state`), which names the row filter of the
view the consumer was last given its full state of:

- no progress, or a view that ended (its grant was retracted): it holds
  nothing from before, no scan is needed;
- a first backfill still running (trigger ``grant``): the keys passing its
  filter, except those between the offset it delivered through and its
  cut-over (not delivered yet: the resumed backfill adds them as it goes);
- a backfill that changed the filter (a narrowing) still running: between
  those offsets, the keys passing the filter before it (``narrowed_from`` in
  the progress record), so the resumed backfill deletes the ones the new
  filter rejects; elsewhere the keys passing the new one;
- otherwise: the keys whose latest record passes that filter (every key if
  it had none: a view that just gained a row filter).

Why not the delivery topic, which holds exactly what was delivered? It is
kept ``delivery_retention_ms`` (7 days by default, delete by time): a key
delivered a month ago is gone from it, and still in the consumer's table.
Why not a compacted control topic of its own? One record per key a filtered
view gains or loses, written and acknowledged before the source offsets
commit: a second write for every delivery that changes membership, to save a
read at start. The source is compacted and already read this way by every
backfill; the cost is a start-up read, measured by ``python -m
exchange.dev.bench_membership`` (about half the time live routing of the same
records takes, five times a plain read of them; see the README).

While a partition's keys are being established the router does not route it
(it pauses the partition and sets its fetch back to the first record not
routed) and no backfill of it goes out: nothing is decided on a membership not
known yet, and the other partitions route meanwhile. One scan per resource
reads its partitions once for every filtered view that needs them; at most
:data:`MAX_SCANS` run at once.

Public surface: :class:`MembershipRebuild` (``due``, ``reconcile``, ``advance``,
``hold``, ``holding``, ``stop``) and :func:`held_rule`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Resource
from exchange.enforce.rowfilter import FilterError, RowFilter, compile_filter
from exchange.router.backfill_render import Renderer, Step
from exchange.router.backfill_scan import BackfillScan, Part
from exchange.router.backfill_state import BackfillBook, Progress
from exchange.router.membership import Membership
from exchange.router.view import CompiledView
from exchange.router.view_table import Decoder, ViewTable

log = logging.getLogger(__name__)

MAX_SCANS = 4  # rebuild scans reading at once; the others wait their turn
STOP_S = 10.0  # longest wait for a scan's consumer to close at stop


@dataclass(frozen=True)
class Held:
    """How one consumer's copy of one source partition was built: the keys it holds.

    A key is held if its latest record passes ``row_filter``, or, when that record lies
    inside ``window`` (the offsets an unfinished backfill has not reached yet), if it
    passes ``inside`` (None there: not delivered yet, so not held).
    """

    consumer: str
    #: the row filter its copy was built under (None: every key of the resource)
    row_filter: str | None
    #: (through, cutover) of a backfill still running: records after ``through`` and
    #: before ``cutover`` were not reached yet
    window: tuple[int, int] | None = None
    #: the filter the copy had before that backfill, for the records it has not reached
    #: (None: a first backfill, the consumer held nothing of them)
    inside: str | None = None

    def holds(self, offset: int, passes: bool, passes_inside: bool) -> bool:
        if self.window is not None and self.window[0] < offset < self.window[1]:
            return self.inside is not None and passes_inside
        return passes


def held_rule(prev: Progress | None, view: CompiledView, *, backfill: bool) -> Held | None:
    """The rule of the keys ``view``'s consumer holds from one partition (None: none at all).

    ``prev`` is the partition's backfill progress; ``backfill`` False means the router
    runs without backfills (no progress is written): the view's own filter is the
    best knowledge there is.
    """
    if not backfill:
        return Held(view.consumer, view.view.row_filter)
    if prev is None or prev.state == "ended":
        return None
    window = (prev.through, prev.cutover)
    if prev.running and prev.trigger == "grant":  # a first backfill: nothing before it
        return Held(view.consumer, prev.row_filter, window)
    if prev.running and prev.narrowed_from is not None:  # a narrowing cut short
        return Held(view.consumer, prev.row_filter, window, prev.narrowed_from)
    return Held(view.consumer, prev.row_filter)


class HeldScan(BackfillScan):
    """The backfill's scan, reading up to the router's position only, noting for each key
    whether its latest record passes each consumer's rule (two flag bytes per rule: its
    filter, and the filter inside its window)."""

    def __init__(self, bus: Connection, res: Resource, decoder: Decoder, view: CompiledView):
        super().__init__(bus, res, decoder, view)
        self.rules: dict[TopicPartition, list[tuple[Held, list[RowFilter | None]]]] = {}
        self._current: list[RowFilter | None] = []
        self.started = time.monotonic()
        self._renderer = _FlagRenderer(self)

    def rule(self, tp: TopicPartition, held: Held, fallback: str | None) -> None:
        """Establish ``held`` from ``tp`` too; a stored filter that no longer compiles (the
        catalog renamed a field) gives way to ``fallback``, the view's filter now."""
        filters = [self._compiled(held, held.row_filter, fallback)]
        filters.append(self._compiled(held, held.inside, fallback) if held.inside else None)
        self.rules.setdefault(tp, []).append((held, filters))

    def _compiled(self, held: Held, text: str | None, fallback: str | None) -> RowFilter | None:
        names = self.res.field_names()
        try:
            return compile_filter(text, names) if text else None
        except FilterError as exc:
            log.warning(
                "membership of %s for %s: filter %r of its copy no longer compiles (%s); "
                "the view's filter is used instead",
                self.res.id,
                held.consumer,
                text,
                exc,
            )
            return compile_filter(fallback, names) if fallback else None

    def render(self, part: Part, records: list[Any]) -> Step:
        """Take the records before the part's cut-over; the ones from it on are routed live
        after the rebuild (they must not change what was held before them). Runs in the
        scan's reader thread, one part after another."""
        self._current = [flt for _, filters in self.rules.get(part.tp, []) for flt in filters]
        before = [rec for rec in records if rec.offset < part.cutover]
        rows, read_to = super().render(part, before) if before else ([], part.read_to)
        if records and records[-1].offset >= part.cutover:
            read_to = max(read_to, part.cutover)
        return rows, read_to

    def members(self, part: Part) -> list[tuple[str, set[bytes]]]:
        """Each consumer's keys held from ``part`` (read up to its cut-over)."""
        found = []
        for i, (held, _) in enumerate(self.rules.get(part.tp, [])):
            keys = {
                key
                for key, (offset, flags, _) in part.pending.items()
                if flags is not None
                and held.holds(offset, flags[2 * i] == 1, flags[2 * i + 1] == 1)
            }
            found.append((held.consumer, keys))
        return found


class _FlagRenderer(Renderer):
    """Renders a record as its key and, instead of the view's bytes, the flags of the
    rules of the part being read (:attr:`HeldScan._current`)."""

    def __init__(self, scan: HeldScan) -> None:
        super().__init__(scan.res, scan.decoder, scan.view)
        self.scan = scan

    def _render(self, value: bytes) -> tuple[bytes, bytes | None, bytes]:
        body, _, record, offsets = self._body(value)
        key = self._key_of(body, record, offsets)
        return key, bytes(flt is None or flt.matches(record) for flt in self.scan._current), b""


class MembershipRebuild:
    """The router's rebuilds of membership: started as partitions and views change, and
    the source partitions held back from routing until they are done."""

    def __init__(
        self,
        bus: Connection,
        table: ViewTable,
        membership: Membership,
        book: BackfillBook | None,
    ) -> None:
        self.bus = bus
        self.table = table
        self.membership = membership
        self.book = book  # None: the router runs without backfills (no progress to read)
        self.scans: list[HeldScan] = []
        #: source partitions not routed (nor backfilled) until their membership is known
        self.holding: set[TopicPartition] = set()
        self.assignments = 0  # bumped by the router when its partitions change
        self._seen: tuple[int, int] = (-1, -1)
        self._paused: set[TopicPartition] = set()
        self._closing: set[asyncio.Future[None]] = set()

    @property
    def due(self) -> bool:
        """True when views or partitions changed since the last reconcile."""
        return self._seen != (self.table.generation, self.assignments)

    def assigned(self, held: set[TopicPartition]) -> None:
        """The router's partitions are now ``held``: forget what it held of the others."""
        self.assignments += 1
        self.membership.keep_partitions(
            {(parsed[1], tp.partition) for tp in held if (parsed := topics.parse_source(tp.topic))}
        )

    async def reconcile(self, consumer: Any, batch: dict[Any, list[Any]]) -> None:
        """Start a rebuild for each filtered view and held partition whose keys are unknown.

        ``batch`` is the batch about to be routed: a rebuild reads up to its first offset in
        a partition (the consumer's position if the batch has none of it).
        """
        self._seen = (self.table.generation, self.assignments)
        assigned = set(consumer.assignment())
        views = [v for vs in self.table.views.values() for v in vs if v.row_filter is not None]
        self.membership.keep_views({(v.view.resource, v.consumer) for v in views})
        for scan in self.scans:
            for tp in [tp for tp in scan.parts if tp not in assigned]:
                del scan.parts[tp]  # another router's now (and see advance: not drop())
        busy = {
            (s.res.id, tp.partition, c.consumer)
            for s in self.scans
            for tp in s.parts
            for c, _ in s.rules.get(tp, [])
        }
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in sorted(assigned, key=lambda t: (t.topic, t.partition)):
            by_topic.setdefault(tp.topic, []).append(tp)
        wanted: dict[str, HeldScan] = {}
        for view in views:
            res = self.table.state.catalog.resources.get(view.view.resource)
            if res is None:
                continue
            for tp in by_topic.get(topics.source(res.provider, res.id), []):
                if self.membership.known(res.id, view.consumer, tp.partition) or (
                    (res.id, tp.partition, view.consumer) in busy
                ):
                    continue
                await self._consider(view, res, tp, consumer, batch, wanted)
        for scan in wanted.values():
            self.scans.append(scan)
        await self._begin_waiting()
        self._holding()

    async def _consider(
        self,
        view: CompiledView,
        res: Resource,
        tp: TopicPartition,
        consumer: Any,
        batch: dict[Any, list[Any]],
        wanted: dict[str, HeldScan],
    ) -> None:
        prev = self.book.progress.get((view.consumer, res.id, tp.partition)) if self.book else None
        held = held_rule(prev, view, backfill=self.book is not None)
        try:
            upto = batch[tp][0].offset if batch.get(tp) else await consumer.position(tp)
        except IllegalStateError:  # taken by a rebalance meanwhile: the next reconcile
            return  # sees the new assignment
        if held is None or upto == 0:  # it holds nothing from before, or there is nothing
            self.membership.establish(res.id, view.consumer, tp.partition, set())
            return
        scan = wanted.get(res.id)
        if scan is None:
            scan = wanted[res.id] = HeldScan(self.bus, res, self.table.decoders[res.id], view)
        if tp not in scan.parts:
            await scan.add(Part(tp, upto))
        scan.rule(tp, held, view.view.row_filter)

    async def _begin_waiting(self) -> None:
        slots = MAX_SCANS - sum(1 for s in self.scans if s.begun)
        for scan in self.scans:
            if slots <= 0:
                return
            if not scan.begun and scan.parts:
                scan.started = time.monotonic()
                await scan.begin()
                slots -= 1
                log.info(
                    "establishing which keys %s hold from %s partition(s) %s before routing them",
                    ", ".join(sorted({h.consumer for rs in scan.rules.values() for h, _ in rs})),
                    scan.res.id,
                    ",".join(str(tp.partition) for tp in sorted(scan.parts, key=lambda t: t[1])),
                )

    def _holding(self) -> None:
        self.holding.clear()
        self.holding.update(tp for scan in self.scans for tp in scan.parts)

    async def advance(self) -> None:
        """Establish the keys of every partition read up to its cut-over; end finished scans."""
        if not self.scans:
            return
        for scan in list(self.scans):
            if scan.failed is not None:
                log.error(
                    "membership scan of %s failed, it starts again: %s", scan.res.id, scan.failed
                )
                self.scans.remove(scan)
                self._close(scan)
                self._seen = (-1, -1)
                continue
            for tp, part in list(scan.parts.items()):
                if part.scanned:
                    self._establish(scan, tp, part)
                    # not drop(): assigning the others anew makes the client look their
                    # positions up again, and a stop during that lookup was seen to hang;
                    # the scan reads on and ignores the partition until it ends
                    del scan.parts[tp]
            if not scan.parts:
                self.scans.remove(scan)
                self._close(scan)
        await self._begin_waiting()
        self._holding()

    def _establish(self, scan: HeldScan, tp: TopicPartition, part: Part) -> None:
        filtered = {
            v.consumer for v in self.table.views.get(scan.res.id, []) if v.row_filter is not None
        }
        for consumer, keys in scan.members(part):
            if consumer in filtered:
                self.membership.establish(scan.res.id, consumer, tp.partition, keys)
            log.info(
                "membership of %s for %s from partition %d: %d keys held, read up to offset "
                "%d in %.2f s",
                scan.res.id,
                consumer,
                tp.partition,
                len(keys),
                part.cutover,
                time.monotonic() - scan.started,
            )

    def hold(self, consumer: Any, batch: dict[Any, list[Any]]) -> None:
        """Take the partitions held back out of ``batch`` (their fetch set back to its first
        record) and pause them; resume the ones released."""
        for tp in self.holding & batch.keys():
            consumer.seek(tp, batch.pop(tp)[0].offset)
        assigned = set(consumer.assignment())
        released = (self._paused - self.holding) & assigned
        if released:
            consumer.resume(*released)
        held = self.holding & assigned
        if held:
            consumer.pause(*held)
        self._paused = held

    def _close(self, scan: HeldScan) -> None:
        scan.halt()
        task = asyncio.ensure_future(scan.stop())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
        task.add_done_callback(_logged)

    async def stop(self) -> None:
        """Stop every scan (bounded wait); idempotent."""
        scans, self.scans = self.scans, []
        self.holding.clear()
        waits = [*(s.stop() for s in scans), *self._closing]
        if waits:
            # not wait_for: a Kafka client's fetch task has been seen to swallow a
            # cancellation and never end; past the bound the scans are left behind
            stopping = asyncio.ensure_future(asyncio.gather(*waits, return_exceptions=True))
            done, _ = await asyncio.wait([stopping], timeout=STOP_S)
            if not done:
                stopping.cancel()
                log.warning("%d membership scan(s) did not stop within %.0f s", len(waits), STOP_S)


def _logged(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("membership scan did not close cleanly: %s", task.exception())
