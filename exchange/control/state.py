"""The control state every process materialises from the control topics.

Catalog snapshots (newest in force), schemas and grant events are read from
the beginning; :class:`ControlFollower` then keeps following them live, so a
revocation written by one process reaches every router within a poll. A
session (``from_snapshot``) starts instead from the last snapshot of the
grant book that routers write (:mod:`exchange.control.book_snapshot`) and replays only
the grant events after it.

If the control topics go backwards under a follower (recreated, truncated,
deleted: :mod:`exchange.control.lineage`), it stops applying records and
reports it (``reset``, ``on_reset``); a catch-up raises
:class:`~exchange.errors.ControlStateReset` instead of reading on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from exchange import workdays
from exchange.avro.control_records import ControlCodec
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.bus.idle_wait import IdleFetchWait
from exchange.bus.kafka import ensure_control_topics
from exchange.bus.registry import SchemaRegistry
from exchange.catalog.model import Catalog
from exchange.catalog.workflow import Workflow
from exchange.control import book_snapshot
from exchange.control.catalog_store import Snapshot, decode_snapshot, refusal
from exchange.control.lineage import Lineage
from exchange.errors import BrokerUnavailable, ControlStateReset, DecodeError, ExchangeError
from exchange.lifecycle import AsyncService
from exchange.sharing.grants import GrantBook
from exchange.sharing.records import GRANT_EVENT, GRANT_EVENT_V1, GRANT_EVENT_V2, GrantEvent

log = logging.getLogger(__name__)
GRANT_CODEC = ControlCodec(GRANT_EVENT, older=(GRANT_EVENT_V1, GRANT_EVENT_V2))
CHECK_EVERY_S = 0.5  # a following follower checks the control topics' lineage this often
NO_CATALOG = "no catalog has been loaded on this bus: run 'exchange catalog load schemas/' first"


class ControlState:
    """Catalog in force, schema registry and grant book, as one process sees them."""

    def __init__(self, bus: Connection) -> None:
        self.bus = bus
        self.snapshot: Snapshot | None = None
        self.registry = SchemaRegistry(bus)
        self.book = GrantBook()
        #: called with (event, refusal reason or None) for each grant event applied
        self.on_grant_event: Callable[[GrantEvent, str | None], None] | None = None
        #: called with each snapshot that becomes the catalog in force
        self.on_catalog: Callable[[Snapshot], None] | None = None
        #: called with (snapshot, reason) for each snapshot refused on replay: not loaded
        #: by a catalog administrator of the catalog in force with a valid signature
        self.on_catalog_refused: Callable[[Snapshot, str], None] | None = None
        #: control topic -> offset of the next record to apply (how far this state has read)
        self.positions: dict[str, int] = {}
        #: (version, digest) of the catalog every event in the book was checked under;
        #: None if the catalog changed after grant events were applied
        self.book_catalog: tuple[int, str] | None = None
        #: control topic -> (its topic id, "" if the broker reports none; the first offset
        #: replayed): which incarnation of the topic this state was built from
        self.origin: dict[str, tuple[str, int]] = {}
        #: (loaded_at, workflow) of every catalog snapshot that came into force, oldest first:
        #: an application takes the review and time limits in force when it was made
        self.workflows: list[tuple[dt.datetime, Workflow]] = []

    def clear(self) -> None:
        """Forget everything read (after a reset of the control topics): no catalog, no grant."""
        self.snapshot = None
        self.registry.clear()  # the same object: every part of the process holds it
        self.book = GrantBook()
        self.positions = {}
        self.book_catalog = None
        self.origin = {}
        self.workflows = []

    @property
    def catalog(self) -> Catalog:
        if self.snapshot is None:
            raise ExchangeError(NO_CATALOG)
        return self.snapshot.catalog

    def handle(self, rec: Any) -> None:
        """Apply one record of a control topic (once: a record before the position is skipped)."""
        if rec.offset < self.positions.get(rec.topic, 0):
            return  # read already, or in the grant book snapshot this state started from
        self.positions[rec.topic] = rec.offset + 1
        if rec.value is None:
            return
        if rec.topic == topics.SCHEMAS:
            try:
                self.registry.add(json.loads(rec.value))
            except (ValueError, ExchangeError):
                log.warning("ignored a record that is not a schema at offset %s", rec.offset)
        elif rec.topic == topics.CATALOG:
            try:
                snap = decode_snapshot(rec.value)
            except (DecodeError, ValueError):
                log.warning("ignored a record that is not a catalog snapshot at %s", rec.offset)
                return
            refused = refusal(self.snapshot, snap)
            if refused is not None:
                log.warning("catalog snapshot at offset %s ignored: %s", rec.offset, refused)
                if self.on_catalog_refused:
                    self.on_catalog_refused(snap, refused)
                return
            self.snapshot = snap
            self.workflows.append((snap.loaded_at, snap.catalog.workflow))
            workdays.use(workdays.Calendar(snap.catalog.calendar))  # its holiday calendar too
            fresh = topics.GRANTS not in self.positions  # no grant event applied yet
            self.book_catalog = (snap.version, snap.digest) if fresh else None
            if self.on_catalog:
                self.on_catalog(self.snapshot)
        elif rec.topic == topics.GRANTS:
            try:
                event = GrantEvent.from_avro(GRANT_CODEC.decode(rec.value))
            except (DecodeError, ValueError, TypeError, KeyError):
                log.warning("ignored a record that is not a grant event at offset %s", rec.offset)
                return
            if self.snapshot is None:
                reason: str | None = NO_CATALOG
            else:
                reason = self.book.apply(
                    event, self.snapshot.catalog, workflow=self.workflow_at(event.at)
                )
            if reason:
                log.info("grant event %s (%s) refused: %s", event.event_id, event.kind, reason)
            if self.on_grant_event:
                self.on_grant_event(event, reason)

    def workflow_at(self, at: dt.datetime) -> Workflow | None:
        """The sharing workflow (workflow.yaml) of the catalog in force at ``at``: that of the
        last snapshot loaded at or before it (None: no catalog yet; the first one's if ``at``
        is earlier than every load)."""
        found = self.workflows[0][1] if self.workflows else None
        for loaded_at, workflow in self.workflows:
            if loaded_at > at:
                break
            found = workflow
        return found

    def start_from(self, snap: book_snapshot.BookSnapshot) -> bool:
        """Take the book of ``snap`` if it was made under the catalog in force; True if taken."""
        if self.snapshot is None or topics.GRANTS in self.positions:
            return False
        if (snap.catalog_version, snap.catalog_digest) != (
            self.snapshot.version,
            self.snapshot.digest,
        ):
            return False
        self.book = snap.book
        self.positions[topics.GRANTS] = snap.grants_offset
        self.book_catalog = (snap.catalog_version, snap.catalog_digest)
        return True


async def load(bus: Connection, *, from_snapshot: bool = True) -> ControlState:
    """Read the control topics to their current end (from the last grant book snapshot)."""
    reader = ControlFollower(ControlState(bus))
    try:
        await reader.start(follow=False, from_snapshot=from_snapshot)
    finally:  # its consumer closed however the start ends: failed or cancelled too
        await reader.stop()
    return reader.state


class ControlFollower(AsyncService):
    """Follows the control topics live and feeds every new record to a :class:`ControlState`."""

    def __init__(self, state: ControlState, **consumer_options: Any) -> None:
        self.state = state
        # a short fetch wait: a broker that does not answer a waiting fetch as soon as a
        # record arrives (the embedded one) would otherwise hold a revocation back for the
        # default 500 ms, while records published meanwhile are routed with the old views;
        # and Kafka answers requests on a connection in order, so a catch-up's ListOffsets
        # would wait behind the long-polling fetch
        self._options = {"fetch_max_wait_ms": 20, **consumer_options}
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None
        self.caught_up = asyncio.Event()
        self.lineage = Lineage()
        #: set when the control topics went backwards under this follower (then it stops)
        self.reset: ControlStateReset | None = None
        #: called (from the following task) with the reset when one is found
        self.on_reset: Callable[[ControlStateReset], None] | None = None

    async def start(self, *, follow: bool = True, from_snapshot: bool = False) -> None:
        """Read the control topics to their end; then follow them (or catch up on demand).

        ``from_snapshot``: start the grant book from the last snapshot on ``gov.ctl.book``
        made under the catalog in force (if any), not from the beginning of the history.
        Routers never do: they check every event themselves.
        """
        c = kafka.consumer(self.state.bus, **self._options)
        self._consumer = c  # stopped by stop(), also if the start fails half-way
        # the topics are checked (created on a new bus) while the consumer connects
        results: tuple[Any, ...] = await asyncio.gather(
            ensure_control_topics(self.state.bus), c.start(), return_exceptions=True
        )
        for failed in results:  # the clearer error (BrokerUnavailable) first
            if isinstance(failed, BaseException):
                raise failed
        self.reset = None
        last = await self._last_book_record() if from_snapshot else None
        c.assign(self._tps)
        await c.seek_to_beginning(*self._tps)
        first = {tp.topic: n for tp, n in (await c.beginning_offsets(self._tps)).items()}
        await self.lineage.start(c, self._tps, first)
        if last is not None:
            # schemas and catalog (one drain: one offsets request), then the snapshot's book
            self._handle_in_order(await kafka.drain(c, self._tps[:2], timeout_s=30))
            try:
                snap = book_snapshot.decode(last)
            except DecodeError as exc:
                log.warning("grant book snapshot not used: %s", exc)
            else:
                if self._same_grants(snap, first) and self.state.start_from(snap):
                    c.seek(self._tps[2], snap.grants_offset)
                    self.lineage.marks[self._tps[2]].first = snap.grants_from
        await self.catch_up()
        grants = self._tps[2]
        taken = self.state.positions.get(topics.GRANTS, 0)
        if taken > (c.highwater(grants) or 0):  # a snapshot past the end: forged
            log.warning("grant book snapshot claims offset %s, past the end: not used", taken)
            self.state.book = GrantBook()
            del self.state.positions[topics.GRANTS]
            await c.seek_to_beginning(grants)
            self.lineage.marks[grants].first = first[grants.topic]
            await self.catch_up()
        self.state.origin = {
            tp.topic: (str(m.topic_id or ""), m.first) for tp, m in self.lineage.marks.items()
        }
        self.caught_up.set()
        if follow:
            c.resume(*self._tps)  # paused by catch_up
            self._task = asyncio.create_task(self._follow(), name="control-follower")

    def _same_grants(self, snap: book_snapshot.BookSnapshot, first: dict[str, int]) -> bool:
        """Whether ``snap`` was made from the ``gov.ctl.grants`` on the bus now: the same topic
        (id, where the broker reports ids) replayed from the same log start. A snapshot of a
        topic since recreated or truncated holds grants that may not exist any more."""
        mark = self.lineage.marks[self._tps[2]]
        if mark.topic_id is not None and snap.grants_topic_id != str(mark.topic_id):
            log.info("grant book snapshot not used: made from another gov.ctl.grants topic")
            return False
        if snap.grants_from != first.get(topics.GRANTS, 0):
            log.info("grant book snapshot not used: gov.ctl.grants was truncated since")
            return False
        return True

    async def _last_book_record(self) -> bytes | None:
        """The value of the last record on ``gov.ctl.book`` (None if there is none)."""
        c = self._consumer
        tp = TopicPartition(topics.BOOK, 0)
        c.assign([tp])
        end = (await c.end_offsets([tp]))[tp]  # may be low on the embedded broker: take
        if end == 0:  # the last record of what the fetch from there returns
            return None
        c.seek(tp, end - 1)
        batch = await c.getmany(tp, timeout_ms=1000)
        records = [r for r in batch.get(tp, []) if r.value is not None]
        return records[-1].value if records else None

    @property
    def _tps(self) -> list[TopicPartition]:
        # schemas first, then the catalog, then grants: each needs the one before
        return [TopicPartition(t, 0) for t in (topics.SCHEMAS, topics.CATALOG, topics.GRANTS)]

    async def catch_up(self, *, at_least: dict[str, int] | None = None) -> ControlState:
        """Apply every control record written since the last call (not following live).

        ``at_least`` maps a topic to an offset that must be read past, e.g. one
        past the offset of a command just written, so the caller sees its own write.
        """
        if self._task is not None:
            raise RuntimeError("a following ControlFollower catches up by itself")
        c = self._consumer
        loop = asyncio.get_running_loop()
        # fetched only while catching up: between catch-ups no fetch waits on the broker,
        # so the next catch-up's offsets request is answered at once, not behind it
        c.resume(*self._tps)
        try:
            # every control topic in one drain: one offsets request, not one per topic
            records = await kafka.drain(c, self._tps, timeout_s=30)
            # before applying what was read: it may come from another topic of the same name
            await self.lineage.check(c, self.state.positions, confirm=False)
            self._handle_in_order(records)
            for tp in self._tps:
                deadline = loop.time() + 30
                while await c.position(tp) < (at_least or {}).get(tp.topic, 0):
                    if loop.time() > deadline:
                        raise BrokerUnavailable(f"timed out reading {tp.topic}")
                    batch = await c.getmany(tp, timeout_ms=100)
                    for rec in batch.get(tp, []):
                        self.state.handle(rec)
        finally:
            c.pause(*self._tps)
        return self.state

    def _handle_in_order(self, records: list[Any]) -> None:
        """Apply records of several control topics: schemas, then catalog, then grants.

        Each needs the one before; within a topic the order read is kept (a stable sort).
        """
        order = {tp.topic: n for n, tp in enumerate(self._tps)}
        for rec in sorted(records, key=lambda r: order.get(r.topic, len(order))):
            self.state.handle(rec)

    async def _follow(self) -> None:
        order = {topics.SCHEMAS: 0, topics.CATALOG: 1, topics.GRANTS: 2}
        loop = asyncio.get_running_loop()
        checked = loop.time()
        # the short fetch wait only while control records arrive: an idle follower asks
        # 10 times a second, not 50 (on a 3-node Kafka cluster five followers at 20 ms cost
        # the brokers 36 % of a core and their process 30 %; at 100 ms 12 % and 12 %,
        # measured). A record after an idle spell waits at most 100 ms more on the embedded
        # broker; Kafka answers a waiting fetch at once, and there the wait only delays the
        # lineage check's ListOffsets, queued behind the fetch on the same connection
        wait = IdleFetchWait(self._consumer, self._options["fetch_max_wait_ms"], enabled=True)
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            wait.observed(sum(len(records) for records in batch.values()))
            if batch or loop.time() - checked >= CHECK_EVERY_S:
                # before applying records too: they may come from another topic of the name
                checked = loop.time()
                try:
                    await self.lineage.check(self._consumer, self.state.positions, confirm=True)
                except ControlStateReset as exc:
                    self.reset = exc  # nothing more is applied: the state is stale
                    if self.on_reset is not None:
                        self.on_reset(exc)
                    return
                except Exception:  # a broker that does not answer now: the next check will
                    log.debug("control lineage check failed", exc_info=True)
            for tp in sorted(batch, key=lambda tp: order.get(tp.topic, 3)):
                for rec in batch[tp]:
                    try:
                        self.state.handle(rec)
                    except Exception:
                        log.exception("control record at %s[%s] failed", tp.topic, rec.offset)

    def last_answer_ms(self) -> int | None:
        """Wall-clock ms of the broker's last fetch answer for the control topics, if any."""
        if self._consumer is None:
            return None
        stamps = [self._consumer.last_poll_timestamp(tp) for tp in self._consumer.assignment()]
        return max((t for t in stamps if t is not None), default=None)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._consumer is not None:
            c, self._consumer = self._consumer, None
            await c.stop()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
