"""The router: every source record, to every entitled consumer, as its own view.

Loop, per batch of source records::

    fetch ─▶ scan once ─▶ for each compiled view: filter, project, mask
          ─▶ append to the record batch of gov.dlv.<consumer>.<resource> (see exchange.router.outbox)
          ─▶ hand the batches to the producer ─▶ next fetch
    and in the background, batch after batch in order:
          every ack of the batch ─▶ its audit entries acked ─▶ commit its offsets

At-least-once: source offsets are committed only after every delivery (and
dead letter) of the batch is acknowledged, and then its audit entries on
``gov.audit`` (one per consumer and source partition, one per dead letter);
a batch commits only after the one before it did. Settling runs behind
routing (at most ``MAX_UNSETTLED`` batches), so the wait for acks does not
stall the next batch. A crash re-routes the uncommitted tail, and consumers
drop the duplicates by record id. The audit entries are built from the
per-batch counts, never in the per-record loop. Order per key is kept
because a key always maps to the same partition and batches of a partition
are produced in order.

Policy changes (catalog load, approval, revocation, expiry) recompile the
views between two batches, so they take effect without a restart. Several
routers in one consumer group share the source partitions.

What the router notices on its own is audited too, once per instance: a
grant that expired, an application left unanswered beyond 10 working days
(checked at every recompile and at least every minute), and a grant event
on ``gov.ctl.grants`` that the grant book refuses when replaying it (one
written by hand, or forged).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import logging
import os
import socket
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import fastavro
from aiokafka import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.audit.writer import AuditWriter
from exchange.avro import wire
from exchange.avro.scan import LazyRecord, scanner_for
from exchange.bus import kafka, topics
from exchange.bus.envelope import RECORD_ID, record_id
from exchange.bus.limits import MAX_VALUE_BYTES  # publishers refuse larger values up front
from exchange.catalog.model import Catalog, Resource
from exchange.control.catalog_store import CONTROL_SCHEMAS, Snapshot, refusal_draft
from exchange.control.state import ControlFollower, ControlState
from exchange.errors import DecodeError, ExchangeError
from exchange.metrics import RouterMetrics
from exchange.router import book_writer
from exchange.router.command_audit import CommandAuditor
from exchange.router.outbox import Outbox
from exchange.router.view import CompiledView, compile_view
from exchange.sharing.policy import compute_view
from exchange.sharing.records import AppStatus, GrantEvent

log = logging.getLogger(__name__)

DLQ_REASON = "gov-dlq-reason"
SOURCE_TOPIC = "gov-source-topic"
SOURCE_OFFSET = "gov-source-offset"
MAX_UNSETTLED = 64  # batches routed and not yet settled, at most
SETTLE_INTERVAL_S = 0.05  # settling rounds (acks, audit write, commit) at most this often
STALL_S = 5.0  # a wait for the broker longer than this is a stall: logged and counted
WATCH_INTERVAL_S = 60.0  # how often expiries and overdue applications are looked for


class _Decoder:
    """Decodes source bodies of one resource, any registered version, to the current schema."""

    def __init__(self, res: Resource, state: ControlState) -> None:
        self.res = res
        self.reader = state.registry.parsed(res.schema_id)
        #: records of the current schema are sliced, not decoded (see exchange.avro.scan)
        self.scanner = scanner_for(res.schema_)
        self.writers: dict[int, Any] = {}
        for sid in state.catalog.schema_history.get(res.id, [res.schema_id]):
            if sid in state.registry:
                self.writers[sid] = state.registry.parsed(sid)

    def decode(self, sid: int, body: memoryview) -> dict[str, Any]:
        writer = self.writers.get(sid)
        if writer is None:
            raise DecodeError(f"schema id {sid} is not a registered version of {self.res.id!r}")
        if sid == self.res.schema_id:
            return wire.decode(writer, body)
        buf = io.BytesIO(body)
        try:
            rec = fastavro.schemaless_reader(buf, writer, self.reader)
        except Exception as exc:
            raise DecodeError(f"Avro body does not match schema {sid}: {exc}") from exc
        if buf.tell() != len(body):
            raise DecodeError("Avro body has bytes left over: written with another schema")
        if not isinstance(rec, dict):
            raise DecodeError("Avro body is not a record")
        return rec


_VARYING = ("record_count", "filtered_count", "offsets")


def _merge_deliveries(drafts: list[Draft]) -> list[Draft]:
    """One RECORDS_DELIVERED entry per consumer, view and source partition for a settling round.

    At a steady rate each batch holds a few records, and an entry per batch would make
    the audit log the bus's busiest topic; the entries of one round are merged, counts
    summed and offset ranges joined (batches of a partition are contiguous). Every other
    entry is kept as it is, in order.
    """
    out: list[Draft] = []
    merged: dict[tuple[Any, ...], int] = {}  # key -> index in out
    for d in drafts:
        if d.action is not Action.RECORDS_DELIVERED:
            out.append(d)
            continue
        fixed = tuple(sorted((k, v) for k, v in d.details.items() if k not in _VARYING))
        key = (d.consumer, d.resource, d.grant_id, d.purpose, fixed)
        at = merged.get(key)
        if at is None:
            merged[key] = len(out)
            out.append(d)
            continue
        first = out[at]
        a, b = first.details, d.details
        start = min(int(a["offsets"].split("-")[0]), int(b["offsets"].split("-")[0]))
        end = max(int(a["offsets"].split("-")[1]), int(b["offsets"].split("-")[1]))
        details = dict(a)
        details["record_count"] = str(int(a["record_count"]) + int(b["record_count"]))
        details["filtered_count"] = str(int(a["filtered_count"]) + int(b["filtered_count"]))
        details["offsets"] = f"{start}-{end}"
        out[at] = replace(first, details=details)
    return out


@dataclass
class _Routed:
    """A routed batch waiting to be settled: acks, audit entries, offsets to commit."""

    futures: list[Any]
    drafts: list[Draft]
    tps: list[Any]
    offsets: dict[Any, int]
    count: int
    started: float | None  # perf_counter at the fetch (None: audit entries only)
    routed_at: float | None  # monotonic time it was handed to the producer


class _SettleOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions go to another router, settle what was routed from them.

    The batches still in flight would otherwise fail to commit and be routed
    again by the new owner (duplicates, not losses); settling first avoids that.
    A batch that fails here raises at the router's next ``route_once``.
    """

    def __init__(self, router: Router) -> None:
        self.router = router

    async def on_partitions_revoked(self, revoked: Any) -> None:
        if revoked:
            log.info("partitions revoked from this router: %s", _partitions(revoked))
        if self.router._settler is not None:
            await asyncio.gather(self.router._settler, return_exceptions=True)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info(
            "partitions assigned to this router (group %s): %s",
            self.router.group,
            _partitions(assigned) or "none",
        )


def _partitions(tps: Any) -> str:
    """``topic[0,1,2] other[0]``: source partitions, one log line whatever their number."""
    by_topic: dict[str, list[int]] = {}
    for tp in tps:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    return " ".join(f"{t}[{','.join(map(str, sorted(ps)))}]" for t, ps in sorted(by_topic.items()))


class Router:
    def __init__(
        self,
        bootstrap: str,
        *,
        group: str = "gov-exchange-router",
        master_secret: bytes,
        metrics: RouterMetrics | None = None,
        partitions: int = 3,
        instance: str | None = None,
        max_batch: int = 5000,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.bootstrap = bootstrap
        self.group = group
        self.master_secret = master_secret
        self.metrics = metrics or RouterMetrics()
        self.partitions = partitions
        self.instance = instance or f"{socket.gethostname()}-{os.getpid()}"
        self.max_batch = max_batch
        self.session_timeout_ms = session_timeout_ms
        self.state = ControlState(bootstrap)
        self.follower = ControlFollower(self.state)
        self.views: dict[str, list[CompiledView]] = {}
        self.decoders: dict[str, _Decoder] = {}
        self._dirty = True
        #: resources whose views must be recompiled (None: all of them)
        self._dirty_resources: set[str] | None = None
        self._next_expiry: dt.datetime | None = None
        self._consumer: Any = None
        self._producer: Any = None
        self._known_topics: set[str] = set()
        self._partition_counts: dict[str, int] = {}
        self.routed = 0
        self.audit: AuditWriter | None = None
        self._audit_drafts: list[Draft] = []
        self._noticed: set[tuple[Action, str]] = set()  # (action, grant/application/event id)
        self._next_watch = 0.0
        #: batches routed but not yet acknowledged, audited and committed, oldest first
        self._unsettled: deque[_Routed] = deque()
        self._settler: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()  # pulsed at the end of every settling round
        self._stalled_since: float | None = None  # monotonic time the current stall began
        self._watchdog: asyncio.Task[None] | None = None
        self._book_writer: asyncio.Task[None] | None = None  # book snapshots for sessions
        self._command_audit: CommandAuditor | None = None  # commands written without a client
        self._last_round = 0.0  # monotonic start of the last settling round
        self.state.on_catalog = lambda _snap: self._mark_dirty()
        self.state.on_grant_event = self._on_grant_event
        self.state.on_catalog_refused = self._on_catalog_refused

    def _mark_dirty(self) -> None:
        self._dirty = True
        self._dirty_resources = None  # everything: the catalog changed

    def _on_grant_event(self, event: GrantEvent, refused: str | None) -> None:
        if refused is None:
            self._dirty = True
            if self._dirty_resources is not None:
                self._dirty_resources.add(event.resource)
        elif event.event_id not in self.state.book.accepted and self._notice(
            Action.COMMAND_REFUSED, event.event_id
        ):
            # a duplicate of an accepted event is a producer retry, not a refusal
            self._audit_drafts.append(
                Draft(
                    Action.COMMAND_REFUSED,
                    actor=event.actor,
                    decision=Decision.REFUSED,
                    resource=event.resource,
                    consumer=event.consumer,
                    provider=self._provider(event.resource),
                    reason=refused,
                    grant_id=event.grant_id,
                    application_id=event.application_id,
                    purpose=event.purpose,
                    details=detail_map(
                        command=event.kind.value.lower(),
                        event_id=event.event_id,
                        written_at=event.at,
                        fields=event.fields or None,
                        noticed_by="router replaying gov.ctl.grants",
                    ),
                )
            )

    def _on_catalog_refused(self, snap: Snapshot, reason: str) -> None:
        """A catalog snapshot every reader ignores (unsigned, forged, stale): audited once."""
        key = f"catalog:{snap.version}:{snap.digest}:{snap.signature}"
        if self._notice(Action.COMMAND_REFUSED, key):
            self._audit_drafts.append(
                refusal_draft(snap, reason, noticed_by="router replaying gov.ctl.catalog")
            )

    def _notice(self, action: Action, key: str) -> bool:
        """True the first time this instance notices ``key`` for ``action``."""
        if (action, key) in self._noticed:
            return False
        self._noticed.add((action, key))
        return True

    def _provider(self, resource: str) -> str | None:
        res = self.state.snapshot.catalog.resources.get(resource) if self.state.snapshot else None
        return res.provider if res else None

    async def start(self) -> None:
        await self.follower.start()
        # no linger: the outbox hands over whole batches, and waiting adds only latency
        self._producer = kafka.producer(self.bootstrap, linger_ms=0)
        await self._producer.start()
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
        self._consumer = kafka.consumer(
            self.bootstrap,
            group_id=self.group,
            max_poll_records=self.max_batch,
            # the broker holds a fetch up to this long when no record is waiting; the
            # default 500 ms would add up to half a second of latency at low rates
            fetch_max_wait_ms=5,
            fetch_max_bytes=16 * 1024 * 1024,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, min(1_000, self.session_timeout_ms // 5)),
            metadata_max_age_ms=5_000,  # new source topics are picked up within seconds
        )
        await self._consumer.start()
        self._consumer.subscribe(pattern=topics.SOURCE_PATTERN, listener=_SettleOnRevoke(self))
        await self._recompile()
        self._watchdog = asyncio.create_task(self._broker_watchdog(), name="broker-watchdog")
        self._book_writer = asyncio.create_task(
            book_writer.keep_written(self.state, self._producer, self.instance),
            name="grant-book-snapshots",
        )
        self._command_audit = await CommandAuditor.started(
            self.state, self.audit, session_timeout_ms=self.session_timeout_ms
        )

    async def stop(self) -> None:
        if self._command_audit is not None:  # first: it waits for the follower and writes
            auditor, self._command_audit = self._command_audit, None
            await auditor.stop()
        for task in (self._watchdog, self._book_writer):
            if task is not None:
                task.cancel()
        self._watchdog = self._book_writer = None
        await self.follower.stop()
        if self._unsettled and self._producer is not None:
            try:  # what was routed: delivered, audited and committed before the clients close
                await asyncio.wait_for(self.settle(), timeout=30)
            except (TimeoutError, ExchangeError, KafkaError) as exc:
                log.error("routed batches not settled at stop (they will be routed again): %s", exc)
            finally:
                if self._settler is not None:
                    self._settler.cancel()
                self._unsettled.clear()
        if self._audit_drafts and self._producer is not None:
            try:  # what was noticed but not written yet (no batch came after it)
                await asyncio.wait_for(self._write_audit(), timeout=5)
            except (TimeoutError, ExchangeError, KafkaError) as exc:
                log.error("audit entries not written at stop: %s", exc)
        for client_attr in ("_consumer", "_producer"):
            client = getattr(self, client_attr)
            if client is not None:
                setattr(self, client_attr, None)
                await client.stop()

    # --- policy ----------------------------------------------------------------

    async def _recompile(self, *, everything: bool = False) -> None:
        """Compile the views from the catalog and grants in force.

        After grant events only the resources they concern are recompiled; after a
        catalog change or an expiry, every resource.
        """
        started = time.perf_counter()
        only = None if everything else self._dirty_resources
        self._dirty, self._dirty_resources = False, set()
        if self.state.snapshot is None:
            self.views, self.decoders = {}, {}
            return
        now = dt.datetime.now(dt.UTC)
        catalog: Catalog = self.state.catalog
        book = self.state.book
        if only is None:
            views: dict[str, list[CompiledView]] = {}
            decoders: dict[str, _Decoder] = {}
        else:
            views, decoders = dict(self.views), dict(self.decoders)
        new_topics: set[str] = set()
        for res in catalog.resources.values():
            if only is not None and res.id in decoders and res.id not in only:
                continue
            if res.schema_id not in self.state.registry:
                await self.state.registry.refresh()
            decoders[res.id] = _Decoder(res, self.state)
            compiled = []
            for consumer in sorted(book.targets(res.id, now)):
                if consumer == res.provider or consumer not in catalog.departments:
                    continue
                view = compute_view(catalog, book, consumer, res.id, at=now)
                if view.denied:
                    continue
                try:
                    cv = compile_view(res, view, self.master_secret, decoders[res.id].scanner)
                except ExchangeError as exc:
                    # fail closed: a view that cannot be compiled delivers nothing
                    log.error("view of %s for %s not compiled: %s", res.id, consumer, exc)
                    continue
                if cv.schema_id not in self.state.registry:
                    await self.state.registry.register(self._producer, cv.schema)
                if cv.topic not in self._known_topics:
                    new_topics.add(cv.topic)
                compiled.append(cv)
            views[res.id] = compiled
            dlq = topics.dead_letter(res.id)
            if dlq not in self._known_topics:
                new_topics.add(dlq)
        if new_topics:
            await kafka.ensure_topics(self.bootstrap, new_topics, partitions=self.partitions)
            self._known_topics |= new_topics
        self.views, self.decoders = views, decoders
        self._next_expiry = book.next_expiry(now)
        n_views = sum(len(v) for v in views.values())
        n_active = sum(1 for g in book.grants.values() if g.active(now))
        took = time.perf_counter() - started
        self.metrics.policy_reloads.inc()
        self.metrics.views.set(n_views)
        self.metrics.active_grants.set(n_active)
        self.metrics.policy_reload_seconds.observe(took)
        log.info(
            "policy reloaded (%s): %d views of %d resources, %d active grants, in %.0f ms",
            "every resource" if only is None else ", ".join(sorted(only)) or "no resource",
            n_views,
            len(views),
            n_active,
            took * 1000,
        )
        self._watch(now)

    def _watch(self, now: dt.datetime) -> None:
        """Audit expiries and overdue applications not noticed yet; update the waiting-age gauge."""
        self._next_watch = time.monotonic() + WATCH_INTERVAL_S
        book = self.state.book
        for g in book.grants.values():
            if g.valid_until is None or g.valid_until > now or g.superseded_by is not None:
                continue
            if g.revoked_at is not None and g.revoked_at < g.valid_until:
                continue  # revoked before it could expire: the revocation is its end
            if self._notice(Action.GRANT_EXPIRED, g.id):
                self._audit_drafts.append(
                    Draft(
                        Action.GRANT_EXPIRED,
                        actor="router",
                        decision=Decision.EXPIRED,
                        resource=g.resource,
                        consumer=g.consumer,
                        provider=self._provider(g.resource),
                        grant_id=g.id,
                        application_id=g.application_id,
                        purpose=g.purpose,
                        reason="valid-until reached",
                        details=detail_map(valid_until=g.valid_until, noticed_at=now),
                        at=g.valid_until,
                    )
                )
        oldest: dt.datetime | None = None
        for app in book.applications.values():
            if app.status is not AppStatus.PENDING:
                continue
            oldest = app.applied_at if oldest is None else min(oldest, app.applied_at)
            if app.overdue(now) and self._notice(Action.APPLICATION_OVERDUE, app.id):
                self._audit_drafts.append(
                    Draft(
                        Action.APPLICATION_OVERDUE,
                        actor="router",
                        decision=Decision.OVERDUE,
                        resource=app.resource,
                        consumer=app.consumer,
                        provider=self._provider(app.resource),
                        application_id=app.id,
                        purpose=app.purpose,
                        reason=f"no answer within 10 working days (due {app.due().isoformat()})",
                        details=detail_map(applied_at=app.applied_at, due=app.due()),
                    )
                )
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        self.metrics.audit.oldest_unanswered_application_age.set(max(0.0, age))

    async def _write_audit(self) -> None:
        """Write the audit entries gathered so far and wait until every one is acknowledged."""
        if not self._audit_drafts or self.audit is None:
            return
        drafts, self._audit_drafts = self._audit_drafts, []
        pending = await self.audit.send(drafts)
        await pending.acked()

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
        the background (see :meth:`_settle_loop`) while the next batch is routed; at
        most ``MAX_UNSETTLED`` batches are in flight. A batch that failed to settle
        raises here, at the next call. ``routed`` counts records once committed.
        """
        self._raise_if_settling_failed()
        batch = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=self.max_batch)
        # after the fetch, not before: getmany may wait (for a group assignment, say) while
        # a grant changes, and a batch must never be routed with views older than it is
        if self._next_expiry is not None and dt.datetime.now(dt.UTC) >= self._next_expiry:
            await self._recompile(everything=True)
        elif self._dirty:
            await self._recompile()
        elif time.monotonic() >= self._next_watch:
            self._watch(dt.datetime.now(dt.UTC))
        if not batch:
            if self._audit_drafts:
                self._settle_later([], [], {}, 0, None)
            return 0
        started = time.perf_counter()
        now = dt.datetime.now(dt.UTC)
        futures: list[Any] = []
        offsets = {}
        count = 0
        mark = len(self._audit_drafts)
        outbox = Outbox(self._producer)
        try:
            for tp, records in batch.items():
                count += len(records)
                futures.extend(await self._route_partition(tp.topic, records, now, outbox))
                offsets[tp] = records[-1].offset + 1
            futures.extend(await outbox.send())
        except BaseException:
            del self._audit_drafts[mark:]  # not committed: routed (and audited) again later
            raise
        self._settle_later(futures, list(batch), offsets, count, started)
        while len(self._unsettled) > MAX_UNSETTLED and self._settler is not None:
            # back-pressure: wait for a settling round to end
            waiter = asyncio.ensure_future(self._settled.wait())
            try:
                await asyncio.wait(
                    [waiter, self._settler], timeout=1.0, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                waiter.cancel()
            self._raise_if_settling_failed()
        return count

    async def _broker_watchdog(self) -> None:
        """Every second, see whether the broker keeps the router waiting.

        A task of its own: when the broker stalls, routing itself waits (for a fetch,
        for room in the producer's queue), and could not report it.
        """
        while True:
            await asyncio.sleep(1.0)
            try:
                self._watch_broker()
            except Exception:  # never let the watchdog take the router down
                log.exception("broker watchdog failed")

    def _watch_broker(self) -> None:
        """Measure how long the broker has kept the router waiting; log and count stalls.

        Two signs, whichever is older: the last fetch answer for any assigned source
        partition or control topic (answers come every few ms, data or not), and the
        oldest routed batch whose deliveries are not acknowledged yet.
        """
        now = time.monotonic()
        waited = 0.0
        stamps = [
            t
            for tp in self._consumer.assignment()
            if (t := self._consumer.last_poll_timestamp(tp)) is not None
        ]
        control = self.follower.last_answer_ms()  # answers even before a group assignment
        if control is not None:
            stamps.append(control)
        if stamps:
            waited = max(0.0, time.time() - max(stamps) / 1000)
        if self._unsettled and self._unsettled[0].routed_at is not None:
            waited = max(waited, now - self._unsettled[0].routed_at)
        self.metrics.broker_wait.set(waited)
        if waited >= STALL_S and self._stalled_since is None:
            self._stalled_since = now - waited
            self.metrics.broker_stalls.inc()
            log.warning(
                "broker stall: no answer from the broker for %.1f s (%d routed batches wait "
                "for acknowledgement); routing resumes by itself when it answers",
                waited,
                len(self._unsettled),
            )
        elif waited < STALL_S and self._stalled_since is not None:
            log.warning("broker answering again after a stall of %.1f s", now - self._stalled_since)
            self._stalled_since = None

    def _settle_later(
        self,
        futures: list[Any],
        tps: list[Any],
        offsets: dict[Any, int],
        count: int,
        started: float | None,
    ) -> None:
        drafts, self._audit_drafts = self._audit_drafts, []
        routed_at = time.monotonic() if started is not None else None
        self._unsettled.append(_Routed(futures, drafts, tps, offsets, count, started, routed_at))
        if self._settler is None:
            self._settler = asyncio.create_task(self._settle_loop())

    async def _settle_loop(self) -> None:
        """Settle what was routed, all that is waiting at once, until nothing waits.

        For each round: every delivery and dead letter acknowledged, then every audit
        entry (one write), then the offsets committed (one commit). A round takes
        every batch routed meanwhile, so at a steady rate there is about one commit
        and one audit write in flight, however small the batches.
        """
        while self._unsettled:
            # at most one round every SETTLE_INTERVAL_S: the deliveries are already on
            # their way; what waits is their acks, the audit write and the commit, and
            # fewer of those leave the broker more time for fetches (lower latency)
            wait = self._last_round + SETTLE_INTERVAL_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._last_round = time.monotonic()
            jobs = list(self._unsettled)
            for job in jobs:
                for fut in job.futures:
                    await fut
            drafts = _merge_deliveries([d for job in jobs for d in job.drafts])
            if drafts and self.audit is not None:
                await (await self.audit.send(drafts)).acked()
            offsets: dict[Any, int] = {}
            for job in jobs:
                offsets.update(job.offsets)  # later batches of a partition have later offsets
            committed = True
            if offsets:
                try:
                    await self._consumer.commit(offsets)
                except CommitFailedError as exc:
                    committed = False
                    # the group rebalanced (this router was too slow to heartbeat, or one
                    # joined): the partitions start again from their committed offsets, here
                    # or at their new owner, so these records are routed again, not lost
                    log.warning(
                        "offsets of %d routed batches not committed, their records will be "
                        "routed again: %s",
                        len(jobs),
                        exc,
                    )
                    self.metrics.uncommitted_batches.inc(len(jobs))
            done = time.perf_counter()
            for job in jobs:
                self._unsettled.popleft()
                if job.started is not None:
                    self.metrics.batch_latency.observe(done - job.started)
                if committed:
                    self.routed += job.count
            for tp, offset in offsets.items():
                hw = self._consumer.highwater(tp)
                if hw is not None:
                    self.metrics.lag.labels(tp.topic).set(max(0, hw - offset))
            self._settled.set()
            self._settled.clear()
        self._settler = None

    def _raise_if_settling_failed(self) -> None:
        settler = self._settler
        if settler is not None and settler.done():
            self._settler = None
            settler.result()  # raises what made settling fail; nothing after it committed

    async def settle(self) -> None:
        """Wait until every routed batch is delivered, audited and committed."""
        while self._settler is not None:
            await asyncio.shield(self._settler)
            self._raise_if_settling_failed()

    async def _route_partition(
        self, topic: str, records: list[Any], now: dt.datetime, outbox: Outbox
    ) -> list[Any]:
        """Route the records of one source partition into ``outbox``; dead-letter futures."""
        futures: list[Any] = []
        parsed = topics.parse_source(topic)
        res_id = parsed[1] if parsed else topic
        res = self.state.snapshot.catalog.resources.get(res_id) if self.state.snapshot else None
        if res is None or parsed is None or res.provider != parsed[0]:
            why = (
                f"topic {topic} is not the source topic of a catalog resource"
                if res is None or parsed is None
                else f"{res_id!r} is provided by {res.provider!r}, not {parsed[0]!r}"
            )
            for rec in records:
                futures.append(await self._dead_letter(res_id, rec, why))
            return futures
        views = [v for v in self.views.get(res.id, []) if v.active(now)]
        # every record here comes from one source partition, so each view's delivery
        # partition is the same for all of them
        source_partition = records[0].partition
        targets = [
            (v, outbox.lane(v.topic, await self._partition(v.topic, source_partition)))
            for v in views
        ]
        where = f"{source_partition}:".encode()
        decoder = self.decoders[res.id]
        scanner = decoder.scanner
        header = wire.frame(res.schema_id, b"")  # records of the current schema start so
        # per view, for the loop: where to add, how to render, the key's hashing secret
        plans = [
            (
                lane.add,
                view.passthrough,  # every field, unmasked, unfiltered: the source bytes
                view.slice_renderer,
                view.key_hash,  # None: the source key as it is
            )
            for view, lane in targets
        ]
        counts = [[0, 0] for _ in targets]  # per view: delivered, filtered
        resource, key_field = res.id, res.key
        key_bytes = scanner.string_bytes(key_field) if scanner is not None else None
        for rec in records:
            value = rec.value
            try:
                if (
                    scanner is not None
                    and value is not None
                    and value[:5] == header
                    and len(value) <= MAX_VALUE_BYTES
                ):
                    # the common case: the current schema, scanned and sliced, never decoded
                    body = value[5:]
                    offsets = scanner.offsets(body)
                    record: Any = LazyRecord(scanner, body, offsets)
                    current = same_schema = True
                    # the key: a string key field's bytes as they are, else its text
                    key = (
                        key_bytes(body, offsets)
                        if key_bytes is not None
                        else str(record[key_field]).encode()
                    )
                else:
                    sid, body, record = self._decode_other(decoder, value)
                    offsets, current, same_schema = None, False, sid == res.schema_id
                    key = str(record[key_field]).encode()
            except DecodeError as exc:
                futures.append(await self._dead_letter(resource, rec, str(exc)))
                continue
            # nothing a provider's own producer wrote travels on unchecked: the record id
            # and the key are recomputed from the decoded record, never copied
            headers = [
                (RECORD_ID, record_id(resource, body).encode()),
                (SOURCE_OFFSET, where + str(rec.offset).encode()),
            ]
            for i, (add, passthrough, render, key_hash) in enumerate(plans):
                if passthrough and same_schema:
                    out = value  # the source bytes as they came
                elif current and render is not None and offsets is not None:
                    out = render(body, offsets, record)
                else:
                    out = targets[i][0].render(record)
                if out is None:
                    counts[i][1] += 1
                    continue
                add(key if key_hash is None else key_hash(key), out, headers)
                counts[i][0] += 1
        delivered = {view.consumer: counts[i][0] for i, (view, _) in enumerate(targets)}
        filtered = {view.consumer: counts[i][1] for i, (view, _) in enumerate(targets)}
        self.metrics.records_in.labels(res.id).inc(len(records))
        for consumer, n in delivered.items():
            if n:
                self.metrics.delivered.labels(res.id, consumer).inc(n)
        for consumer, n in filtered.items():
            if n:
                self.metrics.filtered.labels(res.id, consumer).inc(n)
        for view in views:
            if delivered.get(view.consumer) or filtered.get(view.consumer):
                self._audit_drafts.append(
                    self._delivery_draft(res, view, records, delivered, filtered)
                )
        return futures

    @staticmethod
    def _decode_other(
        decoder: _Decoder, value: bytes | None
    ) -> tuple[int, memoryview, dict[str, Any]]:
        """Schema id, body and record of a value off the scanned fast path.

        Another registered version of the schema, a schema that is not scanned, or a
        malformed value (:class:`DecodeError` says what is wrong).
        """
        if value is not None and len(value) > MAX_VALUE_BYTES:
            raise DecodeError(f"value of {len(value)} bytes is over {MAX_VALUE_BYTES}")
        sid, body = wire.unframe(value)
        return sid, body, decoder.decode(sid, body)

    @staticmethod
    def _delivery_draft(
        res: Resource,
        view: CompiledView,
        records: list[Any],
        delivered: dict[str, int],
        filtered: dict[str, int],
    ) -> Draft:
        """One RECORDS_DELIVERED entry: which fields went where under which grant, no values."""
        v = view.view
        return Draft(
            Action.RECORDS_DELIVERED,
            actor="router",
            decision=Decision.DELIVERED,
            resource=res.id,
            consumer=v.consumer,
            provider=res.provider,
            grant_id=v.grant_id,
            purpose=v.purpose,
            details=detail_map(
                record_count=delivered.get(v.consumer, 0),
                filtered_count=filtered.get(v.consumer, 0),
                partition=records[0].partition,
                offsets=f"{records[0].offset}-{records[-1].offset}",
                source_topic=records[0].topic,
                delivery_topic=view.topic,
                fields=v.fields,
                masks=v.masks or None,
                row_filter=v.row_filter,
                view_schema_id=view.schema_id,
            ),
        )

    async def _partition(self, topic: str, source_partition: int) -> int:
        """Delivery partition: the source partition modulo the topic's partition count.

        A key always maps to one source partition, so it always maps to one delivery
        partition and its order is kept; and no key is hashed again per record (the
        client's murmur2 partitioner is pure Python, ~20 us a call).
        """
        count = self._partition_counts.get(topic)
        if count is None:
            known = await self._producer.partitions_for(topic)  # waits for the metadata
            count = self._partition_counts[topic] = len(known)
        return source_partition % count

    async def _dead_letter(self, resource: str, rec: Any, reason: str) -> Any:
        log.warning("dead letter %s[%s]@%s: %s", rec.topic, rec.partition, rec.offset, reason)
        self.metrics.dead_letters.labels(resource).inc()
        self._audit_drafts.append(
            Draft(
                Action.RECORD_DEAD_LETTERED,
                actor="router",
                decision=Decision.DEAD_LETTERED,
                resource=resource,
                provider=self._provider(resource),
                reason=reason,
                details=detail_map(
                    source_topic=rec.topic,
                    partition=rec.partition,
                    offset=rec.offset,
                    dead_letter_topic=topics.dead_letter(resource),
                ),
            )
        )
        dlq = topics.dead_letter(resource)
        if dlq not in self._known_topics:
            await kafka.ensure_topics(self.bootstrap, [dlq], partitions=1)
            self._known_topics.add(dlq)
        ours = (DLQ_REASON, SOURCE_TOPIC, SOURCE_OFFSET)
        headers = [  # a provider's own headers of these names would pass for ours: dropped
            *[(k, v) for k, v in rec.headers or () if k not in ours],
            (DLQ_REASON, reason.encode("utf-8")),
            (SOURCE_TOPIC, rec.topic.encode()),
            (SOURCE_OFFSET, f"{rec.partition}:{rec.offset}".encode()),
        ]
        value = rec.value if rec.value is None or len(rec.value) <= MAX_VALUE_BYTES else None
        return await self._producer.send(dlq, value=value, key=rec.key, headers=headers)
