"""Disputes and corrections (疑义校核) in a department's session.

``Department.dispute`` / ``answer_dispute`` / ``correct`` / ``disputes`` call
:class:`DisputeDesk`, which works like the grant commands: check the command
against the dispute book replayed from ``gov.ctl.disputes``, sign it, write it,
read it back (it returns once accepted, raises :class:`CommandRefused` with the
reason otherwise), and audit it (``DISPUTE_OPENED``, ``DISPUTE_ANSWERED``,
``DISPUTE_CLOSED``; ``COMMAND_REFUSED`` for a refusal).

How the bus knows what a department received: from the department's own
delivery topic, ``gov.dlv.<dept>.<resource>``, which only it (and the
routers) may read. Opening a dispute scans it, headers only, for a record
whose ``gov-record-id`` is the one disputed; the fields received are those
of the view schemas that record was delivered with (a field left out of its
view is not among them; a masked field is; a record delivered again under a
wider grant counts with every field it came with). Nothing found: refused, naming the
department, record and resource. The opening event names where the record
was found (``topic partition:offset``) and the fields received, and the
:class:`~exchange.sharing.disputes.DisputeBook` refuses a disputed field not
among them. A record older than the delivery topic's retention (7 days by
default) can no longer be disputed this way.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiokafka.errors import KafkaConnectionError

from exchange.audit.entry import Action, Decision, detail_map
from exchange.avro import wire
from exchange.bus import kafka, topics
from exchange.bus.envelope import RECORD_ID
from exchange.catalog import signing
from exchange.clients.publisher import Prepared, Publisher
from exchange.errors import BrokerUnavailable, CommandRefused, DecodeError, ExchangeError
from exchange.sharing import limits as command_limits
from exchange.sharing.dispute_records import (
    CORRECTS_HEADER,
    DEFAULT_ANSWER_WITHIN,
    DISPUTE_CODEC,
    DISPUTE_EVENT,
    Answer,
    Dispute,
    DisputeEvent,
    DisputeKind,
    DisputeStatus,
    new_dispute_id,
)
from exchange.sharing.disputes import DisputeBook
from exchange.sharing.records import now

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from exchange.bus.connection import Connection
    from exchange.bus.registry import SchemaRegistry
    from exchange.catalog.model import Catalog
    from exchange.control.state import ControlState
#: how long a scan of a delivery topic for a disputed record may take
SCAN_TIMEOUT_S = 60.0


async def read_book(bus: Connection, catalog: Catalog) -> DisputeBook:
    """The dispute book: every event of ``gov.ctl.disputes`` replayed under ``catalog``."""
    book = DisputeBook()
    for rec in await kafka.read_to_end(bus, topics.DISPUTES):
        if rec.value is None:
            continue
        try:
            event = DisputeEvent.from_avro(DISPUTE_CODEC.decode(rec.value))
        except (DecodeError, ValueError, TypeError, KeyError):
            continue  # not a dispute event: nothing to replay
        book.apply(event, catalog)
    return book


@dataclass(frozen=True)
class Receipt:
    """Where a department received a record, and the fields it received of it."""

    topic: str
    partition: int
    offset: int
    fields: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.topic} {self.partition}:{self.offset}"


async def find_received(
    bus: Connection, registry: SchemaRegistry, department: str, resource: str, record_id: str
) -> Receipt | None:
    """The delivery of record ``record_id`` on ``department``'s delivery topic, if any."""
    topic = topics.delivery(department, resource)
    c = kafka.consumer(bus)
    try:  # stopped however it ends, also cancelled or failed mid-start
        try:
            await c.start()
        except KafkaConnectionError as exc:
            raise kafka.unavailable(bus, exc) from exc
        # asking for a topic by name may create it (auto-create): only one that exists
        tps = (
            await kafka.topic_partitions(c, topic)
            if await kafka.existing_topics(c, [topic])
            else []
        )
        if not tps:
            return None
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        wanted = record_id.encode()
        found = await asyncio.wait_for(_scan(c, tps, wanted), SCAN_TIMEOUT_S)
    except TimeoutError:
        raise BrokerUnavailable(f"timed out scanning {topic} for record {record_id}") from None
    finally:
        await c.stop()
    if not found:
        return None
    names: dict[str, None] = {}  # delivered several times (a wider grant's backfill): all
    for rec in found:
        sid, _ = wire.unframe(rec.value)
        await registry.resolve(sid)
        names.update(dict.fromkeys(f["name"] for f in registry.schema(sid)["fields"]))
    last = found[-1]
    return Receipt(topic, last.partition, last.offset, tuple(names))


async def _scan(c: Any, tps: list[Any], wanted: bytes) -> list[Any]:
    """Every record whose ``gov-record-id`` header is ``wanted`` (headers only, no decode)."""
    end = kafka.LogEnd(c, await c.end_offsets(tps))  # where each partition ends now
    found: list[Any] = []
    while pending := await end.pending(c, tps):
        batch = await c.getmany(*pending, timeout_ms=200)
        end.observe(c, pending)
        for records in batch.values():
            for rec in records:
                if rec.value is not None and (RECORD_ID, wanted) in (rec.headers or ()):
                    found.append(rec)
    return found


class Session(Protocol):
    """What the desk needs of a department's session (:class:`~exchange.clients.department.Department`)."""

    department: str
    bus: Connection
    signing_key: Ed25519PrivateKey | None

    @property
    def state(self) -> ControlState: ...

    @property
    def producer(self) -> Any: ...

    async def refresh(self) -> ControlState: ...

    async def audit(self, action: Action, decision: str, **facts: Any) -> None: ...

    def refusals_audited(
        self, command: str, facts: dict[str, Any]
    ) -> AbstractAsyncContextManager[None]: ...


class DisputeDesk:
    """The dispute commands of one department's session (see the module docstring)."""

    def __init__(self, department: Session, *, answer_within: int = DEFAULT_ANSWER_WITHIN):
        self.dept = department
        self.answer_within = answer_within

    @property
    def name(self) -> str:
        return self.dept.department

    async def book(self) -> DisputeBook:
        """The dispute book as it is now (the catalog caught up first)."""
        state = await self.dept.refresh()
        return await read_book(self.dept.bus, state.catalog)

    async def _submit(self, event: DisputeEvent, book: DisputeBook) -> DisputeBook:
        """Sign, check, write and read back one dispute command; the book after it."""
        key = self.dept.signing_key
        if key is not None:
            event = dataclasses.replace(event, signature=signing.sign(key, event.signed_fields()))
        state = self.dept.state
        book.check(event, state.catalog)  # raises CommandRefused
        producer = self.dept.producer
        await state.registry.register(producer, DISPUTE_EVENT)
        await producer.send_and_wait(
            topics.DISPUTES,
            key=event.dispute_id.encode(),
            value=DISPUTE_CODEC.encode(event.to_avro()),
        )
        after = await read_book(self.dept.bus, state.catalog)
        if event.event_id in after.refused:
            raise CommandRefused(after.refused[event.event_id])
        if event.event_id not in after.accepted:
            raise ExchangeError(f"dispute command {event.event_id} was written but is not visible")
        return after

    async def open(
        self, resource: str, record_id: str, fields: Iterable[str], *, reason: str
    ) -> str:
        """Open a dispute about ``fields`` of a record received; returns the dispute id."""
        dispute_id = new_dispute_id()
        wanted = tuple(dict.fromkeys(fields))
        facts: dict[str, Any] = {
            "resource": resource,
            "consumer": self.name,
            "details": {"dispute_id": dispute_id, "record_id": record_id, "fields": wanted},
        }
        async with self.dept.refusals_audited("dispute", facts):
            command_limits.check_id(resource, "resource")
            command_limits.check_id(record_id, "record id")
            command_limits.check_fields(wanted)
            book = await self.book()
            res = self.dept.state.catalog.resource(resource)
            if res.provider == self.name:
                raise CommandRefused(
                    f"{self.name!r} provides {resource!r}: a provider corrects its own data"
                )
            receipt = await find_received(
                self.dept.bus, self.dept.state.registry, self.name, resource, record_id
            )
            if receipt is None:
                raise CommandRefused(
                    f"department {self.name!r} never received record {record_id} of "
                    f"{resource!r}: it is not on {topics.delivery(self.name, resource)} "
                    "(a department may dispute only records delivered to it, within the "
                    "delivery topic's retention)"
                )
            event = DisputeEvent(
                kind=DisputeKind.OPENED,
                actor=self.name,
                dispute_id=dispute_id,
                resource=resource,
                record_id=record_id,
                fields=wanted,
                received_fields=receipt.fields,
                delivery=receipt.where,
                answer_within=self.answer_within,
                reason=reason,
            )
            after = await self._submit(event, book)
        dispute = after.disputes[dispute_id]
        await self.dept.audit(
            Action.DISPUTE_OPENED,
            Decision.OPENED,
            resource=resource,
            consumer=self.name,
            reason=reason,
            details=detail_map(**_facts(dispute), event_id=event.event_id),
        )
        return dispute_id

    async def _dispute(self, dispute_id: str, facts: dict[str, Any]) -> DisputeBook:
        command_limits.check_id(dispute_id, "dispute id")
        book = await self.book()
        dispute = book.disputes.get(dispute_id)
        if dispute is None:
            raise CommandRefused(f"unknown dispute {dispute_id!r}")
        facts.update(resource=dispute.resource, consumer=dispute.consumer)
        return book

    async def answer(self, dispute_id: str, answer: Answer, *, reason: str) -> Dispute:
        """Answer a dispute (provider only): the data was corrected, or is confirmed as it is."""
        facts: dict[str, Any] = {"details": {"dispute_id": dispute_id, "answer": answer.value}}
        async with self.dept.refusals_audited("answer-dispute", facts):
            book = await self._dispute(dispute_id, facts)
            event = DisputeEvent(
                kind=DisputeKind.ANSWERED,
                actor=self.name,
                dispute_id=dispute_id,
                resource=book.disputes[dispute_id].resource,
                answer=answer.value,
                reason=reason,
            )
            after = await self._submit(event, book)
        dispute = after.disputes[dispute_id]
        await self.dept.audit(
            Action.DISPUTE_ANSWERED,
            Decision.CORRECTED if answer is Answer.CORRECTED else Decision.CONFIRMED,
            resource=dispute.resource,
            consumer=dispute.consumer,
            reason=reason,
            details=detail_map(**_facts(dispute), event_id=event.event_id),
        )
        return dispute

    async def correct(
        self, dispute_id: str, record: Mapping[str, Any] | Path, *, reason: str | None = None
    ) -> Dispute:
        """Publish the corrected record (provider only) and close the dispute with a link to it.

        ``record``: the record (Python form), or a JSON Lines file holding exactly one.
        The record carries the ``gov-corrects`` header on its way to every consumer
        whose view it belongs to. The dispute is checked before the record is sent; the
        record is sent before the closing event is written (a record is never linked
        that is not on the bus).
        """
        facts: dict[str, Any] = {"details": {"dispute_id": dispute_id}}
        async with self.dept.refusals_audited("correct", facts):
            book = await self._dispute(dispute_id, facts)
            resource = book.disputes[dispute_id].resource
            catalog = self.dept.state.catalog
            async with Publisher(self.dept.bus, catalog, self.name) as pub:
                prepared = _prepare_one(pub, resource, record)
                event = DisputeEvent(
                    kind=DisputeKind.CORRECTED,
                    actor=self.name,
                    dispute_id=dispute_id,
                    resource=resource,
                    corrected_record_id=prepared.record_id,
                    reason=reason,
                )
                book.check(event, catalog)  # before the record leaves
                headers = [*prepared.headers, (CORRECTS_HEADER, dispute_id.encode())]
                await pub.send([dataclasses.replace(prepared, headers=headers)])
            after = await self._submit(event, book)
        dispute = after.disputes[dispute_id]
        await self.dept.audit(
            Action.DISPUTE_CLOSED,
            Decision.CLOSED,
            resource=dispute.resource,
            consumer=dispute.consumer,
            reason=reason,
            details=detail_map(**_facts(dispute), event_id=event.event_id),
        )
        return dispute

    async def listing(self, *, status: str | None = None) -> list[Dispute]:
        """Disputes opened by this department or about its resources, newest first.

        ``status``: open, answered (closed ones included) or overdue (open past its due day).
        """
        book = await self.book()
        at = now()
        out = []
        for d in book.involving(self.name):
            if status == "overdue" and not (d.status is DisputeStatus.OPEN and d.overdue(at)):
                continue
            if status == "open" and d.status is not DisputeStatus.OPEN:
                continue
            if status == "answered" and d.status is DisputeStatus.OPEN:
                continue
            out.append(d)
        return out


def _prepare_one(pub: Publisher, resource: str, record: Mapping[str, Any] | Path) -> Prepared:
    """The corrected record, checked against the resource's schema."""
    try:
        if not isinstance(record, Path):
            return pub.prepare(resource, record)
        prepared = pub.prepare_json_lines(resource, record)
    except ExchangeError as exc:
        raise CommandRefused(f"the corrected record is refused: {exc}") from None
    if len(prepared) != 1:
        raise CommandRefused(
            f"{record}: a correction is one record; the file holds {len(prepared)}"
        )
    return prepared[0]


def _facts(d: Dispute) -> dict[str, Any]:
    """What every dispute audit entry says of it: ids, field names and dates, never a value."""
    return {
        "dispute_id": d.id,
        "record_id": d.record_id,
        "fields": d.fields,
        "opened_at": d.opened_at,
        "due": d.due(),
        "answer_within": d.answer_within,
        "delivery": d.delivery,
        "answer": d.answer.value if d.answer else None,
        "answered_in_time": d.answered_in_time() if d.answered_at else None,
        "corrected_record_id": d.corrected_record_id,
    }
