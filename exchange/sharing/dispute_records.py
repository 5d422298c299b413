"""The records of data disputes (疑义校核): commands on ``gov.ctl.disputes`` and what they make.

The interim measures on sharing government information resources
(国发〔2016〕51号) oblige a department that doubts shared data, or finds it
wrong, to report it to the provider, and the provider to check and correct
it in time. A :class:`DisputeEvent` is one step of that loop: a consumer
opens a dispute about fields of one record it received, the provider
answers (corrected or confirmed), and the corrected record, once published,
closes it. :class:`Dispute` is what :class:`~exchange.sharing.disputes.DisputeBook`
makes of them. A dispute names a record by its id (``gov-record-id``, a hash
of the record) and fields by name: never a value.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from exchange import beijing, workdays
from exchange.avro.control_records import ControlCodec
from exchange.sharing.records import new_id, now

#: working days the provider has to answer, unless the bus is configured otherwise
DEFAULT_ANSWER_WITHIN = 5
#: the widest answer period a dispute may be opened with (a setting, but a bounded one)
MAX_ANSWER_WITHIN = 60
#: the header a corrected record carries on its source and delivery topics
CORRECTS_HEADER = "gov-corrects"
DISPUTE_ID = re.compile(r"^DS-\d{8}-[0-9a-f]{8}$")
RECORD_ID = re.compile(r"^[0-9a-f]{32}$")


class DisputeKind(StrEnum):
    OPENED = "OPENED"
    ANSWERED = "ANSWERED"
    CORRECTED = "CORRECTED"


class Answer(StrEnum):
    """The provider's answer after checking (校核)."""

    CORRECTED = "corrected"  # the data was wrong; the corrected record follows
    CONFIRMED = "confirmed"  # the data is right as it is


class DisputeStatus(StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    #: answered "corrected", and the corrected record was published and linked
    CLOSED = "closed"


def _opt(name: str, doc: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "type": ["null", kind], "default": None, "doc": doc}


DISPUTE_EVENT: dict[str, Any] = {
    "type": "record",
    "name": "DisputeEvent",
    "namespace": "gov.exchange.control",
    "doc": "疑义校核 A dispute opened about fields of a record, its answer, or its correction. "
    "Names the record by id and the fields by name; never carries a value.",
    "fields": [
        {"name": "event_id", "type": "string", "doc": "unique id of this command"},
        {
            "name": "kind",
            "type": {
                "type": "enum",
                "name": "DisputeEventKind",
                "symbols": [k.value for k in DisputeKind],
            },
            "doc": "what the command does",
        },
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "when"},
        {"name": "actor", "type": "string", "doc": "department acting"},
        {"name": "dispute_id", "type": "string", "doc": "the dispute"},
        {"name": "resource", "type": "string", "doc": "resource of the disputed record"},
        _opt("record_id", "gov-record-id of the disputed record (opening)"),
        {
            "name": "fields",
            "type": {"type": "array", "items": "string"},
            "default": [],
            "doc": "names of the disputed fields (opening)",
        },
        {
            "name": "received_fields",
            "type": {"type": "array", "items": "string"},
            "default": [],
            "doc": "fields of the record as the disputing department received it (opening)",
        },
        _opt("delivery", "where it received the record: 'topic partition:offset' (opening)"),
        _opt("answer_within", "working days the provider has to answer (opening)", "int"),
        _opt("answer", "corrected or confirmed (answer)"),
        _opt("corrected_record_id", "gov-record-id of the corrected record (correction)"),
        _opt("reason", "why it is disputed, or the provider's answer"),
        _opt("signature", "Ed25519 signature of the acting department (base64)"),
    ],
}


DISPUTE_CODEC = ControlCodec(DISPUTE_EVENT)


@dataclass(frozen=True)
class DisputeEvent:
    kind: DisputeKind
    actor: str
    dispute_id: str
    resource: str
    at: dt.datetime = field(default_factory=now)
    event_id: str = field(default_factory=lambda: new_id("DE"))
    record_id: str | None = None
    fields: tuple[str, ...] = ()
    received_fields: tuple[str, ...] = ()
    delivery: str | None = None
    answer_within: int | None = None
    answer: str | None = None
    corrected_record_id: str | None = None
    reason: str | None = None
    signature: str | None = None

    def to_avro(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["kind"] = self.kind.value
        d["fields"] = list(self.fields)
        d["received_fields"] = list(self.received_fields)
        return d

    def signed_fields(self) -> dict[str, Any]:
        """What the signature covers: every other field."""
        d = self.to_avro()
        del d["signature"]
        return d

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> DisputeEvent:
        d = dict(d)
        d["kind"] = DisputeKind(d["kind"])
        d["fields"] = tuple(d["fields"])
        d["received_fields"] = tuple(d["received_fields"])
        return cls(**d)


def new_dispute_id(at: dt.datetime | None = None) -> str:
    return new_id("DS", at)


@dataclass(frozen=True)
class Dispute:
    id: str
    consumer: str
    provider: str
    resource: str
    record_id: str
    fields: tuple[str, ...]
    reason: str
    opened_at: dt.datetime
    answer_within: int
    delivery: str
    status: DisputeStatus = DisputeStatus.OPEN
    answer: Answer | None = None
    answer_reason: str | None = None
    answered_at: dt.datetime | None = None
    corrected_record_id: str | None = None
    corrected_at: dt.datetime | None = None

    def due(self) -> dt.date:
        """Last day to answer: ``answer_within`` working days after the (Beijing) day opened."""
        return workdays.deadline(workdays.china_date(self.opened_at), self.answer_within).day

    def overdue(self, at: dt.datetime) -> bool:
        """Unanswered after its working days (or answered after them)."""
        end = self.answered_at or at
        return workdays.china_date(end) > self.due()

    def answered_in_time(self) -> bool:
        return self.answered_at is not None and not self.overdue(self.answered_at)

    def shown_status(self, at: dt.datetime) -> str:
        if self.status is DisputeStatus.OPEN:
            return "open (overdue)" if self.overdue(at) else "open"
        late = " (late)" if not self.answered_in_time() else ""
        if self.status is DisputeStatus.CLOSED:
            return f"closed: corrected by record {self.corrected_record_id}{late}"
        assert self.answer is not None
        if self.answer is Answer.CORRECTED:
            return f"answered: corrected, awaiting the corrected record{late}"
        return f"answered: {self.answer.value}{late}"

    def to_json(self, at: dt.datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "consumer": self.consumer,
            "provider": self.provider,
            "resource": self.resource,
            "record_id": self.record_id,
            "fields": ",".join(self.fields),
            "reason": self.reason,
            "opened_at": beijing.shown(self.opened_at),
            "due": self.due().isoformat(),
            "status": self.shown_status(at),
            "answer": self.answer.value if self.answer else "",
            "answer_reason": self.answer_reason or "",
            "answered_at": beijing.shown(self.answered_at) if self.answered_at else "",
            "corrected_record_id": self.corrected_record_id or "",
            "delivery": self.delivery,
        }
