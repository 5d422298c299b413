"""The dispute book (疑义校核): every dispute, replayed from ``gov.ctl.disputes``.

Like the grant book (:mod:`exchange.sharing.grants`), the :class:`DisputeBook`
checks each :class:`~exchange.sharing.dispute_records.DisputeEvent` against
the catalog in force and the book itself before it changes anything, whether
the event came from our own API or was written to the topic by hand:

* only a consumer of the resource opens a dispute (never its provider), about
  a record it received (the event names where: its delivery topic, partition
  and offset) and only fields of that record as it received them;
* only the provider answers (corrected or confirmed, with a reason), once;
* only the provider links the corrected record, to a dispute it did not
  answer "confirmed".

Checks depend only on the event and the state before it, so every replay
gives the same book. Whether the record really is at the place the opening
event names is checked by the disputing department's session, which alone
may read its delivery topic (:mod:`exchange.clients.disputes`); the event is
signed with its key where the catalog registers one, so the claim is its own.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from exchange.bus import topics
from exchange.catalog import signing
from exchange.catalog.model import Catalog, ShareType
from exchange.errors import CommandRefused, ExchangeError
from exchange.sharing import limits
from exchange.sharing.dispute_records import (
    DISPUTE_ID,
    MAX_ANSWER_WITHIN,
    RECORD_ID,
    Answer,
    Dispute,
    DisputeEvent,
    DisputeKind,
    DisputeStatus,
)
from exchange.sharing.records import MAX_TEXT


def _refuse(message: str, **facts: Any) -> CommandRefused:
    return CommandRefused(message, **facts)


def _reason(value: str | None, what: str) -> str:
    if value is None or not value.strip():
        raise _refuse(f"{what} is required (--reason)")
    if len(value) > MAX_TEXT:
        raise _refuse(f"{what} is {len(value)} characters long; at most {MAX_TEXT} are allowed")
    limits.check_text(value, what, limit=MAX_TEXT)
    return value


class DisputeBook:
    """Every dispute and its answer, replayed from events."""

    def __init__(self) -> None:
        self.disputes: dict[str, Dispute] = {}
        self.accepted: set[str] = set()  # event ids
        self.refused: dict[str, str] = {}  # event id -> reason

    def involving(self, department: str) -> list[Dispute]:
        """Disputes opened by ``department`` or about its resources, newest first."""
        return sorted(
            (d for d in self.disputes.values() if department in (d.consumer, d.provider)),
            key=lambda d: d.opened_at,
            reverse=True,
        )

    def check(self, ev: DisputeEvent, catalog: Catalog) -> None:
        """Raise :class:`CommandRefused` with the reason if ``ev`` breaks a rule."""
        if ev.event_id in self.accepted or ev.event_id in self.refused:
            raise _refuse(f"event {ev.event_id} was already processed")
        try:
            limits.check_id(ev.event_id, "event id")
            limits.check_id(ev.actor, "department")
            actor = catalog.department(ev.actor)
            catalog.resource(ev.resource)
        except ExchangeError as exc:
            raise _refuse(str(exc)) from None
        if not DISPUTE_ID.match(ev.dispute_id):
            raise _refuse(f"dispute id {ev.dispute_id!r} is not of the form DS-YYYYMMDD-xxxxxxxx")
        if actor.public_key is not None and not signing.verify(
            actor.public_key, ev.signed_fields(), ev.signature
        ):
            raise _refuse(
                f"the command is not signed with {ev.actor!r}'s registered key"
                + (" (no signature)" if not ev.signature else " (the signature does not verify)")
            )
        {
            DisputeKind.OPENED: self._check_open,
            DisputeKind.ANSWERED: self._check_answer,
            DisputeKind.CORRECTED: self._check_correction,
        }[ev.kind](ev, catalog)

    def apply(self, ev: DisputeEvent, catalog: Catalog) -> str | None:
        """Apply an event; returns the refusal reason, or None if it was accepted."""
        try:
            self.check(ev, catalog)
        except CommandRefused as exc:
            if ev.event_id not in self.accepted:
                self.refused[ev.event_id] = exc.message
            return exc.message
        self._mutate(ev, catalog)
        self.accepted.add(ev.event_id)
        return None

    def _check_open(self, ev: DisputeEvent, catalog: Catalog) -> None:
        res = catalog.resource(ev.resource)
        if ev.actor == res.provider:
            raise _refuse(
                f"{ev.actor!r} provides {res.id!r}: a provider corrects its own data, "
                "it does not dispute it"
            )
        if ev.dispute_id in self.disputes:
            raise _refuse(f"dispute id {ev.dispute_id} is already used")
        if ev.record_id is None or not RECORD_ID.match(ev.record_id):
            raise _refuse(
                f"record id {ev.record_id!r} is not a gov-record-id (32 hexadecimal characters)"
            )
        if not ev.fields:
            raise _refuse("name the disputed fields (--field)")
        for name in (*ev.fields, *ev.received_fields):
            limits.check_id(name, "field")
        if ev.answer_within is None or not 1 <= ev.answer_within <= MAX_ANSWER_WITHIN:
            raise _refuse(
                f"answer period {ev.answer_within!r} working days: from 1 to {MAX_ANSWER_WITHIN}"
            )
        expected = topics.delivery(ev.actor, res.id)
        if not ev.delivery or ev.delivery.split(" ")[0] != expected:
            raise _refuse(
                f"a dispute names where {ev.actor!r} received record {ev.record_id} "
                f"(on {expected}); it names {ev.delivery!r}"
            )
        for name in ev.received_fields:
            if name not in res.field_names():
                raise _refuse(f"{name!r} is not a field of {res.id!r}")
            if res.field(name).share_type is ShareType.NOT_SHARED:
                raise _refuse(
                    f"field {name!r} of {res.id!r} is not shared (不予共享): "
                    f"{ev.actor!r} cannot have received it"
                )
        missing = [f for f in ev.fields if f not in ev.received_fields]
        if missing:
            raise _refuse(
                f"{ev.actor!r} did not receive field(s) {', '.join(missing)} of record "
                f"{ev.record_id} of {res.id!r}: it may dispute only fields it received "
                f"({', '.join(ev.received_fields) or 'none'})"
            )
        _reason(ev.reason, "the reason for the dispute (疑义说明)")

    def _open_dispute(self, ev: DisputeEvent, catalog: Catalog) -> Dispute:
        dispute = self.disputes.get(ev.dispute_id)
        if dispute is None or dispute.resource != ev.resource:
            raise _refuse(f"unknown dispute {ev.dispute_id!r} about {ev.resource!r}")
        provider = catalog.resource(ev.resource).provider
        if ev.actor != provider:
            raise _refuse(
                f"only the provider of {ev.resource!r} ({provider}) may answer dispute "
                f"{ev.dispute_id} or link its correction; {ev.actor!r} may not"
            )
        return dispute

    def _check_answer(self, ev: DisputeEvent, catalog: Catalog) -> None:
        dispute = self._open_dispute(ev, catalog)
        if dispute.status is not DisputeStatus.OPEN:
            raise _refuse(f"dispute {dispute.id} was already answered ({dispute.answer})")
        if ev.answer not in [a.value for a in Answer]:
            raise _refuse(f"answer {ev.answer!r}: corrected or confirmed")
        _reason(ev.reason, "the reason of the answer (校核结果)")

    def _check_correction(self, ev: DisputeEvent, catalog: Catalog) -> None:
        dispute = self._open_dispute(ev, catalog)
        if dispute.status is DisputeStatus.CLOSED:
            raise _refuse(
                f"dispute {dispute.id} is already closed by record {dispute.corrected_record_id}"
            )
        if dispute.answer is Answer.CONFIRMED:
            raise _refuse(
                f"dispute {dispute.id} was answered 'confirmed' (the data is right): "
                "no correction can close it"
            )
        if ev.corrected_record_id is None or not RECORD_ID.match(ev.corrected_record_id):
            raise _refuse(f"corrected record id {ev.corrected_record_id!r} is not a gov-record-id")

    def _mutate(self, ev: DisputeEvent, catalog: Catalog) -> None:
        if ev.kind is DisputeKind.OPENED:
            assert ev.record_id
            assert ev.reason
            assert ev.delivery
            assert ev.answer_within
            self.disputes[ev.dispute_id] = Dispute(
                id=ev.dispute_id,
                consumer=ev.actor,
                provider=catalog.resource(ev.resource).provider,
                resource=ev.resource,
                record_id=ev.record_id,
                fields=ev.fields,
                reason=ev.reason,
                opened_at=ev.at,
                answer_within=ev.answer_within,
                delivery=ev.delivery,
            )
            return
        dispute = self.disputes[ev.dispute_id]
        if ev.kind is DisputeKind.ANSWERED:
            assert ev.answer
            self.disputes[dispute.id] = replace(
                dispute,
                status=DisputeStatus.ANSWERED,
                answer=Answer(ev.answer),
                answer_reason=ev.reason,
                answered_at=ev.at,
            )
            return
        # a correction published before any answer answers "corrected" as it closes
        self.disputes[dispute.id] = replace(
            dispute,
            status=DisputeStatus.CLOSED,
            answer=Answer.CORRECTED,
            answer_reason=dispute.answer_reason or ev.reason,
            answered_at=dispute.answered_at or ev.at,
            corrected_record_id=ev.corrected_record_id,
            corrected_at=ev.at,
        )


def replay(events: Iterable[DisputeEvent], catalog: Catalog) -> DisputeBook:
    """The book of ``events`` applied in order under ``catalog``."""
    book = DisputeBook()
    for ev in events:
        book.apply(ev, catalog)
    return book
