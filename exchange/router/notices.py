"""What the router notices on its own, audited once per router instance.

A grant that expired, an application left unanswered beyond 10 working days
(looked for at every recompile and at least every ``WATCH_INTERVAL_S``), a
grant event on ``gov.ctl.grants`` that the grant book refuses when replaying
it (one written by hand, or forged), and a catalog snapshot every reader
ignores. Each becomes one audit entry, handed to ``audit`` (the settle
pipeline's pending entries), which the next routed batch carries.

Public surface: :class:`Notices` (``grant_event_refused``,
``catalog_refused``, ``watch``, ``watch_due``) and :func:`provider_of`.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable

from exchange import workdays
from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.control.catalog_store import Snapshot, refusal_draft
from exchange.control.state import ControlState
from exchange.metrics import RouterMetrics
from exchange.sharing.records import AppStatus, GrantEvent

WATCH_INTERVAL_S = 60.0  # how often expiries and overdue applications are looked for


def provider_of(state: ControlState, resource: str) -> str | None:
    """The provider of ``resource`` in the catalog in force (None: no such resource)."""
    res = state.snapshot.catalog.resources.get(resource) if state.snapshot else None
    return res.provider if res else None


class Notices:
    """Audits what the router notices, each thing once (by action and id)."""

    def __init__(
        self, state: ControlState, metrics: RouterMetrics, audit: Callable[[Draft], None]
    ) -> None:
        self.state = state
        self.metrics = metrics
        self.audit = audit
        self._noticed: set[tuple[Action, str]] = set()  # (action, grant/application/event id)
        self._next_watch = 0.0

    def _first(self, action: Action, key: str) -> bool:
        """True the first time this instance notices ``key`` for ``action``."""
        if (action, key) in self._noticed:
            return False
        self._noticed.add((action, key))
        return True

    def grant_event_refused(self, event: GrantEvent, reason: str) -> None:
        """A grant event the book refused on replay: audited once (a retry is no refusal)."""
        if event.event_id in self.state.book.accepted:
            return  # a duplicate of an accepted event is a producer retry, not a refusal
        if not self._first(Action.COMMAND_REFUSED, event.event_id):
            return
        self.audit(
            Draft(
                Action.COMMAND_REFUSED,
                actor=event.actor,
                decision=Decision.DENIED,
                resource=event.resource,
                consumer=event.consumer,
                provider=provider_of(self.state, event.resource),
                reason=reason,
                grant_id=event.grant_id,
                application_id=event.application_id,
                purpose=event.purpose,
                details=detail_map(
                    command=event.kind.value.lower(),
                    event_id=event.event_id,
                    written_at=event.at,
                    fields=event.fields or None,
                    noticed_by="router replaying gov.ctl.grants",
                ),
            )
        )

    def catalog_refused(self, snap: Snapshot, reason: str) -> None:
        """A catalog snapshot every reader ignores (unsigned, forged, stale): audited once."""
        key = f"catalog:{snap.version}:{snap.digest}:{snap.signature}"
        if self._first(Action.COMMAND_REFUSED, key):
            self.audit(refusal_draft(snap, reason, noticed_by="router replaying gov.ctl.catalog"))

    def watch_due(self) -> bool:
        """True once ``WATCH_INTERVAL_S`` passed since the last :meth:`watch`."""
        return time.monotonic() >= self._next_watch

    def watch(self, now: dt.datetime) -> None:
        """Audit expiries and overdue applications not noticed yet; update the waiting-age gauge."""
        self._next_watch = time.monotonic() + WATCH_INTERVAL_S
        self._expired_grants(now)
        oldest = self._overdue_applications(now)
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        self.metrics.audit.oldest_unanswered_application_age.set(max(0.0, age))

    def _expired_grants(self, now: dt.datetime) -> None:
        for g in self.state.book.grants.values():
            if g.valid_until is None or g.valid_until > now or g.superseded_by is not None:
                continue
            if g.revoked_at is not None and g.revoked_at < g.valid_until:
                continue  # revoked before it could expire: the revocation is its end
            if self._first(Action.GRANT_EXPIRED, g.id):
                self.audit(
                    Draft(
                        Action.GRANT_EXPIRED,
                        actor="router",
                        decision=Decision.EXPIRED,
                        resource=g.resource,
                        consumer=g.consumer,
                        provider=provider_of(self.state, g.resource),
                        grant_id=g.id,
                        application_id=g.application_id,
                        purpose=g.purpose,
                        reason="valid-until reached",
                        details=detail_map(valid_until=g.valid_until, noticed_at=now),
                        at=g.valid_until,
                    )
                )

    def _overdue_applications(self, now: dt.datetime) -> dt.datetime | None:
        """Audit overdue applications not noticed yet; the oldest pending one's date."""
        oldest: dt.datetime | None = None
        for app in self.state.book.applications.values():
            if app.status is not AppStatus.PENDING:
                continue
            oldest = app.applied_at if oldest is None else min(oldest, app.applied_at)
            if app.overdue(now) and self._first(Action.APPLICATION_OVERDUE, app.id):
                self.audit(
                    Draft(
                        Action.APPLICATION_OVERDUE,
                        actor="router",
                        decision=Decision.OVERDUE,
                        resource=app.resource,
                        consumer=app.consumer,
                        provider=provider_of(self.state, app.resource),
                        application_id=app.id,
                        purpose=app.purpose,
                        reason=f"no answer within 10 working days (due {app.due().isoformat()})",
                        details=detail_map(
                            applied_at=app.applied_at, **workdays.due_facts(app.applied_at)
                        ),
                    )
                )
        return oldest
