"""The router: every source record, to every entitled consumer, as its own view.

Loop, per batch of source records::

    fetch ─▶ recompile the views if the policy changed (exchange.router.view_table)
          ─▶ per source partition: scan once, for each compiled view: filter, project,
             mask, append to the record batch of gov.dlv.<consumer>.<resource>
             (exchange.router.routing, exchange.bus.outbox); dead letters
             (exchange.router.dead_letters)
          ─▶ hand the batches to the producer ─▶ next fetch
    and in the background, batch after batch in order (exchange.router.settle):
          every ack of the batch ─▶ its audit entries acked ─▶ commit its offsets

At-least-once: source offsets are committed only after every delivery (and
dead letter) of the batch is acknowledged, and then its audit entries; a
batch commits only after the one before it did. Settling runs behind
routing (at most ``MAX_UNSETTLED`` batches), so the wait for acks does not
stall the next batch. A crash re-routes the uncommitted tail, and consumers
drop the duplicates by record id.

Policy changes (catalog load, approval, revocation, expiry) recompile the
views between two batches, so they take effect without a restart. Several
routers in one consumer group share the source partitions. What the router
notices on its own (an expiry, an overdue application, a refused grant event
or catalog) is audited once per instance (exchange.router.notices); a broker
that keeps it waiting is logged and counted (exchange.router.watchdog).
Control topics that go backwards (recreated, truncated) pause routing until
the state is rebuilt from them (exchange.router.control_reset): fail closed.
A new or wider view first gets the current state of the resource (全量), a
slice at a time between two batches, handed over before the live records that
follow through a send queue the loop never waits for (exchange.router.backfill,
exchange.bus.send_queue). A source partition the router takes is routed only
once the keys its row-filtered views hold are read from the source's current
state (exchange.router.membership_rebuild): a deletion is never decided on a
membership not known yet.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
from typing import Any

from exchange.audit.key_hash import KeyHasher
from exchange.audit.writer import AuditWriter
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.idle_wait import IdleFetchWait, source_fetch_wait
from exchange.bus.outbox import Outbox
from exchange.bus.send_queue import SendQueue
from exchange.control.catalog_store import CONTROL_SCHEMAS
from exchange.control.state import ControlFollower, ControlState
from exchange.heap import Refreezer
from exchange.lifecycle import AsyncService
from exchange.metrics import RouterMetrics
from exchange.router import book_writer
from exchange.router.backfill import Backfiller
from exchange.router.command_audit import CommandAuditor
from exchange.router.control_reset import ControlResetGuard
from exchange.router.dead_letters import DeadLetters
from exchange.router.dispute_watch import DisputeWatch
from exchange.router.freshness import FreshnessWatch
from exchange.router.mask_secret import check as check_mask_secret
from exchange.router.membership_rebuild import MembershipRebuild
from exchange.router.notices import Notices
from exchange.router.retractions import Retractions
from exchange.router.routing import PartitionRouter
from exchange.router.settle import SettleOnRevoke, Settler
from exchange.router.source_watch import SourceWatch
from exchange.router.view import CompiledView
from exchange.router.view_table import ViewTable
from exchange.router.watchdog import BrokerWatchdog
from exchange.sharing.records import GrantEvent

log = logging.getLogger(__name__)

MAX_UNSETTLED = 64  # batches routed and not yet settled, at most
#: longest fetch wait while a backfill waits for its records in flight to be acknowledged
THROTTLED_WAIT_MS = 5
#: how old the source consumer's metadata may grow before it asks again (Kafka's default)
SOURCE_METADATA_MAX_AGE_MS = 300_000
#: the source consumer's fetch wait on the embedded broker while records flow (it answers
#: a fetch only when the wait ends: the wait is the latency; see exchange.bus.idle_wait)
SOURCE_FETCH_WAIT_MS = 5


class Router(AsyncService):
    """The consumer loop, and the one object that starts, stops and wires the router's parts.

    Usable as ``async with Router(...) as router``. Its parts, each with a public
    surface of its own: ``state`` and ``follower`` (the control topics),
    ``view_table`` (:class:`~exchange.router.view_table.ViewTable`), ``notices``
    (:class:`~exchange.router.notices.Notices`), ``settler``
    (:class:`~exchange.router.settle.Settler`) and ``audit`` (its audit writer).
    """

    def __init__(
        self,
        bus: Connection,
        *,
        group: str = "gov-exchange-router",
        master_secret: bytes,
        metrics: RouterMetrics | None = None,
        partitions: int | None = None,
        instance: str | None = None,
        max_batch: int = 5000,
        session_timeout_ms: int = 10_000,
        trace_key: bytes | None = None,
        backfill: bool = True,
        backfill_chunk: int | None = None,
        quality_interval_s: float = 60.0,
        refreezer: Refreezer | None = None,
    ) -> None:
        check_mask_secret(master_secret, development=bus.development)  # no public secret
        self.bus = bus
        self.group = group
        self.master_secret = master_secret
        self.metrics = metrics or RouterMetrics()
        self.partitions = partitions
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.max_batch = max_batch
        self.session_timeout_ms = session_timeout_ms
        #: keys the record-key hashes of delivery entries (exchange.audit.key_hash)
        self.key_hasher = KeyHasher(trace_key)
        self.state = ControlState(bus)
        self.follower = ControlFollower(self.state)
        self.settler = Settler(self.metrics)
        self.view_table = ViewTable(
            self.state, master_secret, self.metrics, bus=bus, partitions=partitions
        )
        self.notices = Notices(self.state, self.metrics, self.settler.drafts.add)
        #: grants revoked or expired, to retract from their consumers with the next batch
        self.retractions = Retractions(self.settler.drafts.add)
        self.audit: AuditWriter | None = None
        self._consumer: Any = None
        self._fetch_wait = IdleFetchWait(None, SOURCE_FETCH_WAIT_MS, enabled=False)
        #: asks the source consumer for metadata when the catalog names a new source topic
        self._sources: SourceWatch | None = None
        self._producer: Any = None
        self._queue_producer: Any = None  # the send queue's own (with backfills on)
        self._routing: PartitionRouter | None = None
        #: batches the router does not wait for the producer to take: the backfill's, and
        #: live ones of a partition that has some queued (exchange.bus.send_queue)
        self._queue: SendQueue | None = None
        #: source partition -> next offset this router routes (what backfills wait for)
        self._live: dict[Any, int] = {}
        self.backfiller: Backfiller | None = None
        #: which keys row-filtered views hold, established when a partition is taken
        self.members: MembershipRebuild | None = None
        self.backfill = backfill  # off: new views get live records only (no 全量)
        self.backfill_chunk = backfill_chunk
        self._watchdog: BrokerWatchdog | None = None
        self._book_writer: asyncio.Task[None] | None = None  # book snapshots for sessions
        self._command_audit: CommandAuditor | None = None  # commands written without a client
        #: 更新周期 and 疑义校核: staleness against update cycles, overdue disputes (audited)
        self.freshness = FreshnessWatch(
            self.state, self.metrics.freshness, interval_s=quality_interval_s
        )
        self.dispute_watch = DisputeWatch(
            self.state, interval_s=quality_interval_s, metrics=self.metrics.disputes
        )
        self.state.on_catalog = lambda _snap: self.view_table.changed()
        self.state.on_grant_event = self._on_grant_event
        self.state.on_catalog_refused = self.notices.catalog_refused
        #: pauses routing while the control state is rebuilt after a reset of the topics
        self.guard = ControlResetGuard(self)
        #: freezes the heap again once new views have settled (None: the heap is not the
        #: router's own, as in a test or an embedding program; `exchange router` sets it)
        self.refreezer = refreezer
        self.follower.on_reset = self.guard.tripped

    def _on_grant_event(self, event: GrantEvent, refused: str | None) -> None:
        if refused is None:
            self.view_table.changed(event.resource)
        else:
            self.notices.grant_event_refused(event, refused)

    # --- the public surface beyond start/stop/run ------------------------------

    @property
    def views(self) -> dict[str, list[CompiledView]]:
        """The compiled views in force, by resource id."""
        return self.view_table.views

    @property
    def routed(self) -> int:
        """Source records routed and committed by this router."""
        return self.settler.routed

    @property
    def running(self) -> bool:
        """True from :meth:`start` until :meth:`stop`."""
        return self._consumer is not None

    @property
    def consumer(self) -> Any:
        """The source consumer (None before :meth:`start`)."""
        return self._consumer

    @property
    def routing(self) -> PartitionRouter | None:
        """The per-partition routing, with the membership of filtered views (None before
        :meth:`start`)."""
        return self._routing

    @property
    def producer(self) -> Any:
        """The producer of deliveries, dead letters and audit entries (None before start)."""
        return self._producer

    @property
    def paused(self) -> bool:
        """True while routing is paused by a reset of the control topics."""
        return self.guard.paused

    def start_book_writer(self) -> None:
        """Write grant-book snapshots for sessions while the router runs."""
        self.stop_book_writer()
        self._book_writer = asyncio.create_task(
            book_writer.keep_written(self.state, self._producer, self.instance),
            name="grant-book-snapshots",
        )

    def stop_book_writer(self) -> None:
        if self._book_writer is not None:
            self._book_writer.cancel()
            self._book_writer = None

    def assignment(self) -> set[Any]:
        """The source partitions this router holds in its group now (none before a join)."""
        return set(self._consumer.assignment()) if self._consumer is not None else set()

    async def rewind(self) -> None:
        """Settle, then route every source partition held from its first record again."""
        await self.settle()
        await self._consumer.seek_to_beginning(*self._consumer.assignment())

    async def recompile(self, *, everything: bool = False, reuse: bool = True) -> None:
        """Compile the views of the resources whose policy changed (or every resource;
        ``reuse=False``: none kept from the last compile, as after a catalog change).

        Then audit the expiries and overdue applications noticed meanwhile.
        """
        before = self.view_table.views
        now = await self.view_table.recompile(everything=everything, reuse=reuse)
        if self.refreezer is not None:
            self.refreezer.changed()
        self._watch_sources()
        if now is not None:
            self._retract(before, now)
            self.notices.watch(now)

    def _watch_sources(self) -> None:
        """Tell the source watch which source topics the catalog in force names."""
        if self._sources is not None and self.state.snapshot is not None:
            resources = self.state.catalog.resources.values()
            self._sources.catalog(frozenset(topics.source(r.provider, r.id) for r in resources))

    def _retract(self, before: dict[str, list[CompiledView]], now: dt.datetime) -> None:
        """Queue a retraction for each grant whose view the recompile dropped."""
        catalog = self.state.catalog

        def provider_of(res_id: str) -> str:
            res = catalog.resources.get(res_id)
            return res.provider if res is not None else ""

        ended = self.retractions.noticed(
            before, self.view_table.views, self.state.book, now, provider_of
        )
        for r in ended:
            self.metrics.retractions.labels(r.resource, r.consumer).inc()
            if self._routing is not None:
                self._routing.membership.forget(r.resource, r.consumer)

    # --- start and stop --------------------------------------------------------

    async def start(self) -> None:
        # replay must see every catalog snapshot and grant event: refuse control topics
        # configured to lose them (before reading them)
        await kafka.ensure_control_topics(self.bus)
        await kafka.require_safe_control_topics(self.bus)
        await self.follower.start()
        # no linger: the outbox hands over whole batches, and waiting adds only latency
        self._producer = kafka.producer(self.bus, linger_ms=0)
        await self._producer.start()
        if self.backfill:
            # the backfill's records go out through a connection of their own: a node has one
            # produce request in flight per connection, and live batches must not wait their
            # turn behind a request full of a backfill's (exchange.bus.send_queue)
            self._queue_producer = kafka.producer(self.bus, linger_ms=0)
            await self._queue_producer.start()
            self._queue = SendQueue(self._queue_producer, own_producer=True)
        else:
            self._queue = SendQueue(self._producer)
        # the router writes audit entries and reads grant events: make sure an outside
        # tool resolves them, also on a bus written before their schemas were registered
        await self.state.registry.register_all(self._producer, CONTROL_SCHEMAS)
        self.audit = AuditWriter(
            self._producer,
            self.state.registry,
            role="router",
            instance=self.instance,
            metrics=self.metrics.audit,
        )
        snapshot = self.state.snapshot
        if self.audit.signer is not None and snapshot is not None:  # refuse heads that won't verify
            self.audit.signer.check_registered(snapshot.catalog.head_keys())
        await self.audit.start()
        self.settler.audit = self.audit
        self.view_table.producer = self._producer
        self._consumer = self._source_consumer()
        await self._consumer.start()
        # on the embedded broker: 5 ms while records flow, 100 ms once idle (not 200 empty
        # fetches a second for ever); on Kafka: batches while records flow, not a fetch per
        # handful of records, and answered at the first record once idle
        self._fetch_wait = source_fetch_wait(
            self._consumer, embedded=self.bus.development, embedded_ms=SOURCE_FETCH_WAIT_MS
        )
        self.settler.consumer = self._consumer
        self._sources = SourceWatch(self._consumer)
        self._consumer.subscribe(
            pattern=topics.SOURCE_PATTERN,
            listener=SettleOnRevoke(self.settler, self.group, self._assigned),
        )
        dead_letters = DeadLetters(
            self._producer,
            self.state,
            self.metrics,
            self.settler.drafts.add,
            bus=self.bus,
            known_topics=self.view_table.known_topics,
        )
        self._routing = PartitionRouter(
            self._producer,
            self.view_table,
            dead_letters,
            self.settler.drafts,
            self.metrics,
            self.key_hasher,
        )
        self.backfiller = Backfiller(
            self.bus,
            self.view_table,
            self._routing,
            self.settler.drafts,
            self.metrics,
            self.instance,
            self._live,
            self._queue,
            enabled=self.backfill,
        )
        if self.backfill_chunk is not None:
            self.backfiller.chunk = self.backfill_chunk
        await self.backfiller.start(self._producer)
        self.members = MembershipRebuild(
            self.bus,
            self.view_table,
            self._routing.membership,
            self.backfiller.book if self.backfill else None,
        )
        self.backfiller.holding = self.members.holding  # one set: no backfill before it
        await self.recompile()
        self._watchdog = BrokerWatchdog(self._consumer, self.follower, self.settler, self.metrics)
        self._watchdog.start()
        self.start_book_writer()
        self._command_audit = await CommandAuditor.started(
            self.state, self.audit, session_timeout_ms=self.session_timeout_ms
        )
        await self.freshness.start(self._write_audit)
        await self.dispute_watch.start(self._write_audit)

    async def _write_audit(self, drafts: list[Any]) -> None:
        """Audit entries of the watches, written at once (they commit no source offset)."""
        if self.audit is not None:
            await self.audit.write(*drafts)

    def _assigned(self) -> None:
        self._live.clear()  # positions of partitions held before are not this router's now
        if self.backfiller is not None:
            self.backfiller.assignments += 1
        if self.members is not None:
            self.members.assigned(self.assignment())

    def _source_consumer(self) -> Any:
        return kafka.consumer(
            self.bus,
            group_id=self.group,
            max_poll_records=self.max_batch,
            # the broker holds a fetch up to this long when no record is waiting: on the
            # embedded broker, which answers only when the wait ends, 5 ms; on Kafka, which
            # answers as soon as a record arrives, its default (Connection.fetch_wait_ms)
            fetch_max_wait_ms=self.bus.fetch_wait_ms(embedded_ms=SOURCE_FETCH_WAIT_MS),
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, min(1_000, self.session_timeout_ms // 5)),
            # subscribed by pattern, the consumer asks for every topic's metadata at this
            # age, and decoding the answer holds the event loop (0.3 s for the ~4,000
            # delivery topics of 3,600 grants, measured): seldom, and asked for at once
            # when the catalog names a source topic not seen before (see recompile)
            metadata_max_age_ms=SOURCE_METADATA_MAX_AGE_MS,
        )

    async def stop(self) -> None:
        """Settle what was routed (bounded waits), then stop the clients; idempotent."""
        await self.freshness.stop()
        await self.dispute_watch.stop()
        if self._command_audit is not None:  # first: it waits for the follower and writes
            auditor, self._command_audit = self._command_audit, None
            await auditor.stop()
        if self._watchdog is not None:
            self._watchdog.stop()
        self.stop_book_writer()
        self._watchdog = None
        await self.follower.stop()
        if self._producer is not None:
            await self.settler.close()
        if self.members is not None:
            members, self.members = self.members, None
            await members.stop()
        if self._queue is not None:  # after settling: what was routed went out through it
            queue, self._queue = self._queue, None
            await queue.close()
        if self.backfiller is not None:  # after settling: its last progress is written
            backfiller, self.backfiller = self.backfiller, None
            await backfiller.stop()
        if self.audit is not None:
            await self.audit.stop()
        for client_attr in ("_consumer", "_queue_producer", "_producer"):
            client = getattr(self, client_attr)
            if client is not None:
                setattr(self, client_attr, None)
                await client.stop()

    # --- routing ---------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Route until ``stop`` is set (or forever)."""
        stop = stop or asyncio.Event()
        while not stop.is_set():
            await self.route_once()
        await self.settle()

    async def route_once(self, timeout_ms: int = 100) -> int:
        """Route one batch; returns the number of source records it held.

        The batch's deliveries are acknowledged, audited and its offsets committed in
        the background (see :class:`~exchange.router.settle.Settler`) while the next
        batch is routed; at most ``MAX_UNSETTLED`` batches are in flight. A batch that
        failed to settle raises here, at the next call. ``routed`` counts records once
        committed.
        """
        settler = self.settler
        settler.raise_if_failed()
        backfill, members, queue = self.backfiller, self.members, self._queue
        if backfill is None or members is None or self._routing is None or queue is None:
            raise RuntimeError("the router is not started")
        if backfill.ready:  # a backfill has records to deliver: no fetch waits for live ones
            timeout_ms = 0
        elif backfill.throttled:  # ... once its records sent meanwhile are acknowledged
            timeout_ms = min(timeout_ms, THROTTLED_WAIT_MS)
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_batch)
        self._fetch_wait.observed(len(batch))
        if self.guard.paused:  # fail closed: nothing routed, nothing committed
            await self.guard.hold(batch)
            return 0
        # after the fetch, not before: getmany may wait (for a group assignment, say) while
        # a grant changes, and a batch must never be routed with views older than it is
        if self.view_table.expired():
            await self.recompile(everything=True)
        elif self.view_table.stale:
            await self.recompile()
        elif self.notices.watch_due():
            self.notices.watch(dt.datetime.now(dt.UTC))
        elif self.refreezer is not None and self.refreezer.due:
            refrozen = self.refreezer.poll()
            if refrozen is not None:
                log.info("%s", refrozen)
        if self._sources is not None:
            self._sources.poll()
        # a partition whose filtered views' keys are not known yet is not routed (nor
        # backfilled) until they are: no deletion is decided on a membership not known
        if members.due:
            await members.reconcile(self._consumer, batch)
        await members.advance()
        members.hold(self._consumer, batch)
        if backfill.due:
            await backfill.reconcile(self._consumer, batch)
        if not batch and not backfill.ready and not self.retractions.pending:
            if settler.drafts:
                settler.add([], [], {}, 0, None)
            return 0
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        futures: list[Any] = []
        offsets = {}
        count = 0
        mark = settler.drafts.mark()
        # ``queued``: what goes out through the send queue, handed over before the live
        # records (so in each partition it precedes them) without waiting for the producer
        outbox, queued = Outbox(self._producer), Outbox(self._queue_producer or self._producer)
        route = self._routing.route
        try:
            # a grant's retraction follows every record delivered under it, and precedes
            # what a backfill of another view of the consumer brings after it
            await self.retractions.emit(queued, self.assignment(), self._routing.delivery_partition)
            chunks = await backfill.emit(queued, now)  # the backfill's records: a slice a round
            for tp, records in batch.items():
                count += len(records)
                futures.extend(await route(tp.topic, records, now, outbox))
                offsets[tp] = records[-1].offset + 1
                self.freshness.published(tp.topic, records[-1].timestamp)
            if self.guard.paused:  # the control topics went backwards while it was routed
                settler.drafts.drop_from(mark)
                await self.guard.hold(batch)  # the outbox is dropped: nothing delivered
                return 0
            handed = queued.hand_over(queue)
            sent = await outbox.send(queue)
        except BaseException:
            settler.drafts.drop_from(mark)  # not committed: routed (and audited) again later
            raise
        backfill.sent(chunks, handed)  # progress is written once these are acknowledged
        futures += handed + sent
        self._live.update(offsets)
        settler.add(futures, batch, offsets, count, started if batch else None)
        await settler.wait_for_room(MAX_UNSETTLED)
        return count

    async def settle(self) -> None:
        """Wait until every routed batch is delivered, audited and committed."""
        await self.settler.settle()
