"""The router's watch on disputes (疑义校核): one ``DISPUTE_OVERDUE`` entry per dispute left unanswered.

It follows ``gov.ctl.disputes`` (read from its beginning at start, then what
is new at every check), replays it into a
:class:`~exchange.sharing.disputes.DisputeBook` under the catalog in force,
and audits each dispute still open after its working days
(:meth:`~exchange.sharing.dispute_records.Dispute.overdue`, the official
calendar) once per router instance, as :mod:`exchange.router.notices` does
for applications. A command the book refuses on replay (written to the topic
without a client, which checks before it writes, or forged) is audited
``COMMAND_REFUSED``. Checked every ``interval_s`` and whenever :meth:`check`
is called (with the watch's ``clock``: tests set it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.bus import kafka, topics
from exchange.control.state import ControlState
from exchange.errors import DecodeError
from exchange.metrics import DisputeMetrics
from exchange.router.periodic_watch import CHECK_INTERVAL_S, PeriodicWatch, utcnow
from exchange.sharing.dispute_records import DISPUTE_CODEC, Dispute, DisputeEvent, DisputeStatus
from exchange.sharing.disputes import DisputeBook

log = logging.getLogger(__name__)


class DisputeWatch(PeriodicWatch):
    """Replays the disputes; audits the overdue ones, each once."""

    name = "dispute-watch"

    def __init__(
        self,
        state: ControlState,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        clock: Callable[[], dt.datetime] = utcnow,
        metrics: DisputeMetrics | None = None,
    ) -> None:
        super().__init__(state, interval_s=interval_s, clock=clock)
        self.metrics = metrics
        self.book = DisputeBook()
        self._noticed: set[str] = set()
        self._consumer: Any = None
        self._tp = TopicPartition(topics.DISPUTES, 0)

    async def prepare(self) -> bool:
        """Follow gov.ctl.disputes from its beginning."""
        c = kafka.consumer(self.state.bus, fetch_max_wait_ms=20)
        self._consumer = c
        try:
            await c.start()
            c.assign([self._tp])
            await c.seek_to_beginning(self._tp)
            # fetched only while read (every check): between checks an assigned partition
            # would be fetched again and again, each answer empty (50 times a second at a
            # 20 ms wait), for a topic written a few times a day
            c.pause(self._tp)
        except Exception:  # the watch must never keep a router from routing
            log.warning("dispute watch not connected to %s", topics.DISPUTES, exc_info=True)
            return False
        return True

    async def close(self) -> None:
        if self._consumer is not None:
            c, self._consumer = self._consumer, None
            await c.stop()

    async def _read_new(self) -> list[Draft]:
        """Apply the events written since the last check; a refused one's audit entry each."""
        snapshot = self.state.snapshot
        if self._consumer is None or snapshot is None:
            return []
        refused = []
        self._consumer.resume(self._tp)
        try:
            records = await kafka.drain(self._consumer, [self._tp], timeout_s=15)
        finally:
            if self._consumer is not None:
                self._consumer.pause(self._tp)
        for rec in records:
            if rec.value is None:
                continue
            try:
                event = DisputeEvent.from_avro(DISPUTE_CODEC.decode(rec.value))
            except (DecodeError, ValueError, TypeError, KeyError):
                log.warning("ignored a record that is not a dispute event at %s", rec.offset)
                continue
            reason = self.book.apply(event, snapshot.catalog)
            if reason is not None and event.event_id not in self.book.accepted:
                refused.append(_refused(event, reason, self.book))
        return refused

    async def check(self, at: dt.datetime | None = None) -> list[Draft]:
        """Read the new dispute events; audit every open dispute past its due day (once)."""
        if self._task is not None:
            await asyncio.wait_for(self.ready.wait(), 30)
        async with self._lock:
            drafts = await self._read_new()
            at = at or self.clock()
            drafts += [
                _overdue(d, at)
                for d in self.book.disputes.values()
                if d.status is DisputeStatus.OPEN and d.overdue(at) and d.id not in self._noticed
            ]
            self._noticed.update(
                d.details["dispute_id"] for d in drafts if d.action is Action.DISPUTE_OVERDUE
            )
            self._count_overdue(at)
            if drafts and self._write is not None:
                await self._write(drafts)
            return drafts

    def _count_overdue(self, at: dt.datetime) -> None:
        """Set the overdue gauge per provider (0 for a provider whose disputes were answered)."""
        if self.metrics is None:
            return
        counts: dict[str, int] = {}
        for d in self.book.disputes.values():
            late = d.status is DisputeStatus.OPEN and d.overdue(at)
            counts[d.provider] = counts.get(d.provider, 0) + int(late)
        for provider, n in counts.items():
            self.metrics.overdue.labels(provider).set(n)


def _refused(event: DisputeEvent, reason: str, book: DisputeBook) -> Draft:
    """A dispute command the book refused on replay: one written without a client (a
    session checks before it writes), or forged."""
    known = book.disputes.get(event.dispute_id)
    return Draft(
        Action.COMMAND_REFUSED,
        actor=event.actor,
        decision=Decision.DENIED,
        resource=event.resource,
        consumer=known.consumer if known else None,
        provider=known.provider if known else None,
        reason=reason,
        details=detail_map(
            command=f"dispute-{event.kind.value.lower()}",
            event_id=event.event_id,
            dispute_id=event.dispute_id,
            record_id=event.record_id,
            fields=event.fields or None,
            written_at=event.at,
            noticed_by="router replaying gov.ctl.disputes",
        ),
    )


def _overdue(d: Dispute, at: dt.datetime) -> Draft:
    return Draft(
        Action.DISPUTE_OVERDUE,
        actor="router",
        decision=Decision.OVERDUE,
        resource=d.resource,
        consumer=d.consumer,
        provider=d.provider,
        reason=f"no answer within {d.answer_within} working days (due {d.due().isoformat()})",
        details=detail_map(
            dispute_id=d.id,
            record_id=d.record_id,
            fields=d.fields,
            opened_at=d.opened_at,
            due=d.due(),
            answer_within=d.answer_within,
            noticed_at=at,
        ),
    )
