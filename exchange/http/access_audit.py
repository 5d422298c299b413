"""Refused HTTP requests on the access log (``gov.audit``), written in batches.

A refusal (wrong credentials, a client blocked after repeated failed logins, a
subject or schema id another department's grants keep hidden) becomes an
``ACCESS_DENIED`` entry with the decision ``denied``: who asked (the user name
given, authenticated or not), what was asked (method and path), the answer
(status and error code), from where (the client's address) and why.

The request is answered at once: :meth:`AccessAudit.refused` only queues the
entry, and a background task hands what has queued up to one
:class:`~exchange.audit.writer.AuditWriter` (its own chain, role ``<service>``)
every :data:`FLUSH_S` or :data:`BATCH` entries, so a burst of refusals costs
the service one producer batch, not a round trip each. At most
``max_pending`` entries wait; beyond that (the broker unreachable for long, or
a flood a throttle did not stop) entries are dropped, counted and logged, and
the service goes on answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter
from starlette.requests import Request

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.audit.writer import AuditWriter
from exchange.bus import kafka
from exchange.bus.connection import Connection
from exchange.bus.registry import SchemaRegistry
from exchange.http.errors import ApiJSONResponse, HttpError, error_response
from exchange.lifecycle import AsyncService
from exchange.metrics import AuditMetrics

log = logging.getLogger(__name__)

#: seconds a refusal waits for others to share its batch
FLUSH_S = 0.2
#: entries handed to the writer at once, at most
BATCH = 500
#: entries waiting to be written, at most (more are dropped and counted)
MAX_PENDING = 10_000


def client_address(request: Request) -> str:
    """The caller's address as the ASGI server reports it ('unknown' if it does not)."""
    return request.client.host if request.client is not None else "unknown"


def refusal(
    request: Request,
    *,
    actor: str,
    status: int,
    code: int,
    reason: str,
    resource: str | None = None,
    consumer: str | None = None,
    provider: str | None = None,
    **details: object,
) -> Draft:
    """The ``ACCESS_DENIED`` entry of ``request``, answered ``status`` (error code ``code``)."""
    path = request.url.path
    if request.url.query:
        path += "?" + request.url.query
    return Draft(
        Action.ACCESS_DENIED,
        actor=actor,
        decision=Decision.DENIED,
        resource=resource,
        consumer=consumer,
        provider=provider,
        reason=reason,
        details=detail_map(
            request=f"{request.method} {path[:500]}",
            status=status,
            error_code=code,
            client=client_address(request),
            **details,
        ),
    )


class Refused(HttpError):
    """An error answer that goes to the access log too: a refusal of what the caller asked.

    ``message`` is what the caller reads (an unknown subject and a hidden one read
    alike); ``reason`` and the other fields are what the auditor reads.
    """

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        actor: str,
        reason: str,
        resource: str | None = None,
        consumer: str | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__(status, code, message)
        self.actor, self.reason = actor, reason
        self.resource, self.consumer, self.provider = resource, consumer, provider


async def _refused(request: Request, exc: Exception) -> ApiJSONResponse:
    assert isinstance(exc, Refused)
    audit: AccessAudit | None = getattr(request.app.state, "access_audit", None)
    if audit is not None:
        audit.refused(
            refusal(
                request,
                actor=exc.actor,
                status=exc.status,
                code=exc.code,
                reason=exc.reason,
                resource=exc.resource,
                consumer=exc.consumer,
                provider=exc.provider,
            )
        )
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def install(app: FastAPI, audit: AccessAudit) -> None:
    """Audit ``app``'s refusals with ``audit``: failed logins (the gate) and :class:`Refused`."""
    app.state.access_audit = audit
    app.add_exception_handler(Refused, _refused)


class AccessAuditMetrics:
    def __init__(self, registry: CollectorRegistry, prefix: str = "gov_exchange") -> None:
        #: the refusals' audit chain: entries written, how far past the last signed head
        self.chain = AuditMetrics(registry, prefix)
        self.written = Counter(
            f"{prefix}_http_refusals_audited",
            "Refused HTTP requests written to the access log",
            registry=registry,
        )
        self.dropped = Counter(
            f"{prefix}_http_refusals_not_audited",
            "Refused HTTP requests whose audit entry was dropped or failed to be written",
            registry=registry,
        )


class AccessAudit(AsyncService):
    """Queues refusals of one HTTP service and writes them to ``gov.audit`` in batches."""

    def __init__(
        self,
        bus: Connection,
        *,
        service: str,
        metrics: AccessAuditMetrics | None = None,
        max_pending: int = MAX_PENDING,
        flush_s: float = FLUSH_S,
    ) -> None:
        self.bus = bus
        self.service = service
        self.metrics = metrics
        self.max_pending = max_pending
        self.flush_s = flush_s
        self._queue: deque[Draft] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set: nothing queued or being written
        self._idle.set()
        self._producer: Any = None
        self._writer: AuditWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self.written = 0
        self.dropped = 0

    @property
    def writer_id(self) -> str | None:
        """The id of the audit chain the refusals go to (None until started)."""
        return self._writer.writer_id if self._writer is not None else None

    async def start(self) -> None:
        self._producer = kafka.producer(self.bus, linger_ms=0)
        await self._producer.start()
        self._writer = AuditWriter(
            self._producer,
            SchemaRegistry(self.bus),
            role=self.service,
            metrics=self.metrics.chain if self.metrics is not None else None,
        )
        await self._writer.start()
        self._task = asyncio.create_task(self._run(), name=f"{self.service}-access-audit")

    def refused(self, draft: Draft) -> None:
        """Queue ``draft`` for the access log; never waits (drops it if too many wait)."""
        if len(self._queue) >= self.max_pending or self._task is None:
            self._lost(1, "too many refusals wait to be written" if self._task else "not started")
            return
        self._queue.append(draft)
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every refusal queued so far is written (or given up)."""
        await self._idle.wait()

    def _lost(self, n: int, why: str) -> None:
        self.dropped += n
        if self.metrics is not None:
            self.metrics.dropped.inc(n)
        log.error("%d refusal(s) of %s not written to the access log: %s", n, self.service, why)

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self.flush_s)  # let a burst share the batch
            await self._write_queued()

    async def _write_queued(self) -> None:
        assert self._writer is not None
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(BATCH, len(self._queue)))]
            try:
                await (await self._writer.send(batch)).acknowledged()
            except Exception as exc:  # the service goes on; the loss is counted and logged
                self._lost(len(batch), f"{type(exc).__name__}: {exc}")
                continue
            self.written += len(batch)
            if self.metrics is not None:
                self.metrics.written.inc(len(batch))
        self._wake.clear()
        self._idle.set()

    async def stop(self) -> None:
        """Write what is queued (waiting at most a few seconds), then close the producer."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._write_queued(), 5.0)
        if self._queue:
            self._lost(len(self._queue), "the service stopped before they were written")
            self._queue.clear()
        self._idle.set()
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
