"""One audit entry per request to the gateway, safe on disk before the answer leaves.

Each request hands its entry to the audit writer (:class:`~exchange.audit.writer.AuditWriter`,
the same hash chain as the router's), whose sender is the process's audit journal
(:class:`~exchange.audit.journal.AuditJournal`), and waits until the entry is committed
to the journal's file: a crash after that cannot lose the record of an answer given, and the
journal ships the entry to ``gov.audit`` right behind the answer (a killed process's
journal is shipped by the next gateway started on the same store). Past the journal's
window (entries waiting for the broker longer than :data:`~exchange.audit.journal.WINDOW_S`),
the writer refuses and the request is answered 503. Entries of concurrent requests travel
together: those of the requests answered in one turn of the event loop are handed to the
writer in one call (one lock, one journal transaction, one wait). If a write fails, every
request of its turn is told so (and withholds its answer), even though some of their
entries may have been written: the log may hold an entry for an answer withheld, never an
answer without its entry.

The key asked for is never written: the entry holds ``key_hash``, a keyed
BLAKE2b of it under a key derived from the mask master secret (an unkeyed hash
of an ID number is reversed by trying every number). Whoever holds the secret
can tell whether a given key was asked for (:func:`key_hash` of :func:`audit_key`).
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from exchange.audit.entry import Action, Decision, Draft
from exchange.audit.writer import AuditWriter
from exchange.sharing.limits import MAX_AUDIT_TEXT, safe

#: how long the audit producer waits for more entries before sending (ms)
LINGER_MS = 2
#: how long the journal lets entries gather before shipping a batch to gov.audit (ms): no
#: answer waits for it (each waits for the journal's disk), and each batch is a produce
#: request whose cost (a write to the broker's socket, its acknowledgement) the gateway
#: pays whatever the batch's size
SHIP_LINGER_MS = 20
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
        #: entries of this turn of the event loop, and the futures of the requests waiting
        self._drafts: list[Draft] = []
        self._waiting: list[asyncio.Future[None]] = []
        self._writes: set[asyncio.Task[None]] = set()

    def draft(self, facts: RequestFacts) -> Draft:
        # the details as exchange.audit.entry.detail_map makes them, built directly
        details = {"key_hash": key_hash(self._secret, facts.key)} if facts.key is not None else {}
        fields = ",".join(facts.fields)
        if fields:
            details["fields"] = fields
        details["status"] = str(facts.status)
        details["via"] = "gateway"
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
            details=details,
        )

    async def record(self, facts: RequestFacts) -> None:
        """Write the entry of a request and wait until it is safe in the journal (with the
        entries of the other requests of this turn of the event loop); raises if it cannot be
        written."""
        draft = self.draft(facts)
        loop = asyncio.get_running_loop()
        if not self._drafts:
            loop.call_soon(self._write_turn)
        self._drafts.append(draft)
        acked: asyncio.Future[None] = loop.create_future()
        self._waiting.append(acked)
        await acked

    def _write_turn(self) -> None:
        drafts, waiting = self._drafts, self._waiting
        self._drafts, self._waiting = [], []
        task = asyncio.create_task(self._write(drafts, waiting), name="gateway-audit-write")
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, drafts: list[Draft], waiting: list[asyncio.Future[None]]) -> None:
        try:
            await (await self.writer.send(drafts)).acknowledged()
        except Exception as exc:  # each request withholds its answer (503)
            for acked in waiting:
                if not acked.done():
                    acked.set_exception(exc)
            return
        for acked in waiting:
            if not acked.done():
                acked.set_result(None)
