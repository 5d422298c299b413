"""Every accepted command on ``gov.ctl.grants`` gets an audit entry, by exactly one router.

A :class:`~exchange.clients.department.Department` audits each command it
writes, with the command's ``event_id`` in the entry's details. An event
written straight onto the topic (the bench's 3,600 grants, a tool, a forger
whose event happens to pass the rules) changes who receives what all the
same, and has no entry: the routers, which replay the topic authoritatively,
audit it.

Exactly one router does, however many run and restart:

* **One owner.** Every router joins the consumer group :data:`GROUP` on the
  single partition of ``gov.ctl.grants``; Kafka assigns that partition to one
  member at a time. The group's committed offset marks how far the commands
  are audited: a new owner (a restart, a rebalance) goes on from there.
* **Rounds.** The owner takes what its fetch returned, waits until its router's
  grant book has applied it (so "accepted" is the router's own verdict, never
  a guess), waits until :data:`GRACE_S` after the newest event was written (its
  record timestamp; at most :data:`GRACE_S` after the fetch) so that the client
  that wrote a command has had time to audit it, reads ``gov.audit`` for entries
  that already name the event (same ``event_id``, action and actor), writes
  one entry for each accepted event without one, waits for the
  acknowledgements, then commits. When the partition is about to go to
  another router, the rebalance waits for the round in progress, commit
  included.
* **Restarts.** A router that stopped after writing its entries and before
  committing leaves them in the log; the next owner reads ``gov.audit`` from
  the time of the first event it takes (less :data:`LOOKBACK_S` for clock
  differences), finds them and writes none again.

Left over, so the guarantee is exactly once in the ordinary course and at
least once with a duplicate telling itself apart (same ``event_id``) in two
cases: a client that audits its command more than :data:`GRACE_S` after
writing it (a stalled session, or its clock behind the router's), and a
router that stalls past its session timeout while it owns the partition and
writes after another took over.

Refused events are not this module's: every router audits those it refuses
(:mod:`exchange.router.loop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Self

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from exchange import workdays
from exchange.audit.entry import Action, AuditEntry, Decision, Draft, detail_map
from exchange.audit.writer import AuditWriter
from exchange.bus import kafka, topics
from exchange.control.state import GRANT_CODEC, ControlState
from exchange.errors import DecodeError
from exchange.sharing.records import EventKind, GrantEvent

log = logging.getLogger(__name__)

GROUP = topics.COMMAND_AUDIT_GROUP  # one per bus: whichever routers run, one audits
GRACE_S = 5.0  # time left to the client that wrote a command to audit it itself
LOOKBACK_S = 60.0  # gov.audit is read from this long before the first event of a round
MAX_SEEN = 200_000  # event ids remembered from gov.audit; beyond, it is read again by time
NOTICED_BY = "router replaying gov.ctl.grants"

GRANTS = TopicPartition(topics.GRANTS, 0)
AUDIT = TopicPartition(topics.AUDIT, 0)

#: what a client's entry for an accepted command of each kind is
ENTRY_OF: dict[EventKind, tuple[Action, Decision]] = {
    EventKind.SUBSCRIBED: (Action.SUBSCRIPTION_GRANTED, Decision.GRANTED),
    EventKind.APPLIED: (Action.APPLICATION_SUBMITTED, Decision.SUBMITTED),
    EventKind.APPROVED: (Action.APPLICATION_APPROVED, Decision.APPROVED),
    EventKind.REJECTED: (Action.APPLICATION_REJECTED, Decision.REJECTED),
    EventKind.REVOKED: (Action.GRANT_REVOKED, Decision.REVOKED),
    # the data-sharing authority's workflow (exchange.sharing.authority)
    EventKind.REVIEW_PASSED: (Action.APPLICATION_REVIEWED, Decision.PASSED),
    EventKind.REVIEW_RETURNED: (Action.APPLICATION_REVIEWED, Decision.RETURNED),
    EventKind.CONTESTED: (Action.APPLICATION_CONTESTED, Decision.CONTESTED),
    EventKind.NEGOTIATED: (Action.APPLICATION_NEGOTIATED, Decision.NEGOTIATED),
    EventKind.ESCALATED: (Action.APPLICATION_ESCALATED, Decision.ESCALATED),
    EventKind.UPHELD: (Action.APPLICATION_DECIDED, Decision.UPHELD),
    EventKind.ORDERED: (Action.APPLICATION_DECIDED, Decision.ORDERED),
    EventKind.APPEALED: (Action.ORDER_APPEALED, Decision.APPEALED),
}
_AUDITING_ACTIONS = {action for action, _ in ENTRY_OF.values()}


def command_draft(event: GrantEvent, state: ControlState) -> Draft:
    """The entry of an accepted command, as its client would have written it, noticed by us."""
    action, decision = ENTRY_OF[event.kind]
    res = state.catalog.resources.get(event.resource) if state.snapshot else None
    facts: dict[str, Any] = {}
    if event.kind is EventKind.APPLIED:
        made = state.book.applications.get(event.application_id or "")
        due = made.windows()[0].due_facts() if made else workdays.due_facts(event.at)
        facts = {"applied_at": event.at, **due}
    elif event.kind in (EventKind.APPROVED, EventKind.REJECTED) and event.application_id:
        app = state.book.applications.get(event.application_id)
        facts = app.answer_facts(event.at) if app is not None else {}
    return Draft(
        action,
        actor=event.actor,
        decision=decision,
        resource=event.resource,
        consumer=event.consumer,
        provider=res.provider if res else None,
        reason=event.reason,
        grant_id=event.grant_id,
        application_id=event.application_id,
        purpose=event.purpose,
        details=detail_map(
            event_id=event.event_id,
            command=event.kind.value.lower(),
            written_at=event.at,
            fields=event.fields or None,
            masks=event.masks or None,
            row_filter=event.row_filter,
            valid_until=event.valid_until,
            legal_basis=event.legal_basis,
            noticed_by=NOTICED_BY,
            **facts,
        ),
    )


class _FinishRoundOnRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """The partition goes to another router only after the round in progress committed."""

    def __init__(self, lock: asyncio.Lock) -> None:
        self.lock = lock

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self.lock:
            pass

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if GRANTS in assigned:
            log.info("this router audits the commands on %s", topics.GRANTS)


class CommandAuditor:
    """Audits the accepted commands that have no entry yet, while its router runs."""

    def __init__(
        self,
        state: ControlState,
        audit: AuditWriter,
        *,
        group: str = GROUP,
        session_timeout_ms: int = 10_000,
        grace_s: float | None = None,
    ) -> None:
        self.state = state
        self.audit = audit
        self.group = group
        self.session_timeout_ms = session_timeout_ms
        self.grace_s = GRACE_S if grace_s is None else grace_s
        self.audited = 0  # entries this instance wrote
        #: event id -> (action, actor) of the entries on gov.audit that name it
        self._seen: dict[str, set[tuple[Action, str]]] = {}
        self._audit_from: int | None = None  # gov.audit is read into _seen from here on
        self._round = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    @classmethod
    async def started(cls, state: ControlState, audit: AuditWriter, **options: Any) -> Self:
        auditor = cls(state, audit, **options)
        await auditor.start()
        return auditor

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-audit")
        ready = asyncio.ensure_future(self._ready.wait())
        await asyncio.wait([ready, self._task], return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._task.done():
            self._task.result()  # raises what made it fail to start

    async def stop(self) -> None:
        """Leave the group (after the round in progress): another router takes over at once."""
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        bus = self.state.bus
        grants = kafka.consumer(
            bus,
            group_id=self.group,
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(100, min(1_000, self.session_timeout_ms // 5)),
            fetch_max_wait_ms=100,
            max_poll_records=5000,  # a backlog (the bench's grants) in few rounds
        )
        reader = kafka.consumer(bus, fetch_max_wait_ms=20)
        try:  # both stopped however it ends, also when stopped (cancelled) mid-start
            await grants.start()
            await reader.start()
            reader.assign([AUDIT])
            reader.pause(AUDIT)  # fetched only while a round reads it (see _read_log)
            grants.subscribe([topics.GRANTS], listener=_FinishRoundOnRevoke(self._round))
            self._ready.set()
            while True:
                batch = await grants.getmany(timeout_ms=500)
                records = batch.get(GRANTS)
                if records:
                    await self._round_of(records, grants, reader)
        finally:
            try:
                await reader.stop()
            finally:
                await grants.stop()  # leaves the group

    async def _round_of(self, records: list[Any], grants: Any, reader: Any) -> None:
        async with self._round:
            if GRANTS not in grants.assignment():
                return  # revoked since the fetch: the next owner audits them
            try:
                await self._audit_round(records, reader)
            except (KafkaError, DecodeError, OSError) as exc:
                # nothing committed: the same events again, after a pause
                log.warning("commands not audited, tried again in a second: %s", exc)
                grants.seek(GRANTS, records[0].offset)
                await asyncio.sleep(1.0)
                return
            await self._commit(grants, records[-1].offset + 1)

    async def _commit(self, grants: Any, offset: int) -> None:
        try:
            await grants.commit({GRANTS: offset})
        except (CommitFailedError, KafkaError) as exc:
            # the next owner goes on from the last commit and finds our entries in the log
            log.warning("audited commands up to offset %s not committed: %s", offset, exc)

    async def _audit_round(self, records: list[Any], reader: Any) -> None:
        # the grace runs from when the newest event was written (its writer's clock), and
        # never ends later than GRACE_S after the fetch: a backlog is audited without waiting
        written = min(max(r.timestamp for r in records) / 1000, time.time())
        last = records[-1].offset
        await _until(lambda: self.state.positions.get(topics.GRANTS, 0) > last)
        await asyncio.sleep(max(0.0, written + self.grace_s - time.time()))
        first_ms = min(min(r.timestamp for r in records), int(time.time() * 1000))
        await self._read_log(reader, first_ms - int(LOOKBACK_S * 1000))
        drafts: dict[str, Draft] = {}  # event id -> its entry (a retried event once)
        for rec in records:
            if rec.value is None:
                continue
            try:
                event = GrantEvent.from_avro(GRANT_CODEC.decode(rec.value))
            except (DecodeError, ValueError, TypeError, KeyError):
                continue  # the router logged it
            if event.event_id not in self.state.book.accepted or event.event_id in drafts:
                continue  # refused: the routers audit refusals themselves
            if (ENTRY_OF[event.kind][0], event.actor) in self._seen.get(event.event_id, ()):
                continue  # audited by its client, or by a router before a restart
            drafts[event.event_id] = command_draft(event, self.state)
        if drafts:
            await self.audit.write(*drafts.values())
            for event_id, draft in drafts.items():
                self._seen.setdefault(event_id, set()).add((draft.action, draft.actor))
            self.audited += len(drafts)
            log.info("audited %d commands written without a client's entry", len(drafts))

    async def _read_log(self, reader: Any, from_ms: int) -> None:
        """Read ``gov.audit`` to its end, from the first entry at ``from_ms`` at the latest."""
        if len(self._seen) > MAX_SEEN:
            self._seen, self._audit_from = {}, None
        found = (await reader.offsets_for_times({AUDIT: max(0, from_ms)})).get(AUDIT)
        end = (await reader.end_offsets([AUDIT]))[AUDIT]
        start = found.offset if found is not None and found.timestamp >= 0 else end
        if self._audit_from is None or start < self._audit_from:
            reader.seek(AUDIT, start)
            self._audit_from = start
        # fetched only here: between rounds an assigned partition would be fetched again
        # and again at the reader's 20 ms wait, each answer empty or thrown away
        reader.resume(AUDIT)
        try:
            while True:  # until a fetch finds nothing more (end offsets may lag on some brokers)
                batch = await reader.getmany(AUDIT, timeout_ms=50)
                records = batch.get(AUDIT, [])
                for rec in records:
                    self._remember(rec.value)
                if not records and await reader.position(AUDIT) >= end:
                    return
        finally:
            reader.pause(AUDIT)

    def _remember(self, value: bytes | None) -> None:
        if value is None or b"event_id" not in value:
            return  # most entries (deliveries) name no command: not decoded
        try:
            entry = AuditEntry.decode(value)
        except (DecodeError, ValueError, TypeError, KeyError):
            return
        event_id = entry.details.get("event_id")
        if event_id and entry.action in _AUDITING_ACTIONS:
            self._seen.setdefault(event_id, set()).add((entry.action, entry.actor))


async def _until(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` (the router's follower advances the state in another task)."""
    while True:
        if condition():
            return
        await asyncio.sleep(0.02)
