"""One audit entry: its Avro schema, its actions and the hash that chains it.

An entry records a decision, never data: ids, offsets, counts and field
names, not the values of any record. Each entry names the writer (one
process run) that wrote it and its place in that writer's chain: ``seq``
counts from 0 and ``prev_hash`` is the hash of the writer's entry before it
(:data:`GENESIS_HASH` for seq 0).

``hash`` is the SHA-256 of :meth:`AuditEntry.canonical`: the UTF-8 JSON of
every other field, keys sorted, no whitespace, ``at`` as epoch
milliseconds. It depends on the values only, not on the Avro encoding, so
any tool can recompute it from an exported entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from exchange import beijing
from exchange.audit.entry_wire import EntryWriter
from exchange.avro import wire
from exchange.avro.control_records import ControlCodec
from exchange.avro.jsoncodec import CHINA_TZ

GENESIS_HASH = "0" * 64
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_REASON = 1000


class Action(StrEnum):
    """What happened: the vocabulary of the log. The README's table "Audit actions" says,
    for each, when it is written and which fields are set; every refusal, whatever its
    action, has the decision ``denied`` (:data:`REFUSALS`)."""

    SUBSCRIPTION_GRANTED = "SUBSCRIPTION_GRANTED"
    SUBSCRIPTION_DENIED = "SUBSCRIPTION_DENIED"
    APPLICATION_SUBMITTED = "APPLICATION_SUBMITTED"
    APPLICATION_APPROVED = "APPLICATION_APPROVED"
    APPLICATION_REJECTED = "APPLICATION_REJECTED"
    APPLICATION_OVERDUE = "APPLICATION_OVERDUE"
    GRANT_REVOKED = "GRANT_REVOKED"
    GRANT_EXPIRED = "GRANT_EXPIRED"
    RECORDS_DELIVERED = "RECORDS_DELIVERED"
    RECORD_DEAD_LETTERED = "RECORD_DEAD_LETTERED"
    CATALOG_CHANGED = "CATALOG_CHANGED"
    COMMAND_REFUSED = "COMMAND_REFUSED"
    #: a request to an HTTP service of the bus refused: wrong credentials, a client blocked
    #: after repeated failed logins, a subject or schema not disclosed to the caller
    ACCESS_DENIED = "ACCESS_DENIED"
    #: 接口调用: one request by key to the gateway, whatever its answer
    RECORD_QUERIED = "RECORD_QUERIED"
    #: 核验: one verification request to the gateway, whatever its answer
    RECORD_VERIFIED = "RECORD_VERIFIED"
    #: a writer's signature over the newest entry of its chain (exchange.audit.heads)
    CHAIN_HEAD = "CHAIN_HEAD"
    #: a file connector published a file whole / refused it whole (nothing sent)
    FILE_IMPORTED = "FILE_IMPORTED"
    FILE_IMPORT_REFUSED = "FILE_IMPORT_REFUSED"
    #: a department asked for its full view again (exchange resync)
    RESYNC_REQUESTED = "RESYNC_REQUESTED"
    #: 疑义校核: a consumer disputed fields of a record it received (ids and field names only)
    DISPUTE_OPENED = "DISPUTE_OPENED"
    #: the provider answered a dispute: corrected or confirmed, in time or late
    DISPUTE_ANSWERED = "DISPUTE_ANSWERED"
    #: a dispute still unanswered after its working days (written once per router instance)
    DISPUTE_OVERDUE = "DISPUTE_OVERDUE"
    #: the corrected record was published: the dispute closes with a link to it
    DISPUTE_CLOSED = "DISPUTE_CLOSED"
    #: the corrected record reached one consumer's view (one entry per consumer and record)
    CORRECTION_DELIVERED = "CORRECTION_DELIVERED"
    #: 更新周期: a resource's last publish is older than its declared update cycle allows
    RESOURCE_STALE = "RESOURCE_STALE"
    #: a stale resource was published again within its cycle
    RESOURCE_FRESH = "RESOURCE_FRESH"
    #: 删除: a provider's deletion delivered to one consumer's view (tombstones, per batch)
    RECORD_DELETED = "RECORD_DELETED"
    #: an update moved records out of one consumer's row filter: deleted for that consumer
    RECORD_LEFT_VIEW = "RECORD_LEFT_VIEW"
    #: a revoked or expired grant's retraction sent to its consumer (rows at rest: its rule)
    GRANT_RETRACTED = "GRANT_RETRACTED"
    #: 符合性审查: the data-sharing authority passed (forwarded, or authorised) or returned
    #: an application
    APPLICATION_REVIEWED = "APPLICATION_REVIEWED"
    #: 共享争议 (a refusal contested, not a 疑义 on data): the consumer contested a rejection;
    #: a negotiation message; an escalation to the authority; the authority's decision
    #: (upheld / ordered); the provider's appeal of an order
    APPLICATION_CONTESTED = "APPLICATION_CONTESTED"
    APPLICATION_NEGOTIATED = "APPLICATION_NEGOTIATED"
    APPLICATION_ESCALATED = "APPLICATION_ESCALATED"
    APPLICATION_DECIDED = "APPLICATION_DECIDED"
    ORDER_APPEALED = "ORDER_APPEALED"
    #: a stage of an application reaches its last day unanswered (催办 reminder, by the router)
    APPLICATION_REMINDED = "APPLICATION_REMINDED"


class Decision(StrEnum):
    GRANTED = "granted"
    #: the one word for a refusal by the bus, whatever the action (SUBSCRIPTION_DENIED,
    #: COMMAND_REFUSED, ...): ``audit query --decision denied`` finds them all
    DENIED = "denied"
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    OVERDUE = "overdue"
    REVOKED = "revoked"
    EXPIRED = "expired"
    DELIVERED = "delivered"
    DEAD_LETTERED = "dead_lettered"
    CHANGED = "changed"
    #: a department's file was imported: its records are on the bus
    PUBLISHED = "published"
    #: the word COMMAND_REFUSED entries had before ``denied`` became the only one; kept so
    #: that old entries are read, and found by ``--decision denied``. Never written now
    REFUSED = "refused"
    RESET = "reset"
    #: the gateway answered a request by key with the caller's view of the record
    ANSWERED = "answered"
    #: no record with that key in the caller's view (missing, or outside its row filter)
    NOT_FOUND = "not_found"
    #: over a grant's quota: answered 429
    QUOTA_EXCEEDED = "quota_exceeded"
    #: a verification's values match a record / match none
    MATCHED = "matched"
    NOT_MATCHED = "not_matched"
    SIGNED = "signed"
    REQUESTED = "requested"
    #: a dispute was opened / answered (corrected or confirmed) / closed by a correction
    OPENED = "opened"
    CORRECTED = "corrected"
    CONFIRMED = "confirmed"
    CLOSED = "closed"
    #: a resource's freshness against its update cycle (更新周期)
    STALE = "stale"
    FRESH = "fresh"
    #: a deletion (or a record leaving a view) delivered to a consumer as tombstones
    DELETED = "deleted"
    #: a grant's retraction delivered to its consumer
    RETRACTED = "retracted"
    #: compliance review (符合性审查): forwarded to the provider / authorised at once / returned
    PASSED = "passed"
    AUTHORISED = "authorised"
    RETURNED = "returned"
    CONTESTED = "contested"
    NEGOTIATED = "negotiated"
    ESCALATED = "escalated"
    #: the authority's decision on a dispute: the refusal stands / sharing ordered
    UPHELD = "upheld"
    ORDERED = "ordered"
    APPEALED = "appealed"
    REMINDED = "reminded"


#: every decision that means "refused": ``denied``, and ``refused`` in entries written before
REFUSALS = frozenset({Decision.DENIED.value, Decision.REFUSED.value})


def _opt(name: str, doc: str) -> dict[str, Any]:
    return {"name": name, "type": ["null", "string"], "default": None, "doc": doc}


AUDIT_ENTRY: dict[str, Any] = {
    "type": "record",
    "name": "AuditEntry",
    "namespace": "gov.exchange.audit",
    "doc": "访问日志 One decision of the bus (a subscription, approval, delivery batch, "
    "refusal, ...), chained by hash per writer. Never holds record contents.",
    "fields": [
        {"name": "id", "type": "string", "doc": "unique id: '<writer>#<seq>'"},
        {"name": "writer", "type": "string", "doc": "the process run that wrote it"},
        {"name": "seq", "type": "long", "doc": "place in the writer's chain, from 0"},
        {"name": "prev_hash", "type": "string", "doc": "hash of the writer's previous entry"},
        {"name": "hash", "type": "string", "doc": "SHA-256 of every other field (hex)"},
        {
            "name": "at",
            "type": {"type": "long", "logicalType": "timestamp-millis"},
            "doc": "when the decision was taken",
        },
        {"name": "actor", "type": "string", "doc": "department acting, or 'router' / 'admin'"},
        {
            "name": "action",
            "type": {"type": "enum", "name": "AuditAction", "symbols": [a.value for a in Action]},
            "doc": "what happened",
        },
        _opt("resource", "resource concerned"),
        _opt("consumer", "department receiving (or asking for) the data"),
        _opt("provider", "department providing the resource"),
        {"name": "decision", "type": "string", "doc": "granted, denied, delivered, refused, ..."},
        _opt("reason", "why (a refusal's or revocation's reason)"),
        _opt("grant_id", "grant concerned"),
        _opt("application_id", "application concerned"),
        _opt("purpose", "purpose of use (用途) of the grant or application"),
        {"name": "instance", "type": "string", "doc": "host and process that decided"},
        {
            "name": "details",
            "type": {"type": "map", "values": "string"},
            "default": {},
            "doc": "fields delivered, masks, partition and offsets, counts, ...",
        },
    ],
}


def _without(*actions: Action) -> dict[str, Any]:
    """The entry schema as it was before ``actions`` were added to its vocabulary."""
    symbols = [a.value for a in Action if a not in actions]
    return {
        **AUDIT_ENTRY,
        "fields": [
            {**f, "type": {"type": "enum", "name": "AuditAction", "symbols": symbols}}
            if f["name"] == "action"
            else f
            for f in AUDIT_ENTRY["fields"]
        ],
    }


_GATEWAY = (Action.RECORD_QUERIED, Action.RECORD_VERIFIED)
#: the schemas before ACCESS_DENIED (HTTP refusals), RECORD_QUERIED / RECORD_VERIFIED (the
#: gateway), CHAIN_HEAD (signed chain heads) and FILE_IMPORTED / FILE_IMPORT_REFUSED (file
#: connectors), RESYNC_REQUESTED, the quality duties (disputes, corrections, freshness) and
#: the deletions (RECORD_DELETED, RECORD_LEFT_VIEW, GRANT_RETRACTED) were added to the
#: actions, oldest first: entries written with them are still read
_QUALITY = (  # disputes, corrections and freshness (疑义校核, 更新周期)
    Action.DISPUTE_OPENED,
    Action.DISPUTE_ANSWERED,
    Action.DISPUTE_OVERDUE,
    Action.DISPUTE_CLOSED,
    Action.CORRECTION_DELIVERED,
    Action.RESOURCE_STALE,
    Action.RESOURCE_FRESH,
)
_DELETIONS = (Action.RECORD_DELETED, Action.RECORD_LEFT_VIEW, Action.GRANT_RETRACTED)
#: the actions of the data-sharing authority's workflow (review, refusals contested, reminders)
_AUTHORITY = (
    Action.APPLICATION_REVIEWED,
    Action.APPLICATION_CONTESTED,
    Action.APPLICATION_NEGOTIATED,
    Action.APPLICATION_ESCALATED,
    Action.APPLICATION_DECIDED,
    Action.ORDER_APPEALED,
    Action.APPLICATION_REMINDED,
)
_LATER = (
    Action.FILE_IMPORTED,
    Action.FILE_IMPORT_REFUSED,
    Action.RESYNC_REQUESTED,
    *_QUALITY,
    *_DELETIONS,
    *_AUTHORITY,
)
AUDIT_ENTRY_V1 = _without(Action.ACCESS_DENIED, *_GATEWAY, Action.CHAIN_HEAD, *_LATER)
AUDIT_ENTRY_V2 = _without(*_GATEWAY, Action.CHAIN_HEAD, *_LATER)
AUDIT_ENTRY_V3 = _without(Action.CHAIN_HEAD, *_LATER)
AUDIT_ENTRY_V4 = _without(*_LATER)
AUDIT_ENTRY_V5 = _without(Action.RESYNC_REQUESTED, *_QUALITY, *_DELETIONS, *_AUTHORITY)
AUDIT_ENTRY_V6 = _without(*_QUALITY, *_DELETIONS, *_AUTHORITY)
#: before the deletions (删除); then before the authority's workflow
AUDIT_ENTRY_V7 = _without(*_DELETIONS, *_AUTHORITY)
AUDIT_ENTRY_V8 = _without(*_AUTHORITY)
AUDIT_CODEC = ControlCodec(
    AUDIT_ENTRY,
    older=(
        AUDIT_ENTRY_V1,
        AUDIT_ENTRY_V2,
        AUDIT_ENTRY_V3,
        AUDIT_ENTRY_V4,
        AUDIT_ENTRY_V5,
        AUDIT_ENTRY_V6,
        AUDIT_ENTRY_V7,
        AUDIT_ENTRY_V8,
    ),
)


#: writes the current schema's Avro binary (the bytes fastavro would)
_WRITER = EntryWriter(AUDIT_ENTRY, unique=("id", "prev_hash", "hash"))
_FRAME = wire.frame(AUDIT_CODEC.schema_id, b"")


#: what ``json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` uses,
#: made once (``json.dumps`` with options builds an encoder on every call)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(d: Mapping[str, Any]) -> bytes:
    """Sorted compact JSON of an entry's fields (``at`` in epoch milliseconds, no ``hash``)."""
    return _CANONICAL.encode(d).encode()


_MILLISECOND = dt.timedelta(milliseconds=1)


def to_millis(at: dt.datetime) -> int:
    return (at - EPOCH) // _MILLISECOND


def from_millis(ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms)


def now() -> dt.datetime:
    """The current time at timestamp-millis precision."""
    return from_millis(to_millis(dt.datetime.now(dt.UTC)))


def detail_map(**values: object) -> dict[str, str]:
    """Details as strings: lists joined by commas, mappings as ``k=v,...``, None left out."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            out[key] = ",".join(f"{k}={v}" for k, v in sorted(value.items()))
        elif isinstance(value, list | tuple | set | frozenset):
            out[key] = ",".join(str(v) for v in value)
        elif isinstance(value, dt.datetime):
            out[key] = beijing.iso(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


@dataclass(frozen=True)
class Draft:
    """What the caller knows of a decision; the writer adds identity, chain and time."""

    action: Action
    actor: str
    decision: str
    resource: str | None = None
    consumer: str | None = None
    provider: str | None = None
    reason: str | None = None
    grant_id: str | None = None
    application_id: str | None = None
    purpose: str | None = None
    details: Mapping[str, str] = field(default_factory=dict)
    at: dt.datetime | None = None  # default: when it is written


def seal_fields(
    draft: Draft, *, writer: str, seq: int, prev_hash: str, instance: str
) -> dict[str, Any]:
    """The fields of the next entry of a chain, its hash computed, as its Avro record holds
    them (``at`` in epoch milliseconds, ``action`` its symbol): what :func:`encode_sealed`
    writes and :meth:`AuditEntry.from_sealed` builds an entry of.

    One pass over the draft, for the writers on a busy path (the gateway writes an entry per
    answer): the same dictionary is hashed (its canonical JSON, without ``hash``) and then
    written as Avro, with no entry object, datetime or second dictionary made in between.
    """
    reason = draft.reason
    if reason is not None and len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    # the clock read as milliseconds directly: the same instant as now() (the datetime
    # arithmetic cost 1.5% of the gateway's CPU)
    millis = to_millis(draft.at) if draft.at else time.time_ns() // 1_000_000
    fields: dict[str, Any] = {
        "id": f"{writer}#{seq}",
        "writer": writer,
        "seq": seq,
        "prev_hash": prev_hash,
        "at": millis,
        "actor": draft.actor,
        "action": Action(draft.action).value,
        "resource": draft.resource,
        "consumer": draft.consumer,
        "provider": draft.provider,
        "decision": str(draft.decision),
        "reason": reason,
        "grant_id": draft.grant_id,
        "application_id": draft.application_id,
        "purpose": draft.purpose,
        "instance": instance,
        "details": dict(draft.details),
    }
    fields["hash"] = hashlib.sha256(_canonical(fields)).hexdigest()
    return fields


def encode_sealed(fields: Mapping[str, Any]) -> bytes:
    """The framed Avro value of an entry's fields as :func:`seal_fields` makes them (the bytes
    :meth:`AuditEntry.encode` gives for the same entry)."""
    out = bytearray(_FRAME)
    _WRITER.write(fields, out)
    return bytes(out)


@dataclass(frozen=True)
class AuditEntry:
    id: str
    writer: str
    seq: int
    prev_hash: str
    hash: str
    at: dt.datetime
    actor: str
    action: Action
    resource: str | None
    consumer: str | None
    provider: str | None
    decision: str
    reason: str | None
    grant_id: str | None
    application_id: str | None
    purpose: str | None
    instance: str
    details: dict[str, str]

    @classmethod
    def seal(
        cls, draft: Draft, *, writer: str, seq: int, prev_hash: str, instance: str
    ) -> AuditEntry:
        """The next entry of a chain, its hash computed (once)."""
        return cls.from_sealed(
            seal_fields(draft, writer=writer, seq=seq, prev_hash=prev_hash, instance=instance)
        )

    @classmethod
    def from_sealed(cls, fields: Mapping[str, Any]) -> AuditEntry:
        """The entry of fields :func:`seal_fields` made."""
        d = dict(fields)
        d["at"], d["action"] = from_millis(d["at"]), Action(d["action"])
        d["details"] = dict(d["details"])
        return cls(**d)

    def canonical(self) -> bytes:
        """The bytes the hash is computed from: every field but ``hash``, as sorted JSON."""
        d = self.to_avro()
        del d["hash"]
        d["at"] = to_millis(self.at)
        return _canonical(d)

    def computed_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    @property
    def intact(self) -> bool:
        """Whether the content still matches its hash."""
        return self.computed_hash() == self.hash

    def rehashed(self) -> AuditEntry:
        """A copy whose hash matches its content (for sealing, and for forging in tests)."""
        return replace(self, hash=self.computed_hash())

    def to_avro(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["action"] = self.action.value
        d["details"] = dict(self.details)
        return d

    @classmethod
    def from_avro(cls, d: Mapping[str, Any]) -> AuditEntry:
        d = dict(d)
        d["action"] = Action(d["action"])
        d["details"] = dict(d.get("details") or {})
        return cls(**d)

    def encode(self) -> bytes:
        """The entry framed as the current schema (:mod:`.entry_wire`: fastavro's bytes, faster)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["at"] = to_millis(self.at)
        d["action"] = self.action.value
        return encode_sealed(d)

    @classmethod
    def decode(cls, value: bytes) -> AuditEntry:
        return cls.from_avro(AUDIT_CODEC.decode(value))

    def to_json(self) -> dict[str, Any]:
        """JSON form for people and tools: ``at`` in Beijing time, ISO 8601."""
        d = self.to_avro()
        d["at"] = self.at.astimezone(CHINA_TZ).isoformat(timespec="milliseconds")
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AuditEntry:
        d = dict(d)
        d["at"] = dt.datetime.fromisoformat(d["at"]).astimezone(dt.UTC)
        return cls.from_avro(d)

    def involves(self, department: str) -> bool:
        return department in (self.actor, self.consumer, self.provider)


def chain(
    drafts: Iterable[Draft], *, writer: str, instance: str = "test", start_hash: str = GENESIS_HASH
) -> list[AuditEntry]:
    """Seal drafts into one chain from seq 0 (pure; tests and tools use it)."""
    out: list[AuditEntry] = []
    prev = start_hash
    for seq, draft in enumerate(drafts):
        entry = AuditEntry.seal(draft, writer=writer, seq=seq, prev_hash=prev, instance=instance)
        out.append(entry)
        prev = entry.hash
    return out
