"""The records of the sharing workflow (共享): commands, applications and grants.

A :class:`GrantEvent` is one command on ``gov.ctl.grants`` (subscribe, apply,
approve, reject, revoke); :class:`Application` and :class:`Grant` are what the
:class:`~exchange.sharing.grants.GrantBook` makes of them. Plain data: the
rules that decide whether an event is accepted live in
:mod:`exchange.sharing.limits` (what a command may carry) and
:mod:`exchange.sharing.grants` (who may do what).
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from exchange import beijing, workdays

MAX_TEXT = 2000


class GrantKind(StrEnum):
    """What a grant lets its consumer learn."""

    #: the granted fields, delivered (subscription) or answered by key (interface)
    DATA = "data"
    #: 核验 verification only: the consumer sends values of the granted fields and learns
    #: whether a record matches them, nothing else (no field is delivered)
    VERIFY = "verify"


#: the most a per-second or daily quota may be (a larger one is no quota at all)
MAX_QUOTA = 1_000_000_000
#: fields added to commands after signatures existed: left out of what is signed while
#: unset, so that every command signed before them still verifies
LATER_FIELDS = ("grant_kind", "quota_per_second", "quota_per_day", "at_rest")


class AtRest(StrEnum):
    """What the consumer does with the rows it holds when a grant is revoked or expires
    (使用完毕 data disposal: a common condition of 有条件共享)."""

    #: delete every row received under the grant (the default)
    DELETE = "delete"
    #: keep the rows, frozen (no longer updated) and marked as retracted
    KEEP_FROZEN = "keep-frozen"


class EventKind(StrEnum):
    SUBSCRIBED = "SUBSCRIBED"
    APPLIED = "APPLIED"
    APPROVED = "APPROVED"
    REJECTED = "REJECTED"
    REVOKED = "REVOKED"


GRANT_EVENT: dict[str, Any] = {
    "type": "record",
    "name": "GrantEvent",
    "namespace": "gov.exchange.control",
    "doc": "共享申请与授权 A subscription, application, approval, rejection or revocation.",
    "fields": [
        {"name": "event_id", "type": "string", "doc": "unique id of this command"},
        {
            "name": "kind",
            "type": {
                "type": "enum",
                "name": "GrantEventKind",
                "symbols": [k.value for k in EventKind],
            },
            "doc": "what the command does",
        },
        {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "when"},
        {"name": "actor", "type": "string", "doc": "department acting"},
        {"name": "resource", "type": "string", "doc": "resource concerned"},
        {"name": "consumer", "type": "string", "doc": "department receiving the data"},
        {
            "name": "application_id",
            "type": ["null", "string"],
            "default": None,
            "doc": "application",
        },
        {"name": "grant_id", "type": ["null", "string"], "default": None, "doc": "grant"},
        {
            "name": "fields",
            "type": {"type": "array", "items": "string"},
            "default": [],
            "doc": "fields",
        },
        {"name": "purpose", "type": ["null", "string"], "default": None, "doc": "purpose of use"},
        {"name": "legal_basis", "type": ["null", "string"], "default": None, "doc": "legal basis"},
        {
            "name": "row_filter",
            "type": ["null", "string"],
            "default": None,
            "doc": "CEL row filter",
        },
        {
            "name": "masks",
            "type": {"type": "map", "values": "string"},
            "default": {},
            "doc": "masks",
        },
        {
            "name": "valid_until",
            "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
            "default": None,
            "doc": "end of the grant",
        },
        {"name": "reason", "type": ["null", "string"], "default": None, "doc": "reason given"},
        {
            "name": "signature",
            "type": ["null", "string"],
            "default": None,
            "doc": "Ed25519 signature of the acting department (base64)",
        },
        {
            "name": "grant_kind",
            "type": ["null", "string"],
            "default": None,
            "doc": "what an application or approval is for: data (default) or verify (核验)",
        },
        {
            "name": "quota_per_second",
            "type": ["null", "long"],
            "default": None,
            "doc": "an approval's limit on requests per second by key (接口调用)",
        },
        {
            "name": "quota_per_day",
            "type": ["null", "long"],
            "default": None,
            "doc": "an approval's limit on requests per day (Beijing time) by key",
        },
        {
            "name": "at_rest",
            "type": ["null", "string"],
            "default": None,
            "doc": "an approval's rule for the rows its consumer holds once the grant is revoked "
            "or expires: delete (default) or keep-frozen",
        },
    ],
}


#: the grant event as written before verification grants and quotas; still decoded
GRANT_EVENT_V1: dict[str, Any] = {
    **GRANT_EVENT,
    "fields": [f for f in GRANT_EVENT["fields"] if f["name"] not in LATER_FIELDS],
}
#: the grant event as written before approvals carried their rule for data at rest
GRANT_EVENT_V2: dict[str, Any] = {
    **GRANT_EVENT,
    "fields": [f for f in GRANT_EVENT["fields"] if f["name"] != "at_rest"],
}


def new_id(prefix: str, at: dt.datetime | None = None) -> str:
    """``PREFIX-YYYYMMDD-xxxxxxxx``: the Beijing date it was made (see :mod:`exchange.beijing`)."""
    return f"{prefix}-{beijing.id_date(at)}-{secrets.token_hex(4)}"


def now() -> dt.datetime:
    """The current time at Avro timestamp-millis precision."""
    t = dt.datetime.now(dt.UTC)
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


@dataclass(frozen=True)
class GrantEvent:
    kind: EventKind
    actor: str
    resource: str
    consumer: str
    at: dt.datetime = field(default_factory=now)
    event_id: str = field(default_factory=lambda: new_id("EV"))
    application_id: str | None = None
    grant_id: str | None = None
    fields: tuple[str, ...] = ()
    purpose: str | None = None
    legal_basis: str | None = None
    row_filter: str | None = None
    masks: dict[str, str] = field(default_factory=dict)
    valid_until: dt.datetime | None = None
    reason: str | None = None
    signature: str | None = None
    #: :class:`GrantKind` value of an application or approval (None: data)
    grant_kind: str | None = None
    quota_per_second: int | None = None
    quota_per_day: int | None = None
    #: :class:`AtRest` value of an approval (None: delete)
    at_rest: str | None = None

    def to_avro(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["kind"] = self.kind.value
        d["fields"] = list(self.fields)
        return d

    def signed_fields(self) -> dict[str, Any]:
        """What the signature covers: every field, those of :data:`LATER_FIELDS` only if set."""
        d = self.to_avro()
        for name in LATER_FIELDS:
            if d[name] is None:
                del d[name]
        return d

    @property
    def for_verification(self) -> bool:
        return self.grant_kind == GrantKind.VERIFY.value

    @classmethod
    def from_avro(cls, d: dict[str, Any]) -> GrantEvent:
        d = dict(d)
        d["kind"] = EventKind(d["kind"])
        d["fields"] = tuple(d["fields"])
        return cls(**d)


class AppStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Application:
    id: str
    consumer: str
    resource: str
    fields: tuple[str, ...]
    purpose: str
    legal_basis: str | None
    applied_at: dt.datetime
    status: AppStatus = AppStatus.PENDING
    answered_at: dt.datetime | None = None
    reason: str | None = None
    grant_id: str | None = None
    kind: GrantKind = GrantKind.DATA

    def due(self) -> dt.date:
        """Last day of the answer period, on the Beijing calendar."""
        return workdays.due_date(self.applied_at)

    def answer_facts(self, answered: dt.datetime) -> dict[str, Any]:
        """What the audit entry of an answer (approval, rejection) says of its timeliness."""
        facts = workdays.due_facts(self.applied_at)  # due, and calendar_missing if so
        due = facts["due"]
        return {
            "applied_at": self.applied_at,
            **facts,
            "working_days_taken": workdays.working_days_between(
                workdays.china_date(self.applied_at), workdays.china_date(answered)
            ),
            "within_10_working_days": workdays.china_date(answered) <= due,
        }

    def overdue(self, at: dt.datetime) -> bool:
        """Unanswered after 10 working days (or answered after them)."""
        end = self.answered_at or at
        return workdays.china_date(end) > self.due()


@dataclass(frozen=True)
class Grant:
    id: str
    application_id: str
    consumer: str
    resource: str
    fields: tuple[str, ...]
    purpose: str
    row_filter: str | None
    masks: dict[str, str]
    valid_until: dt.datetime | None
    approved_at: dt.datetime
    revoked_at: dt.datetime | None = None
    revoke_reason: str | None = None
    superseded_by: str | None = None
    kind: GrantKind = GrantKind.DATA
    quota_per_second: int | None = None
    quota_per_day: int | None = None
    #: what its consumer does with the rows it holds once the grant is revoked or expires
    at_rest: AtRest = AtRest.DELETE

    @property
    def verify_only(self) -> bool:
        """A 核验 grant: its fields may be compared, never delivered."""
        return self.kind is GrantKind.VERIFY

    def active(self, at: dt.datetime) -> bool:
        return (
            self.revoked_at is None
            and self.superseded_by is None
            and (self.valid_until is None or at < self.valid_until)
        )

    def status(self, at: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.superseded_by is not None:
            return "superseded"
        if self.valid_until is not None and at >= self.valid_until:
            return "expired"
        return "active"
