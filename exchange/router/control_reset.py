"""Fail closed on a control-state reset: pause routing, rebuild from the topics, resume.

When the control topics go backwards under the router (recreated, truncated,
deleted; found by its :class:`~exchange.control.state.ControlFollower`, see
:mod:`exchange.control.lineage`), the grants it holds may no longer exist on
the bus. From then on it routes nothing: no fetched record is delivered or
committed (the source partitions are paused and the fetch position set back,
so each record is routed later, under the rebuilt state); batches routed
before the reset was found settle as usual. It logs an ERROR naming the
topic, partition, what it had and what it found, counts the reset
(``gov_exchange_control_reset_total``) and sets ``gov_exchange_routing_paused``.

Then it rebuilds: the control state is cleared and replayed from the topics
as they are now (a fresh follower, as at a start; the grant-book snapshots
are never read by routers, and the next one it writes names the new topic),
and every view is recompiled. Routing resumes only once a catalog is in force
again; until then it stays paused and tries again every :data:`RETRY_S`. On
resuming it starts a new audit chain (``gov.audit`` may have been recreated
too) and audits the reset: ``CATALOG_CHANGED`` with decision ``reset``.

Public surface: :class:`ControlResetGuard` (``tripped``, ``paused``, ``hold``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import Any

from aiokafka.errors import KafkaError

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.control.catalog_store import CONTROL_SCHEMAS
from exchange.errors import ControlStateReset, ExchangeError

# the router's one logger: its log lines read as they did before the split
log = logging.getLogger("exchange.router.loop")

RETRY_S = 1.0  # a rebuild that could not finish (no topic, no catalog yet) is tried this often


class ControlResetGuard:
    """Holds the router while its control state is being rebuilt after a reset."""

    def __init__(self, router: Any) -> None:
        """``router``: the :class:`~exchange.router.loop.Router` it holds (not imported: the
        loop imports this module)."""
        self.router = router
        self.reset: ControlStateReset | None = None
        self.detected_at: dt.datetime | None = None
        self._since = 0.0  # monotonic time the reset was found
        self._next_try = 0.0
        self._replaying = False  # a fresh follower is running, waiting for a catalog

    @property
    def paused(self) -> bool:
        return self.reset is not None

    def tripped(self, exc: ControlStateReset) -> None:
        """The follower found a reset: routing stops at once (called from its task)."""
        if self.reset is not None:
            return
        self.reset, self._since = exc, time.monotonic()
        self.detected_at = dt.datetime.now(dt.UTC)
        self._next_try = 0.0
        m = self.router.metrics
        m.control_resets.labels(exc.topic).inc()
        m.routing_paused.set(1)
        log.error(
            "control state reset: %s; routing paused (no delivery, no commit) until the "
            "state is rebuilt from the topics",
            exc.message,
        )

    async def hold(self, batch: dict[Any, list[Any]]) -> None:
        """Route nothing of ``batch``: set the fetch back to it; try to rebuild when due."""
        consumer = self.router.consumer
        consumer.pause(*consumer.assignment())  # newly assigned partitions too
        for tp, records in batch.items():
            consumer.seek(tp, records[0].offset)
        if time.monotonic() < self._next_try:
            return
        self._next_try = time.monotonic() + RETRY_S
        try:
            if await self._rebuilt():
                await self._resume()
        except (ExchangeError, KafkaError, OSError) as exc:
            log.warning("control state not rebuilt yet (routing stays paused): %s", exc)

    async def _rebuilt(self) -> bool:
        """Replay the control topics afresh (once); True once a catalog is in force."""
        r = self.router
        follower = r.follower
        if not self._replaying or follower.reset is not None:
            self._replaying = False
            r.stop_book_writer()  # it would write a book of the half-built state
            await follower.stop()
            r.state.clear()
            r.view_table.forget()
            await follower.start()  # as at a start: creates missing topics, replays all
            self._replaying = True
        return follower.reset is None and r.state.snapshot is not None

    async def _resume(self) -> None:
        r = self.router
        exc = self.reset
        assert exc is not None
        await r.state.registry.register_all(r.producer, CONTROL_SCHEMAS)
        await r.recompile(everything=True)
        if r.audit is not None:
            await r.audit.new_chain()
        paused_s = time.monotonic() - self._since
        r.settler.drafts.add(self._draft(exc, paused_s))
        r.start_book_writer()
        consumer = r.consumer
        consumer.resume(*consumer.assignment())
        self.reset, self._replaying = None, False
        r.metrics.routing_paused.set(0)
        snap = r.state.snapshot
        log.warning(
            "control state rebuilt from the topics after a reset of %s[%d]: catalog version "
            "%s, %d grants; routing resumed after %.2f s paused",
            exc.topic,
            exc.partition,
            snap.version if snap else "-",
            len(r.state.book.grants),
            paused_s,
        )

    def _draft(self, exc: ControlStateReset, paused_s: float) -> Draft:
        snap = self.router.state.snapshot
        return Draft(
            Action.CATALOG_CHANGED,
            actor="router",
            decision=Decision.RESET,
            reason=exc.message,
            details=detail_map(
                topic=exc.topic,
                partition=exc.partition,
                kind=exc.kind,
                had=exc.had,
                found=exc.found,
                detected_at=self.detected_at,
                paused_ms=round(paused_s * 1000),
                catalog_version=snap.version if snap else None,
                grants_after_rebuild=len(self.router.state.book.grants),
            ),
        )
