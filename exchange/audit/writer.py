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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exchange.audit.entry import AUDIT_ENTRY, GENESIS_HASH, AuditEntry, Draft
from exchange.bus import topics
from exchange.bus.registry import SchemaRegistry
from exchange.lifecycle import AsyncService

if TYPE_CHECKING:  # prometheus_client: imported only by processes that export metrics
    from exchange.metrics import AuditMetrics

STOP_WAIT_S = 5.0  # how long stop() waits for the last entry's acknowledgement


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


def new_writer_id(role: str, instance: str) -> str:
    return f"{role}-{instance}-{secrets.token_hex(3)}"


@dataclass
class PendingWrites:
    """Entries handed to the producer; :meth:`acked` waits until the broker has them all."""

    entries: list[AuditEntry]
    futures: list[Any]
    metrics: AuditMetrics | None

    async def acked(self) -> list[AuditEntry]:
        for fut in self.futures:
            await fut
        if self.metrics is not None:
            for entry in self.entries:
                self.metrics.entries_written.labels(entry.action.value).inc()
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
    ) -> None:
        self.producer = producer
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

    async def start(self) -> None:
        """Register the entry schema, so the first write does not wait for it; idempotent."""
        async with self._lock:
            await self._register()

    async def stop(self) -> None:
        """Refuse later writes; wait (at most ``STOP_WAIT_S``) for the last one handed over.

        A write that failed was reported to its caller by ``acked()``: it is not raised
        again here. Idempotent.
        """
        self._stopped = True
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
            self._registered = False  # gov.ctl.schemas may have been recreated too

    @property
    def next_seq(self) -> int:
        return self._seq

    async def send(self, drafts: Iterable[Draft]) -> PendingWrites:
        """Chain and hand entries to the producer, in order; await ``.acked()`` before relying on them."""
        entries: list[AuditEntry] = []
        futures: list[Any] = []
        if self._stopped:
            raise RuntimeError("the audit writer is stopped")
        async with self._lock:
            await self._register()
            for draft in drafts:
                entry = AuditEntry.seal(
                    draft,
                    writer=self.writer_id,
                    seq=self._seq,
                    prev_hash=self._prev,
                    instance=self.instance,
                )
                self._last = await self.producer.send(
                    self.topic, value=entry.encode(), key=self._key
                )
                futures.append(self._last)
                # advanced only once the producer holds it: a send that raises leaves no gap
                self._seq += 1
                self._prev = entry.hash
                entries.append(entry)
        return PendingWrites(entries, futures, self.metrics)

    async def write(self, *drafts: Draft) -> list[AuditEntry]:
        """Write entries and wait until every one is acknowledged."""
        pending = await self.send(drafts)
        return await pending.acked()
