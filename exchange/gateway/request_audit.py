"""One audit entry per request to the gateway, acknowledged before the answer leaves.

Each request hands its entry to the audit writer (:class:`~exchange.audit.writer.AuditWriter`,
the same hash chain as the router's) and waits for the broker's acknowledgement
before it answers: a crash cannot lose the record of an answer given. Entries of
concurrent requests travel together: the producer gathers what arrives within
its linger time (:data:`LINGER_MS`) into one batch, so the cost of a write is
shared, and the wait adds about that much to a request.

The key asked for is never written: the entry holds ``key_hash``, a keyed
BLAKE2b of it under a key derived from the mask master secret (an unkeyed hash
of an ID number is reversed by trying every number). Whoever holds the secret
can tell whether a given key was asked for (:func:`key_hash` of :func:`audit_key`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.audit.writer import AuditWriter
from exchange.sharing.limits import MAX_AUDIT_TEXT, safe

LINGER_MS = 2
_CONTEXT = b"gov-exchange gateway key hash v1"


def audit_key(master_secret: bytes) -> bytes:
    """The key of :func:`key_hash`, derived from (never equal to) the master secret."""
    return hashlib.blake2b(_CONTEXT, key=master_secret[:64], digest_size=32).digest()


def key_hash(secret: bytes, key: bytes) -> str:
    return hashlib.blake2b(key, key=secret, digest_size=16).hexdigest()


@dataclass
class RequestFacts:
    """What one request did, for its audit entry."""

    action: Action
    caller: str
    resource: str
    decision: Decision = Decision.DENIED
    status: int = 0
    provider: str | None = None
    grant_id: str | None = None
    purpose: str | None = None
    reason: str | None = None
    key: bytes | None = None
    fields: Iterable[str] = field(default_factory=tuple)


class RequestAudit:
    def __init__(self, writer: AuditWriter, master_secret: bytes) -> None:
        self.writer = writer
        self._secret = audit_key(master_secret)

    def draft(self, facts: RequestFacts) -> Draft:
        return Draft(
            action=facts.action,
            actor=facts.caller,
            decision=facts.decision,
            resource=safe(facts.resource, 200),
            consumer=facts.caller,
            provider=facts.provider,
            grant_id=facts.grant_id,
            purpose=safe(facts.purpose, MAX_AUDIT_TEXT) if facts.purpose is not None else None,
            reason=facts.reason,
            details=detail_map(
                key_hash=key_hash(self._secret, facts.key) if facts.key is not None else None,
                fields=list(facts.fields) or None,
                status=facts.status,
                via="gateway",
            ),
        )

    async def record(self, facts: RequestFacts) -> None:
        """Write the entry of a request and wait for its acknowledgement."""
        pending = await self.writer.send([self.draft(facts)])
        await pending.acked()
