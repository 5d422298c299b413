"""The audit writer: one hash chain per process run, written to ``gov.audit`` with acks.

Each writer gets a unique id (``<role>-<host>-<pid>-<random>``), so every
process run is a chain of its own, starting at seq 0 with
:data:`~exchange.audit.entry.GENESIS_HASH`; nothing has to be resumed after a
restart and two processes never interleave one chain.

Order is the chain's order: sequence numbers are assigned and entries are
handed to the producer under one lock, so they reach the (single) partition
in seq order; aiokafka keeps one batch in flight per partition, so retries do
not reorder them (a retry may duplicate one, which ``verify`` tells apart
from an insertion: same seq, same hash). A write that fails for good after
its successors were sent leaves a gap that ``verify`` reports as deleted;
the caller sees the error and does not commit what the entry described.

Signed heads (:mod:`exchange.audit.heads`): a writer with a
:class:`~exchange.audit.heads.HeadSigner` (given, or the one the entry point
installed for the process) adds a ``CHAIN_HEAD`` entry to its chain once
``every_entries`` entries are unsigned, once ``every_s`` seconds have passed
with any unsigned (checked on every write and by a timer while started), and
at :meth:`AuditWriter.stop`. Head entries ride with the writes that made them
due (their acknowledgement is awaited with them) but are not among the
entries a write returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exchange.audit import heads
from exchange.audit.entry import (
    AUDIT_ENTRY,
    GENESIS_HASH,
    AuditEntry,
    Draft,
    encode_sealed,
    seal_fields,
)
from exchange.audit.heads import HeadSigner
from exchange.bus import topics
from exchange.bus.registry import SchemaRegistry
from exchange.lifecycle import AsyncService

if TYPE_CHECKING:  # prometheus_client: imported only by processes that export metrics
    from exchange.metrics import AuditMetrics

STOP_WAIT_S = 5.0  # how long stop() waits for the last entry's acknowledgement

log = logging.getLogger(__name__)


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def new_writer_id(role: str, instance: str) -> str:
    return f"{role}-{instance}-{secrets.token_hex(3)}"


@dataclass
class PendingWrites:
    """Entries handed to the producer; :meth:`acknowledged` waits until the broker has them all.

    The entries are kept as the fields they were sealed and written from
    (:func:`~exchange.audit.entry.seal_fields`); :meth:`acked` builds the entry objects, for
    the callers that read them back. The gateway's, which do not, wait with
    :meth:`acknowledged` and never build them.
    """

    sealed: list[dict[str, Any]]
    futures: list[Any]
    metrics: AuditMetrics | None

    async def acknowledged(self) -> None:
        for fut in self.futures:
            await fut
        if self.metrics is not None:
            counted = Counter(fields["action"] for fields in self.sealed)
            for action, n in counted.items():
                self.metrics.entries_written.labels(action).inc(n)

    @property
    def entries(self) -> list[AuditEntry]:
        return [AuditEntry.from_sealed(fields) for fields in self.sealed]

    async def acked(self) -> list[AuditEntry]:
        await self.acknowledged()
        return self.entries


class AuditWriter(AsyncService):
    """Chains and writes audit entries through a producer the caller owns (and stops).

    Usable as ``async with AuditWriter(...) as audit``: :meth:`start` registers the
    entry schema up front (else the first write does), :meth:`stop` waits for what
    was handed to the producer and refuses later writes; both may be called again.
    """

    def __init__(
        self,
        producer: Any,
        registry: SchemaRegistry,
        *,
        role: str,
        instance: str | None = None,
        metrics: AuditMetrics | None = None,
        topic: str = topics.AUDIT,
        signer: HeadSigner | None = None,
        sender: Any = None,
    ) -> None:
        self.producer = producer
        #: how entries reach the producer: its ``send`` (one record at a time) unless given
        #: another with the same signature (the gateway's :class:`~exchange.audit.journal.AuditJournal`)
        self._send = sender.send if sender is not None else producer.send
        self.registry = registry
        self.instance = instance or default_instance()
        self.role = role
        self.writer_id = new_writer_id(role, self.instance)
        #: None: nothing counted (a command's session exports no metrics, so it does not
        #: import prometheus_client)
        self.metrics = metrics
        self.topic = topic
        self._key = self.writer_id.encode()
        self._seq = 0
        self._prev = GENESIS_HASH
        self._lock = asyncio.Lock()
        self._registered = False
        self._stopped = False
        self._last: Any = None  # the producer's future of the last entry handed over
        #: signs the chain's heads; None: an unsigned chain (verify reports it)
        self.signer = signer if signer is not None else heads.installed()
        #: the fields of the newest entry handed over (seal_fields)
        self._newest: dict[str, Any] | None = None
        self._signed_seq = -1  # the newest seq a head handed over covers
        self._signed_at = time.monotonic()
        self._unsigned_since: float | None = None  # when the oldest unsigned entry was handed over
        self._timer: asyncio.Task[None] | None = None
        if metrics is not None:  # its unsigned tail is exported from now until stop()
            metrics.heads.watch(self)

    async def start(self) -> None:
        """Register the entry schema, so the first write does not wait for it; idempotent."""
        async with self._lock:
            await self._register()
        if self.signer is not None and self._timer is None and not self._stopped:
            self._timer = asyncio.create_task(self._sign_on_time(), name="audit-head-timer")

    async def stop(self) -> None:
        """Sign the head, refuse later writes; wait (at most ``STOP_WAIT_S``) for the last one
        handed over.

        A write that failed was reported to its caller by ``acked()``: it is not raised
        again here. Idempotent.
        """
        if self._timer is not None:
            timer, self._timer = self._timer, None
            timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await timer
        if not self._stopped and self.signer is not None:
            try:  # a clean shutdown leaves no unsigned tail
                async with self._lock:
                    await self._sign_head([])
            except Exception as exc:  # the producer is failing: the tail stays unsigned
                log.warning("audit writer %s: last head not signed: %s", self.writer_id, exc)
        self._stopped = True
        if self.metrics is not None:
            self.metrics.heads.forget(self)
        last, self._last = self._last, None
        if last is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(last), STOP_WAIT_S)

    async def _register(self) -> None:
        if not self._registered:
            await self.registry.register(self.producer, AUDIT_ENTRY)
            self._registered = True

    async def new_chain(self) -> None:
        """Start a chain of its own (new writer id, seq 0): after the access log may have been
        recreated, so the new topic does not hold a chain that begins in the middle."""
        async with self._lock:
            self.writer_id = new_writer_id(self.role, self.instance)
            self._key = self.writer_id.encode()
            self._seq = 0
            self._prev = GENESIS_HASH
            self._newest = None
            self._signed_seq = -1
            self._unsigned_since = None
            self._registered = False  # gov.ctl.schemas may have been recreated too

    @property
    def next_seq(self) -> int:
        return self._seq

    async def send(self, drafts: Iterable[Draft]) -> PendingWrites:
        """Chain and hand entries to the producer, in order; await ``.acknowledged()`` (or
        ``.acked()``) before relying on them."""
        sealed: list[dict[str, Any]] = []
        futures: list[Any] = []
        if self._stopped:
            raise RuntimeError("the audit writer is stopped")
        async with self._lock:
            await self._register()
            for draft in drafts:
                sealed.append(await self._append(draft, futures))
                if self._head_due():
                    await self._sign_head(futures)
        return PendingWrites(sealed, futures, self.metrics)

    async def _append(self, draft: Draft, futures: list[Any]) -> dict[str, Any]:
        """Seal the next entry and hand it to the producer (the lock is held); its fields.

        Sealed and written in one pass (:func:`~exchange.audit.entry.seal_fields`,
        :func:`~exchange.audit.entry.encode_sealed`): no entry object is made."""
        fields = seal_fields(
            draft,
            writer=self.writer_id,
            seq=self._seq,
            prev_hash=self._prev,
            instance=self.instance,
        )
        self._last = await self._send(self.topic, value=encode_sealed(fields), key=self._key)
        futures.append(self._last)
        # advanced only once the producer holds it: a send that raises leaves no gap
        self._seq += 1
        self._prev = fields["hash"]
        self._newest = fields
        if self._unsigned_since is None:
            self._unsigned_since = time.monotonic()
        return fields

    @property
    def unsigned(self) -> int:
        """Entries handed over that no head covers yet."""
        return self._seq - 1 - self._signed_seq

    def unsigned_seconds(self) -> float:
        """How long the oldest entry no head covers has waited for one (0: none waits)."""
        since = self._unsigned_since
        return 0.0 if since is None or self.unsigned <= 0 else time.monotonic() - since

    def _head_due(self) -> bool:
        signer = self.signer
        if signer is None or self.unsigned <= 0:
            return False
        return (
            self.unsigned >= signer.every_entries
            or time.monotonic() - self._signed_at >= signer.every_s
        )

    async def _sign_head(self, futures: list[Any]) -> None:
        """Hand over a head covering the newest entry, if any is unsigned (the lock is held)."""
        if self.signer is None or self._newest is None or self.unsigned <= 0:
            return
        covered = AuditEntry.from_sealed(self._newest)
        await self._append(self.signer.draft(covered), futures)
        self._signed_seq = self._seq - 1  # the head covers itself too: nothing is unsigned
        self._signed_at = time.monotonic()
        self._unsigned_since = None

    async def _sign_on_time(self) -> None:
        """While started: sign the head of an idle chain every ``every_s`` seconds."""
        assert self.signer is not None
        while True:
            await asyncio.sleep(self.signer.every_s / 2)
            if self._stopped or not self._head_due():
                continue
            try:
                async with self._lock:
                    await self._sign_head([])
            except Exception as exc:  # retried at the next tick; verify shows the tail
                log.warning("audit writer %s: head not signed: %s", self.writer_id, exc)

    async def write(self, *drafts: Draft) -> list[AuditEntry]:
        """Write entries and wait until every one is acknowledged."""
        pending = await self.send(drafts)
        return await pending.acked()
