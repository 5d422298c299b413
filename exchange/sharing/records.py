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
from exchange.sharing import stages
from exchange.sharing.stages import Stage, Step, Window

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
    #: 符合性审查 the data-sharing authority passed an application (forwarded to the provider,
    #: or, for unconditional data, authorised at once) / returned it with a reason
    REVIEW_PASSED = "REVIEW_PASSED"
    REVIEW_RETURNED = "REVIEW_RETURNED"
    #: 共享争议 the consumer contests a refusal; either side's negotiation message; either
    #: side escalates to the authority
    CONTESTED = "CONTESTED"
    NEGOTIATED = "NEGOTIATED"
    ESCALATED = "ESCALATED"
    #: the authority's decision on an escalated dispute: refusal upheld / sharing ordered
    UPHELD = "UPHELD"
    ORDERED = "ORDERED"
    #: the provider appeals an order (recorded; the ordered grant stands)
    APPEALED = "APPEALED"


#: the event kinds of the first two grant event schemas (before the authority's workflow)
FIRST_KINDS = ("SUBSCRIBED", "APPLIED", "APPROVED", "REJECTED", "REVOKED")


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


def _with_kinds(schema: dict[str, Any], kinds: tuple[str, ...]) -> dict[str, Any]:
    """``schema`` with the event kinds ``kinds`` (an earlier vocabulary)."""
    return {
        **schema,
        "fields": [
            {**f, "type": {**f["type"], "symbols": list(kinds)}} if f["name"] == "kind" else f
            for f in schema["fields"]
        ],
    }


#: the grant event as written before verification grants and quotas; still decoded
GRANT_EVENT_V1: dict[str, Any] = _with_kinds(
    {**GRANT_EVENT, "fields": [f for f in GRANT_EVENT["fields"] if f["name"] not in LATER_FIELDS]},
    FIRST_KINDS,
)
#: the grant event as written before approvals carried their rule for data at rest and
#: before the authority's workflow (review, refusals contested); still decoded
GRANT_EVENT_V2: dict[str, Any] = _with_kinds(
    {**GRANT_EVENT, "fields": [f for f in GRANT_EVENT["fields"] if f["name"] != "at_rest"]},
    FIRST_KINDS,
)


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
    #: 退回 returned by the authority's compliance review
    RETURNED = "returned"
    #: 责令共享 sharing ordered by the authority after a dispute
    ORDERED = "ordered"


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
    #: where it is now (:mod:`exchange.sharing.stages`)
    stage: Stage = Stage.ANSWER
    #: working days per timed stage, taken from the catalog in force when it was made
    #: (a later change of the catalog's time limits does not apply to it)
    limits: dict[str, int] = field(default_factory=dict)
    #: every step of its path, oldest first (none for an application recorded before paths)
    steps: tuple[Step, ...] = ()

    def windows(self) -> list[Window]:
        """The stages it went through, each with its start, end and time limit."""
        if self.steps:
            return stages.windows(self.steps, self.limits)
        limit = stages.limit_of(Stage.ANSWER, self.limits)
        return [Window(Stage.ANSWER, self.applied_at, self.answered_at, limit)]

    def current_window(self) -> Window:
        """The last of :meth:`windows` (the stage under way, or the outcome), cheaply."""
        if self.steps:
            return stages.last_window(self.steps, self.limits)
        return self.windows()[-1]

    def _answer_window(self) -> Window | None:
        return next((w for w in self.windows() if w.stage is Stage.ANSWER), None)

    def due(self) -> dt.date:
        """Last day of the stage under way (or of the answer, once answered), Beijing calendar."""
        timed = [w for w in self.windows() if w.limit is not None]
        current = timed[-1] if timed and timed[-1].end is None else None
        window = current or self._answer_window() or timed[-1]
        assert window.due is not None
        return window.due

    def answer_facts(self, answered: dt.datetime) -> dict[str, Any]:
        """What the audit entry of an answer (approval, rejection) says of its timeliness."""
        window = self._answer_window()
        start = window.start if window else self.applied_at
        within = stages.limit_of(Stage.ANSWER, self.limits) or workdays.ANSWER_WITHIN_WORKING_DAYS
        facts = workdays.due_facts(start, within)  # due, and calendar_missing if so
        in_time = workdays.china_date(answered) <= facts["due"]
        return {
            "applied_at": self.applied_at,
            **({"forwarded_at": start} if start != self.applied_at else {}),
            **facts,
            "time_limit_working_days": within,
            "working_days_taken": workdays.working_days_between(
                workdays.china_date(start), workdays.china_date(answered)
            ),
            "within_time_limit": in_time,
            # the name of this fact before time limits were settings (the 10 of 2016)
            "within_10_working_days": in_time,
        }

    def overdue(self, at: dt.datetime) -> bool:
        """A stage took longer than its time limit (still under way, or closed late)."""
        return any(w.overdue(at) for w in self.windows())

    def overdue_stage(self, at: dt.datetime) -> Window | None:
        """The stage under way, if it is past its due date at ``at``."""
        last = self.current_window()
        return last if last.end is None and last.overdue(at) else None

    def path(self) -> list[dict[str, Any]]:
        """applied → reviewed → answered → contested → decided: every step, with dates."""
        return [s.to_json() for s in self.steps]


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
    #: 责令共享: the data-sharing authority that ordered this grant (None: the provider's)
    ordered_by: str | None = None

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
