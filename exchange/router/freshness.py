"""The router's freshness watch (更新周期): last publish per resource, staleness audited.

Every routed batch tells the watch the newest record timestamp of each source
topic (:meth:`FreshnessWatch.published`); at start it reads the newest record
of every catalog resource's source topic (:mod:`exchange.bus.last_publish`),
so a router that holds only some partitions, or just started, knows them all.
The gauge ``gov_exchange_resource_last_publish_timestamp_seconds{resource}``
exports it, beside ``gov_exchange_resource_update_cycle_seconds{resource}``
(the cycle the catalog declares), so an alert rule can compare them
(deploy/prometheus/alerts.yml, ``ResourceStale``).

Every ``interval_s`` (and whenever :meth:`check` is called, with the watch's
``clock``: tests set it), each resource with a cycle is measured
(:mod:`exchange.catalog.freshness`): one ``RESOURCE_STALE`` entry when it
becomes stale, one ``RESOURCE_FRESH`` entry when a publish brings it back,
each written once per router instance (as :mod:`exchange.router.notices`
does), with the resource's provider, cycle, last publish and how late it is.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.bus import topics
from exchange.bus.last_publish import from_ms, last_publish_times
from exchange.catalog import freshness
from exchange.catalog.freshness import Freshness
from exchange.catalog.model import Catalog
from exchange.control.state import ControlState
from exchange.metrics import FreshnessMetrics
from exchange.router.periodic_watch import CHECK_INTERVAL_S, PeriodicWatch, utcnow

log = logging.getLogger(__name__)


class FreshnessWatch(PeriodicWatch):
    """Knows each resource's last publish; audits when it turns stale and when it recovers."""

    name = "freshness-watch"

    def __init__(
        self,
        state: ControlState,
        metrics: FreshnessMetrics,
        *,
        interval_s: float = CHECK_INTERVAL_S,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        super().__init__(state, interval_s=interval_s, clock=clock)
        self.metrics = metrics
        #: resource -> newest record timestamp seen
        self.last: dict[str, dt.datetime] = {}
        #: resource -> when this watch first saw it (the cycle of one never published counts
        #: from there)
        self.since: dict[str, dt.datetime] = {}
        #: resource -> its freshness when it was last found stale (until it recovers)
        self.stale: dict[str, Freshness] = {}

    async def prepare(self) -> bool:
        """Read every source topic's last publish (a failure leaves them to routed batches)."""
        catalog = self.state.snapshot.catalog if self.state.snapshot else None
        if catalog is None:
            return True
        names = {topics.source(r.provider, r.id): r.id for r in catalog.resources.values()}
        try:
            found = await last_publish_times(self.state.bus, names)
        except Exception:  # the watch must never keep a router from routing
            log.warning("last publish times not read at start", exc_info=True)
            return True
        for topic, at in found.items():
            if at is not None:
                self._note(names[topic], at)
        return True

    def published(self, topic: str, timestamp_ms: int) -> None:
        """A routed batch of ``topic`` whose newest record has ``timestamp_ms``."""
        parsed = topics.parse_source(topic)
        if parsed is not None:
            self._note(parsed[1], from_ms(timestamp_ms))

    def _note(self, resource: str, at: dt.datetime) -> None:
        seen = self.last.get(resource)
        if seen is None or at > seen:
            self.last[resource] = at
            self.metrics.last_publish.labels(resource).set(at.timestamp())

    def survey(self, catalog: Catalog, at: dt.datetime) -> list[Freshness]:
        """Every resource with a cycle, measured at ``at``."""
        for rid in catalog.resources:
            self.since.setdefault(rid, at)
        return [
            freshness.of(res, self.last.get(res.id), at=at, since=self.since[res.id])
            for res in catalog.resources.values()
            if freshness.allowed(res) is not None
        ]

    async def check(self, at: dt.datetime | None = None) -> list[Draft]:
        """Measure every resource now (``at``, or the clock); audit the changes; returns them."""
        snapshot = self.state.snapshot
        if snapshot is None:
            return []
        if self._task is not None:
            await asyncio.wait_for(self.ready.wait(), 30)
        async with self._lock:
            at = at or self.clock()
            drafts = []
            for f in self.survey(snapshot.catalog, at):
                window = freshness.ALLOWED[f.cycle]
                assert window is not None
                self.metrics.cycle.labels(f.resource).set(window.total_seconds())
                self.metrics.stale.labels(f.resource).set(1 if f.stale else 0)
                if f.stale and f.resource not in self.stale:
                    self.stale[f.resource] = f
                    drafts.append(_draft(Action.RESOURCE_STALE, Decision.STALE, f, f))
                elif not f.stale and f.resource in self.stale:
                    was = self.stale.pop(f.resource)
                    drafts.append(_draft(Action.RESOURCE_FRESH, Decision.FRESH, f, was))
            if drafts and self._write is not None:
                await self._write(drafts)
            return drafts


def _draft(action: Action, decision: str, now: Freshness, stale: Freshness) -> Draft:
    """A freshness entry: ``stale_since`` is when its cycle ran out (the same in both entries
    of one stale spell, so a report pairs them)."""
    assert stale.due_by is not None
    return Draft(
        action,
        actor="router",
        decision=decision,
        resource=now.resource,
        provider=now.provider,
        reason=(
            f"no publish for longer than its update cycle ({now.cycle.value}) allows"
            if action is Action.RESOURCE_STALE
            else "published again after "
            f"{freshness.shown_delta((now.last_publish or now.at) - stale.due_by)} stale"
        ),
        details=detail_map(
            update_cycle=now.cycle.value,
            last_publish=now.last_publish,
            stale_since=stale.due_by,
            late_by_seconds=int(stale.late_by.total_seconds()),
            recovered_at=now.last_publish if action is Action.RESOURCE_FRESH else None,
            noticed_at=now.at,
        ),
    )
