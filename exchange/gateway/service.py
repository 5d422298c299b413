"""The gateway's parts held together: control state, access table, store, audit, quotas.

Started with the app (its lifespan) and stopped with it. A gateway of one
process keeps its store up to date itself; each worker of a gateway of several
(:mod:`exchange.gateway.workers`) reads the store its supervisor keeps
(``materialise=False``) and counts quotas in the table the workers share. The
control topics are followed live (a revocation or expiry applies from the next request); if
they are reset under the gateway, it starts over from them as they are, and
answers 503 meanwhile, as the registry does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from exchange.audit.journal import AuditJournal
from exchange.audit.writer import AuditWriter
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog.model import Catalog
from exchange.control.catalog_store import Snapshot
from exchange.control.state import ControlFollower, ControlState
from exchange.errors import ControlStateReset
from exchange.gateway.access import AccessTable
from exchange.gateway.materializer import Materializer
from exchange.gateway.quota import Quotas
from exchange.gateway.request_audit import LINGER_MS, SHIP_LINGER_MS, RequestAudit
from exchange.gateway.store import LatestStore
from exchange.lifecycle import AsyncService
from exchange.metrics import AuditMetrics
from exchange.sharing.records import GrantEvent

log = logging.getLogger(__name__)

#: how long a fetch of the control topics waits for news: what a revocation may take to reach
#: the gateway on a broker that answers a waiting fetch only at its end (the embedded one). A
#: tenth of the second the README promises; each worker's fetches every 20 ms (the routers'
#: wait) cost it 3% of its CPU under load
CONTROL_FETCH_WAIT_MS = 100


def journal_dir(store: Path) -> Path:
    """The folder of the audit journals of the gateway whose store is ``store`` (one file
    a process: :mod:`exchange.audit.journal`)."""
    return store.with_name(store.name + ".audit")


class GatewayMetrics:
    """Requests by resource, consumer and decision; their latency; the store's state; its
    audit chain's."""

    def __init__(self, registry: CollectorRegistry, prefix: str = "gov_exchange") -> None:
        self.decisions = Counter(
            f"{prefix}_gateway_requests",
            "Gateway requests by kind (query, verify), resource, consumer and decision",
            ["kind", "resource", "consumer", "decision"],
            registry=registry,
        )
        self.seconds = Histogram(
            f"{prefix}_gateway_request_seconds",
            "Time to answer a gateway request (its audit entry journaled), by kind and resource",
            ["kind", "resource"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=registry,
        )
        # read from the store at each scrape (:meth:`GatewayService.store_gauges`); with
        # several workers, the value of whichever worker read it last (they share one store)
        self.records = Gauge(
            f"{prefix}_gateway_store_records",
            "Records in the latest-state store",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        self.applied = Gauge(
            f"{prefix}_gateway_store_applied",
            "Source records written to the latest-state store since its file was made "
            "(or rebuilt from the topics)",
            registry=registry,
            multiprocess_mode="livemostrecent",
        )
        # each process its own journal: the sum over the live ones (set before each scrape,
        # and every second by each worker)
        self.unshipped = Gauge(
            f"{prefix}_gateway_audit_unshipped",
            "Audit entries of answered requests in the gateway's local journal, not yet "
            "acknowledged by gov.audit",
            registry=registry,
            multiprocess_mode="livesum",
        )
        #: its audit chain: entries written, and how far they run past the last signed head
        self.audit = AuditMetrics(registry, prefix)
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any]] = {}

    def answered(
        self, kind: str, resource: str, consumer: str, decision: str, seconds: float
    ) -> None:
        """Count one request and its latency (the labels' children looked up once)."""
        key = (kind, resource, consumer, decision)
        children = self._children.get(key)
        if children is None:
            children = (
                self.decisions.labels(kind, resource, consumer, decision),
                self.seconds.labels(kind, resource),
            )
            if len(self._children) < 10_000:  # bounded: resources and consumers of the catalog
                self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


class GatewayService(AsyncService):
    def __init__(
        self,
        bus: Connection,
        store_path: Path,
        master_secret: bytes,
        metrics: GatewayMetrics,
        *,
        partitions: int | None = None,
        materialise: bool = True,
        quota_path: Path | None = None,
    ) -> None:
        self.bus = bus
        self.store_path = store_path
        self.master_secret = master_secret
        self.metrics = metrics
        self.partitions = partitions
        #: False: another process keeps the store up to date; this one only reads it
        self.materialise = materialise
        self.quotas = Quotas(quota_path)
        self.state = ControlState(bus)
        self.access = AccessTable(self.state, master_secret)
        self.store: LatestStore | None = None
        self.materializer: Materializer | None = None
        self.audit: RequestAudit | None = None
        self._follower: ControlFollower | None = None
        self._producer: Any = None
        self._writer: AuditWriter | None = None
        self._journal: AuditJournal | None = None
        self._restart: asyncio.Task[None] | None = None

    @property
    def ready(self) -> str | None:
        """Why the gateway cannot answer yet (None: it can)."""
        f, m = self._follower, self.materializer
        if f is None or not f.caught_up.is_set() or f.reset is not None:
            return "reading the control topics"
        behind = self._journal.behind() if self._journal is not None else None
        if behind is not None:
            return behind
        if not self.materialise:  # the supervisor read the source topics before starting it
            return None if self.store is not None else "opening the store"
        if m is None or m.failed is not None:
            return f"the store is not being kept up to date ({m.failed if m else 'not started'})"
        if not m.caught_up.is_set():
            return "reading the source topics into the store"
        return None

    async def start(self) -> None:
        self.store = await asyncio.to_thread(
            LatestStore, self.store_path, reader=not self.materialise
        )
        # one key (the chain's id): its partition is hashed once, not per request
        self._producer = kafka.producer(
            self.bus, linger_ms=LINGER_MS, partitioner=kafka.FewKeysPartitioner()
        )
        await self._producer.start()
        await self._follow_control()
        # an answer waits for its entry in the local journal, which ships it to gov.audit
        # (and first what a killed process of this gateway left in its own)
        self._journal = AuditJournal(
            self._producer, topics.AUDIT, journal_dir(self.store_path), linger_ms=SHIP_LINGER_MS
        )
        await self._journal.start()
        self._writer = AuditWriter(
            self._producer,
            self.state.registry,
            role="gateway",
            metrics=self.metrics.audit,
            sender=self._journal,
        )
        await self._writer.start()
        self.audit = RequestAudit(self._writer, self.master_secret)
        if self.materialise:
            self.materializer = Materializer(
                self.bus, self.store, self._catalog, partitions=self.partitions
            )
            await self.materializer.start()

    async def store_gauges(self) -> None:
        """Set the store's gauges from the store (before a scrape of ``/metrics``); counted in
        a thread, on a connection of its own: the event loop keeps answering meanwhile."""
        self.journal_gauge()
        store = self.store
        if store is None:
            return
        try:
            records, applied = await asyncio.to_thread(store.stats)
        except sqlite3.Error as exc:  # the scrape still answers, without fresh figures
            log.warning("the store's figures cannot be read for /metrics: %s", exc)
            return
        self.metrics.records.set(records)
        self.metrics.applied.set(applied)

    def journal_gauge(self) -> None:
        """Set the gauge of the audit entries this process's journal has not shipped yet."""
        if self._journal is not None:
            self.metrics.unshipped.set(self._journal.unshipped)

    def public_key(self, department: str) -> str | None:
        """The Ed25519 key ``department`` registered in the catalog in force (None: none)."""
        catalog = self._catalog()
        dept = catalog.departments.get(department) if catalog is not None else None
        return dept.public_key if dept is not None else None

    def _catalog(self) -> Catalog | None:
        return self.state.catalog if self.state.snapshot is not None else None

    async def _follow_control(self) -> None:
        state = ControlState(self.bus)

        def on_catalog(snap: Snapshot) -> None:
            self.access.changed()

        def on_grant_event(event: GrantEvent, reason: str | None) -> None:
            self.access.changed()

        state.on_catalog = on_catalog
        state.on_grant_event = on_grant_event
        follower = ControlFollower(state, fetch_max_wait_ms=CONTROL_FETCH_WAIT_MS)
        follower.on_reset = self._on_reset
        self._follower = follower
        await follower.start(follow=True)
        self.state = self.access.state = state
        self.access.changed()

    def _on_reset(self, reset: ControlStateReset) -> None:
        log.error("control topics reset under the gateway; starting over: %s", reset)
        if self._restart is None or self._restart.done():
            self._restart = asyncio.create_task(self._start_over(), name="gateway-restart")

    async def _start_over(self) -> None:
        old, self._follower = self._follower, None
        if old is not None:
            await old.stop()
        while True:
            try:
                await self._follow_control()
                if self._writer is not None:
                    await self._writer.new_chain()
                    self._writer.registry = self.state.registry
                return
            except Exception:
                log.exception("the gateway could not read the control topics; retrying in 1 s")
                await asyncio.sleep(1)

    async def stop(self) -> None:
        if self._restart is not None:
            self._restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._restart
            self._restart = None
        if self.materializer is not None:
            await self.materializer.stop()
            self.materializer = None
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        if self._journal is not None:
            journal, self._journal = self._journal, None
            await journal.close()
        if self._follower is not None:
            follower, self._follower = self._follower, None
            await follower.stop()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()
        if self.store is not None:
            store, self.store = self.store, None
            store.close()
