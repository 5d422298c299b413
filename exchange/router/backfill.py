"""Backfill (全量): a consumer first gets the current state of its view, then the changes.

When a subscription or grant takes effect, a grant widens (more fields, a
mask taken off, another row filter) or the consumer asks again (``exchange
resync``), the router that owns a source partition delivers, from that
partition, each key's latest record under the consumer's view — filtered,
projected and masked by the very :class:`~exchange.router.view.CompiledView`
live routing uses — to the consumer's delivery topic, then goes on with live
records. Ordering, per source partition:

- the cut-over offset is the first offset routed live with the new view (the
  first record of the batch the view was compiled for); records before it
  come from the backfill, from it on from live routing, so there is no gap;
- a scan (:mod:`exchange.router.backfill_scan`) reads the partition from its
  first record, keeps each key's latest record before the cut-over, and
  drops a key as soon as it sees a newer record of it (or a tombstone);
- a chunk goes out only once the scan has read as far as live routing has
  routed, handed over before the live records of that round, so a key's older
  record never follows its newer one.

Backfill runs inside the router group without holding up other consumers'
live records: the scan reads and renders in worker processes
(:mod:`exchange.router.backfill_worker`, two for a large backfill, started for
the scan and ended with it: cores of their own, never the router's interpreter
lock), and between two
live batches at
most :data:`CHUNK` records a round go out, shared between the partitions
ready, and only while fewer than :data:`UNACKED` bytes of them wait for an
acknowledgement, through the router's send queue
(:mod:`exchange.bus.send_queue`), which the router never waits for (live
batches of the same delivery partition go behind them, in order).
Its chunks settle with the batch they go out with (acknowledged, then the
``RECORDS_DELIVERED`` entries with ``kind=backfill``, then the offsets), and
then its progress is written to ``gov.ctl.backfill``
(:mod:`exchange.router.backfill_state`): a router that takes the partition
over after a crash resumes after the last record acknowledged. A revocation
or expiry recompiles the views; the backfill of a view that is gone stops
at that round, like live delivery.

A backfill is also how a view that **narrows** (a new approval with a tighter
row filter, a view gaining one) sheds what it no longer admits: a key whose
latest record the new view rejects and that the consumer holds (its filter
membership, :mod:`exchange.router.membership`) gets a left-view tombstone in
the chunk instead of nothing, audited as ``RECORD_LEFT_VIEW`` with
``kind=narrowed``. Nothing of a partition goes out while its membership is
being established (:mod:`exchange.router.membership_rebuild`).

What a backfill still has to deliver is held in
:class:`~exchange.router.backfill_pending.Pending`, which the garbage collector
never walks; and a reconcile decides again only the views whose inputs changed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Coroutine
from dataclasses import replace
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.bus import topics
from exchange.bus.connection import Connection
from exchange.bus.envelope import LEFT_VIEW, RECORD_ID
from exchange.bus.outbox import Outbox
from exchange.bus.send_queue import SendQueue
from exchange.catalog.model import Resource
from exchange.metrics import RouterMetrics
from exchange.router import backfill_process
from exchange.router.backfill_progress import ProgressWriter
from exchange.router.backfill_scan import BackfillScan, Part
from exchange.router.backfill_state import BackfillBook, Progress, shape_of, widens
from exchange.router.backfill_worker import Recipe
from exchange.router.dead_letters import SOURCE_OFFSET
from exchange.router.deletions import deletion_draft, tombstone_headers
from exchange.router.routing import PartitionRouter
from exchange.router.settle import PendingDrafts
from exchange.router.view import CompiledView
from exchange.router.view_table import Decoder, ViewTable
from exchange.sharing.records import new_id
from exchange.sharing.records import now as record_time

log = logging.getLogger(__name__)

#: header on every record a backfill delivers: the backfill's id
BACKFILL = "gov-backfill"
STOP_S = 15.0  # longest wait for one part of the backfill machinery to stop
CHUNK = 2_000  # backfilled records per routing round, at most, over every backfill
#: bytes of backfilled records handed over and not yet acknowledged, at most: what other
#: consumers' live records may find ahead of them in the broker. Measured with
#: ``benchmarks/backfill.py --engine kafka --records 1000000 --seconds 20 --no-grants
#: --repeat 3`` (2 cores, 2 December): others' p99 during a backfill 4.8-17.6x without one
#: at 2 MB (rate 0.79-1.01 of live routing), 2.5-4.1x at 1 MB (0.84-1.16), 2.2-4.1x at
#: 512 KB (0.73-0.77)
UNACKED = 1024 * 1024
#: a reconcile's deciding that took this long is logged (with how many pairs it decided)
SLOW_RECONCILE_MS = 20.0
#: backfills reading the source at once; the others wait their turn (3,600 grants written
#: at once must not open 3,600 consumers), their cut-over already fixed
MAX_SCANS = 4

#: (part, keys delivered or skipped, records delivered, filtered, first and last offset,
#: (key, offset) of each record the consumer held and the view rejects: deleted for it)
Chunk = tuple[Part, list[bytes], int, int, int, int, list[tuple[bytes, int]]]


class Job:
    """One consumer's view given its current state, over the partitions this router owns."""

    def __init__(
        self,
        scan: BackfillScan,
        job_id: str,
        trigger: str,
        request: str,
        narrowed_from: str | None = None,
    ) -> None:
        self.scan = scan
        self.id = job_id
        self.trigger = trigger
        self.request = request
        self.shape = shape_of(scan.view.view)
        #: the row filter of the consumer's copy before this backfill changed it (None:
        #: unchanged): what a router resuming it knows the consumer still holds
        self.narrowed_from = narrowed_from

    @property
    def view(self) -> CompiledView:
        return self.scan.view


class Backfiller:
    """The router's backfills: started and stopped as views change, delivered between batches.

    ``live`` is the router's own map of source partition to the next offset it routes
    (updated after every batch); the backfiller only reads it.
    """

    def __init__(
        self,
        bus: Connection,
        table: ViewTable,
        routing: PartitionRouter,
        drafts: PendingDrafts,
        metrics: RouterMetrics,
        instance: str,
        live: dict[Any, int],
        queue: SendQueue,
        *,
        enabled: bool = True,
        workers: bool = True,
    ) -> None:
        self.bus = bus
        self.table = table
        self.routing = routing
        self.drafts = drafts
        self.metrics = metrics
        self.live = live
        self.queue = queue  # the backfill's records go out through it (never waited for)
        self.unacked_max = UNACKED  # bytes handed over and not acknowledged, at most
        self.instance = instance
        self.enabled = enabled  # off: push only (no 全量), as before backfills existed
        #: read and render in worker processes (exchange.router.backfill_worker); off: in
        #: a thread of the router's process, sharing its interpreter lock
        self.workers = workers
        self.chunk = CHUNK  # backfilled records per routing round, at most
        self.book = BackfillBook(bus)
        self.progress = ProgressWriter(instance, self.book)
        self.jobs: dict[tuple[str, str], Job] = {}
        #: id(compiled view) -> (that view, its shape): a reconcile looks at every view in
        #: force (3,600 grants: thousands), and a shape is a JSON dump and a hash
        self._shapes: dict[int, tuple[CompiledView, str]] = {}
        self._seen: tuple[int, int, int] = (-1, -1, -1)  # generation, assignment, requests
        #: a backfill ended since the last reconcile: one waiting may begin (no more: going
        #: over every view in force, 3,600 grants' in the bench, took a third of a second of
        #: the loop in a profiled backfill)
        self._slot_free = False
        #: the views in force at the last reconcile, and the partitions held then (None:
        #: none yet). A reconcile decides again only the views compiled since, or whose
        #: progress or resync request changed, or with a resync request: deciding every
        #: view (3,600 grants: 10,800 view-partition pairs) held the loop 60-150 ms a grant
        #: change, measured
        self._decided: dict[tuple[str, str], CompiledView] = {}
        self._decided_on: set[Any] | None = None
        self.assignments = 0  # bumped by the router when its partitions change
        #: source partitions whose membership is being established: nothing of them goes
        #: out before (the router's MembershipRebuild shares its set here)
        self.holding: set[TopicPartition] = set()
        self._warming: asyncio.Future[None] | None = None  # the worker's fork server starting

    async def start(self, producer: Any) -> None:
        if not self.enabled:
            return
        if self.workers:  # in the background: the first backfill need not wait for it
            self._warming = asyncio.ensure_future(asyncio.to_thread(backfill_process.warm_up))
        await self.book.start()
        await self.progress.start(producer, self.table.state.registry)

    async def stop(self) -> None:
        """Stop every scan, the progress writer and the book; none may hold the router's stop
        for more than :data:`STOP_S` (a broker slow to answer a consumer's LeaveGroup would)."""
        scans = [job.scan.stop() for job in self.jobs.values()]
        self.jobs.clear()
        self.metrics.backfills.set(0)
        # together, under one bound: one at a time, many slow scans would add up
        await _bounded(_all(scans), f"{len(scans)} backfill scan(s)")
        await _bounded(self.progress.stop(), "the backfill progress writer")
        await _bounded(self.book.stop(), "the backfill book")
        if self._warming is not None:
            await _bounded(self._warming, "the backfill workers' fork server starting")

    # --- which backfills run ----------------------------------------------------------

    @property
    def due(self) -> bool:
        """True when views, partitions or resync requests changed since the last reconcile."""
        return self.enabled and (self._slot_free or self._seen != self._marks())

    def _marks(self) -> tuple[int, int, int]:
        return (self.table.generation, self.assignments, len(self.book.requests))

    async def reconcile(self, consumer: Any, batch: dict[Any, list[Any]]) -> None:
        """Stop the backfills of views gone or changed; start or resume the ones now due.

        ``batch`` is the batch about to be routed: a new view's cut-over in a partition
        is its first offset there (the consumer's position if the batch has none).
        """
        self._slot_free = False
        if self._seen == self._marks():  # nothing changed but a backfill that ended
            await self._begin_waiting()
            self.metrics.backfills.set(sum(len(j.scan.parts) for j in self.jobs.values()))
            return
        self._seen = self._marks()
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        views = {
            (v.consumer, res): v
            for res, vs in self.table.views.items()
            for v in vs
            if v.active(now)
        }
        assigned = set(consumer.assignment())
        self._shapes = {
            id(v): (v, s)
            for v, s in self._shapes.values()
            if views.get((v.consumer, v.view.resource)) is v
        }
        for key, job in list(self.jobs.items()):
            view = views.get(key)
            # the same shape under another mask key (a new mask secret) renders other bytes
            if view is None or self._shape(view) != job.shape or _rekeyed(view, job.view):
                why = "the view is gone (revoked or expired)" if view is None else "view changed"
                await self._end(key, job, why)
                continue
            job.scan.view = view  # the same shape, compiled again (a catalog reload)
            for tp in [tp for tp in job.scan.parts if tp not in assigned]:
                job.scan.drop(tp)  # its new owner resumes it
        touched = self.book.take_touched()
        if self._decided_on != assigned:  # every view, on partitions held anew (or first)
            due = views
            gone = {key[:2] for key in self.book.progress}
        else:
            decided, requests = self._decided, self.book.requests
            due = {
                key: view
                for key, view in views.items()
                if decided.get(key) is not view or key in touched or key in requests
            }
            gone = decided.keys() - views.keys() | touched
        self._mark_gone(views, gone, assigned)
        considered = await self._consider_all(due, assigned, consumer, batch, now)
        self._decided, self._decided_on = views, assigned
        took_ms = (time.perf_counter() - started) * 1000
        if took_ms >= SLOW_RECONCILE_MS:
            log.info(
                "backfill: %d views in force, %d (view, partition) pairs decided, in %.0f ms",
                len(views),
                considered,
                took_ms,
            )
        await self._begin_waiting()
        self.metrics.backfills.set(sum(len(j.scan.parts) for j in self.jobs.values()))

    async def _begin_waiting(self) -> None:
        """Start scanning for backfills waiting their turn, up to :data:`MAX_SCANS` at once."""
        slots = MAX_SCANS - sum(1 for j in self.jobs.values() if j.scan.begun)
        for job in self.jobs.values():
            if slots <= 0:
                return
            if not job.scan.begun and job.scan.parts:
                await job.scan.begin()
                slots -= 1

    async def _consider_all(
        self,
        views: dict[tuple[str, str], CompiledView],
        assigned: set[Any],
        consumer: Any,
        batch: dict[Any, list[Any]],
        now: dt.datetime,
    ) -> int:
        """Consider ``views`` over the partitions held; returns how many (view, partition)
        pairs it considered."""
        by_topic = _by_topic(assigned)
        resources = self.table.state.catalog.resources
        considered = 0
        for (name, res_id), view in views.items():
            res = resources[res_id]
            for tp in by_topic.get(topics.source(res.provider, res_id), ()):
                running = self.jobs.get((name, res_id))
                if running is not None and tp in running.scan.parts:
                    continue
                considered += 1
                try:
                    await self._consider(view, tp, consumer, batch, now)
                except IllegalStateError:  # taken by a rebalance meanwhile: the next
                    continue  # reconcile sees the new assignment
        return considered

    async def _consider(
        self,
        view: CompiledView,
        tp: TopicPartition,
        consumer: Any,
        batch: dict[Any, list[Any]],
        now: dt.datetime,
    ) -> None:
        """Resume, start or skip the backfill of ``view`` from source partition ``tp``.

        Called for every view in force and partition held (thousands of pairs): what is
        not needed to decide (the cut-over) is looked up only for a backfill that runs.
        """
        name, res_id = view.consumer, view.view.resource
        prev = self.book.progress.get((name, res_id, tp.partition))
        request = self.book.requests.get((name, res_id))
        shape = self._shape(view)

        async def cutover() -> int:
            return batch[tp][0].offset if batch.get(tp) else int(await consumer.position(tp))

        if prev is not None and prev.running and prev.shape == shape:
            part = Part(tp, prev.cutover, prev.through, prev.delivered, floor=await cutover())
            await self._run(view, part, prev.job, prev.trigger, prev.request, prev.narrowed_from)
            return
        if request is not None and (prev is None or prev.request != request.request):
            refusal = self.progress.resync_refusal(request, prev, self.table.state.catalog, now)
            if refusal is None:
                await self._run(view, Part(tp, await cutover()), None, "resync", request.request)
                return
            if (request.request, tp.partition) not in self.progress.refused:
                self.progress.refuse(request, tp.partition, refusal, self.drafts)
        # a view gone and back, or a backfill stopped short (its view changed, its scan
        # failed): the consumer may not hold the current state, so it gets it again
        if prev is None or prev.state in ("ended", "stopped"):
            await self._run(view, Part(tp, await cutover()), None, "grant", "")
        elif widens(view.view, prev, shape):
            before = _copy_filter(prev) if prev.row_filter != view.view.row_filter else None
            await self._run(view, Part(tp, await cutover()), None, "widened", "", before)
        elif prev.shape != shape:  # narrower: nothing new to give
            self.progress.write(replace(prev, shape=shape, at=now))

    def _recipe(self, res: Resource, decoder: Decoder, view: CompiledView) -> Recipe:
        """What a worker process needs to render ``view`` as this router does."""
        master_secret = self.table.master_secret
        return Recipe(self.bus, res, view.view, master_secret, decoder.reader, decoder.writers)

    def _shape(self, view: CompiledView) -> str:
        """``shape_of(view.view)``, worked out once per compiled view."""
        known = self._shapes.get(id(view))
        if known is not None and known[0] is view:
            return known[1]
        shape = shape_of(view.view)
        self._shapes[id(view)] = (view, shape)
        return shape

    async def _run(
        self,
        view: CompiledView,
        part: Part,
        job_id: str | None,
        trigger: str,
        request: str,
        narrowed_from: str | None = None,
    ) -> None:
        key = (view.consumer, view.view.resource)
        job = self.jobs.get(key)
        if job is None or (job_id is not None and job.id != job_id):
            if job is not None:
                self._retire(job)
            res = self.table.state.catalog.resources[view.view.resource]
            decoder = self.table.decoders[res.id]
            recipe = self._recipe(res, decoder, view) if self.workers else None
            scan = BackfillScan(self.bus, res, decoder, view, recipe)
            job = Job(scan, job_id or new_id("BF"), trigger, request, narrowed_from)
            self.jobs[key] = job
        if part.cutover == 0 and not part.delivered:  # nothing before the view: done at once
            part.total, part.done = 0, True
            self.progress.write(progress_of(job, part, "done", self.instance))
            if not job.scan.parts:
                self.jobs.pop(key)
            return
        await job.scan.add(part)
        self.progress.write(progress_of(job, part, "scanning", self.instance))
        log.info(
            "backfill %s (%s) of %s for %s from %s: records before offset %d",
            job.id,
            trigger,
            view.view.resource,
            view.consumer,
            part.tp.topic,
            part.cutover,
        )

    async def _end(self, key: tuple[str, str], job: Job, why: str) -> None:
        """Stop a backfill at once: nothing more of it is delivered."""
        self.jobs.pop(key, None)
        self._retire(job)
        for part in job.scan.parts.values():
            if not part.done:
                self.progress.write(progress_of(job, part, "stopped", self.instance, why))
        log.info("backfill %s of %s for %s stopped: %s", job.id, key[1], key[0], why)

    def _retire(self, job: Job) -> None:
        """Stop ``job``'s scan now and close its consumer in the background: a consumer slow
        to close (a broker slow to answer) must never hold up routing."""
        job.scan.halt()
        self.progress.close_later(job.scan)

    def _mark_gone(
        self,
        views: dict[tuple[str, str], CompiledView],
        maybe: set[tuple[str, str]],
        assigned: set[Any],
    ) -> None:
        """Progress of views gone, on partitions held: ``ended``, so a new one backfills again.

        ``maybe``: the (consumer, resource) pairs that may have gone (the others are in
        force, or were marked before).
        """
        progress = self.book.progress
        by_topic = _by_topic(assigned)
        for name, res_id in maybe - views.keys():
            for tp in by_topic.get(f"gov.src.{self._provider(res_id)}.{res_id}", ()):
                prev = progress.get((name, res_id, tp.partition))
                if prev is not None and prev.state != "ended":
                    self.progress.write(replace(prev, state="ended", reason="the view is gone"))

    def _provider(self, res_id: str) -> str:
        res = self.table.state.catalog.resources.get(res_id)
        return res.provider if res is not None else ""

    # --- delivering, between two live batches -------------------------------------------

    @property
    def ready(self) -> bool:
        """True if some backfill has records it may deliver now (so no fetch should wait)."""
        return self.queue.unacked < self.unacked_max and self._any_sendable()

    @property
    def throttled(self) -> bool:
        """True if some backfill has records to deliver once what it sent is acknowledged."""
        return self.queue.unacked >= self.unacked_max and self._any_sendable()

    def _any_sendable(self) -> bool:
        jobs = self.jobs.values()
        return any(self._sendable(part) for job in jobs for part in job.scan.parts.values())

    def _sendable(self, part: Part) -> bool:
        live = max(part.floor, self.live.get(part.tp, 0))
        ready = not part.done and part.scanned and part.read_to >= live
        return ready and part.tp not in self.holding

    async def emit(self, outbox: Outbox, now: dt.datetime) -> list[tuple[Job, Chunk]]:
        """Append up to ``chunk`` backfilled records to ``outbox``, shared between the
        partitions that may send (so each delivery partition gets a batch in flight).

        Nothing at all while the records handed over and not yet acknowledged reach
        :attr:`unacked_max` bytes. Nothing is taken off a backfill here: :meth:`sent` does
        it once the outbox was handed over (a batch dropped before that is backfilled
        again).
        """
        if self.queue.unacked >= self.unacked_max:
            return []
        ready: list[tuple[Job, Part]] = []
        for job in list(self.jobs.values()):
            if job.scan.failed is not None:
                log.error("backfill %s failed, it starts again: %s", job.id, job.scan.failed)
                await self._end((job.view.consumer, job.view.view.resource), job, "scan failed")
                self._seen = (-1, -1, -1)
                continue
            if not job.view.active(now):  # expired since the last recompile
                continue
            ready += [(job, p) for p in job.scan.parts.values() if self._sendable(p)]
        share = max(1, self.chunk // max(1, len(ready)))
        return [(job, await self._fill(job, part, outbox, share)) for job, part in ready]

    async def _fill(self, job: Job, part: Part, outbox: Outbox, budget: int) -> Chunk:
        """Up to ``budget`` keys of ``part`` into ``outbox``: each key's record as the view
        renders it, or a left-view tombstone for a key the view rejects and the consumer
        holds (a row filter that narrowed; a view that gained one)."""
        view = job.view
        partition = await self.routing.delivery_partition(view.topic, part.tp.partition)
        add = outbox.lane(view.topic, partition).add
        key_hash, through = view.key_hash, part.through
        #: the keys a row-filtered view holds (established before anything here goes out)
        members = self.routing.membership.of(view, part.tp.partition)
        where, tag = f"{part.tp.partition}:", job.id.encode()
        resource = view.view.resource
        keys: list[bytes] = []
        left: list[tuple[bytes, int]] = []
        n = filtered = 0
        first = last = -1
        for key, offset, out, rid in part.pending.first(budget):
            keys.append(key)
            if offset <= through:
                continue  # delivered before a restart
            last = offset
            first = offset if first < 0 else first
            if out is None:
                filtered += 1
                if members and key in members:  # it held the key: now outside its view
                    members.discard(key)
                    gone = tombstone_headers(resource, key, where.encode(), offset, LEFT_VIEW)
                    add(key if key_hash is None else key_hash(key), None, gone)
                    left.append((key, offset))
                continue
            headers = [
                (RECORD_ID, rid),
                (SOURCE_OFFSET, (where + str(offset)).encode()),
                (BACKFILL, tag),
            ]
            add(key if key_hash is None else key_hash(key), out, headers)
            if members is not None:
                members.add(key)
            n += 1
        return part, keys, n, filtered, first, last, left

    def sent(self, chunks: list[tuple[Job, Chunk]], futures: list[Any]) -> None:
        """The chunks were handed to the producer: take them off, audit, record progress."""
        for job, (part, keys, n, filtered, first, last, left) in chunks:
            pending = part.pending
            pending.take(keys)
            part.delivered += n
            part.through = max(part.through, last)
            part.done = not pending
            if n or filtered:
                self.drafts.add(_draft(job, part, n, filtered, first, last))
                self.metrics.backfilled.labels(job.view.view.resource, job.view.consumer).inc(n)
            if left:
                self._left(job, part, left, f"{max(first, 0)}-{last}")
            state = "done" if part.done else "sending"
            self.progress.after(futures, progress_of(job, part, state, self.instance))
        for (name, res_id), job in list(self.jobs.items()):
            for tp in [tp for tp, p in job.scan.parts.items() if p.done]:
                job.scan.drop(tp)
            if not job.scan.parts:
                self.jobs.pop((name, res_id))
                self.progress.close_later(job.scan)
                self._slot_free = True  # the next reconcile begins a scan waiting
                log.info("backfill %s of %s for %s done", job.id, res_id, name)

    def _left(self, job: Job, part: Part, left: list[tuple[bytes, int]], offsets: str) -> None:
        """Audit the keys a chunk deleted for its consumer: one RECORD_LEFT_VIEW entry."""
        view = job.view
        res = self.table.state.catalog.resources[view.view.resource]
        hashes = self.routing.key_hasher.details(res.id, left)
        where = (part.tp.topic, part.tp.partition, offsets)
        self.drafts.add(
            deletion_draft(
                Action.RECORD_LEFT_VIEW, res, view, where, len(left), hashes, backfill=job.id
            )
        )
        action = Action.RECORD_LEFT_VIEW.value
        self.metrics.deletions.labels(res.id, view.consumer, action).inc(len(left))


def progress_of(
    job: Job, part: Part, state: str, instance: str, reason: str | None = None
) -> Progress:
    """What a backfill of one partition has done so far, to write to gov.ctl.backfill."""
    v = job.view.view
    return Progress(
        consumer=v.consumer,
        resource=v.resource,
        partition=part.tp.partition,
        job=job.id,
        shape=job.shape,
        fields=",".join(v.fields),
        grant_id=v.grant_id,
        row_filter=v.row_filter,
        trigger=job.trigger,
        cutover=part.cutover,
        through=part.through,
        delivered=part.delivered,
        total=part.total,
        state=state,
        reason=reason,
        request=job.request,
        at=record_time(),
        instance=instance,
        narrowed_from=job.narrowed_from,
    )


def _by_topic(assigned: set[Any]) -> dict[str, list[TopicPartition]]:
    """The partitions held, by topic, each topic's in partition order."""
    by_topic: dict[str, list[TopicPartition]] = {}
    for tp in sorted(assigned, key=lambda t: t[1]):
        by_topic.setdefault(tp.topic, []).append(tp)
    return by_topic


def _rekeyed(view: CompiledView, before: CompiledView) -> bool:
    """True if ``view`` masks and hashes keys with another key than ``before`` did."""
    return view.key_secret != before.key_secret


def _copy_filter(prev: Progress) -> str:
    """The row filter the consumer's copy was built under (``true``: none, every record).

    A backfill cut short by another change of the filter leaves a copy built under the
    filter before it: that one still says what the consumer may hold.
    """
    if prev.running and prev.narrowed_from is not None:
        return prev.narrowed_from
    return prev.row_filter or "true"


def _draft(job: Job, part: Part, n: int, filtered: int, first: int, last: int) -> Draft:
    """One RECORDS_DELIVERED entry (``kind=backfill``) for a chunk of one partition."""
    view = job.view
    v = view.view
    return Draft(
        Action.RECORDS_DELIVERED,
        actor="router",
        decision=Decision.DELIVERED,
        resource=v.resource,
        consumer=v.consumer,
        provider=v.provider,
        grant_id=v.grant_id,
        purpose=v.purpose,
        details=detail_map(
            kind="backfill",
            backfill=job.id,
            trigger=job.trigger,
            request=job.request or None,
            record_count=n,
            filtered_count=filtered,
            partition=part.tp.partition,
            offsets=f"{max(first, 0)}-{last}",
            source_topic=part.tp.topic,
            delivery_topic=view.topic,
            fields=v.fields,
            masks=v.masks or None,
            row_filter=v.row_filter,
            view_schema_id=view.schema_id,
            mask_key=view.key_fingerprint,
        ),
    )


__all__ = ["BACKFILL", "Backfiller", "Progress"]


async def _all(stopping: list[Coroutine[Any, Any, None]]) -> None:
    await asyncio.gather(*stopping, return_exceptions=True)


async def _bounded(stopping: Awaitable[None], what: str) -> None:
    """Await ``stopping`` for at most :data:`STOP_S`; past that, log and go on.

    Not ``asyncio.wait_for``: it waits for the cancelled work to end, and a Kafka client's
    fetch task has been seen to swallow a cancellation and never end.
    """
    task = asyncio.ensure_future(stopping)
    done, _ = await asyncio.wait([task], timeout=STOP_S)
    if not done:
        task.cancel()
        log.warning("%s did not stop within %.0f s: left behind", what, STOP_S)
    elif not task.cancelled() and task.exception() is not None:
        log.warning("%s failed to stop: %s", what, task.exception())
