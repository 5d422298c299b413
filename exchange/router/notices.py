"""What the router notices on its own, audited once per router instance.

A grant that expired, a stage of an application past its time limit (the
provider's answer beyond 10 working days by default; the authority's review
and decision and the negotiation as the catalog's ``workflow.yaml`` sets
them), with a reminder (催办) on a stage's last working day (looked for at
every recompile and at least every ``WATCH_INTERVAL_S``), a
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
from collections import Counter
from collections.abc import Callable

from exchange import workdays
from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.control.catalog_store import Snapshot, refusal_draft
from exchange.control.state import ControlState
from exchange.metrics import RouterMetrics
from exchange.sharing.records import Application, AppStatus, GrantEvent
from exchange.sharing.stages import Stage, Window

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
        """Audit stages past their time limit, and reminders on their last day, each once;
        the oldest application still waiting for the provider's answer."""
        oldest: dt.datetime | None = None
        late: Counter[str] = Counter()
        today = workdays.china_date(now)
        for app in self.state.book.applications.values():
            if app.status is AppStatus.PENDING:
                oldest = app.applied_at if oldest is None else min(oldest, app.applied_at)
            window = app.current_window()
            due = window.due if window.end is None else None
            if due is None:
                continue  # an outcome: nobody has to act
            if today > due:
                late[window.stage.value] += 1
                # the answer's key is the application's id alone, as before stages existed
                key = app.id if window.stage is Stage.ANSWER else f"{app.id}:{window.stage}"
                if self._first(Action.APPLICATION_OVERDUE, key):
                    self.audit(self._stage_draft(app, window, Action.APPLICATION_OVERDUE))
            elif today == due and self._first(
                Action.APPLICATION_REMINDED, f"{app.id}:{window.stage}"
            ):
                self.metrics.audit.application_reminders.labels(window.stage.value).inc()
                self.audit(self._stage_draft(app, window, Action.APPLICATION_REMINDED))
        for stage in TIMED:
            self.metrics.audit.applications_overdue.labels(stage.value).set(late[stage.value])
        return oldest

    def _stage_draft(self, app: Application, window: Window, action: Action) -> Draft:
        """The overdue notice or reminder (催办) of the stage ``window`` of ``app``."""
        catalog = self.state.catalog
        provider = provider_of(self.state, app.resource)
        bureau = catalog.authority()
        waiting_on = {
            Stage.REVIEW: bureau.id if bureau else "",
            Stage.ANSWER: provider or "",
            Stage.NEGOTIATION: f"{app.consumer},{provider or ''}",
            Stage.ESCALATED: bureau.id if bureau else "",
        }.get(window.stage, "")
        what = _WHAT[window.stage]
        due = window.due
        assert due is not None
        if action is Action.APPLICATION_OVERDUE:
            reason = f"{what} not done within {window.limit} working days (due {due.isoformat()})"
            decision = Decision.OVERDUE
        else:
            reason = f"{what}: last working day today (due {due.isoformat()})"
            decision = Decision.REMINDED
        return Draft(
            action,
            actor="router",
            decision=decision,
            resource=app.resource,
            consumer=app.consumer,
            provider=provider,
            application_id=app.id,
            purpose=app.purpose,
            reason=reason,
            details=detail_map(
                applied_at=app.applied_at,
                stage_started_at=window.start,
                waiting_on=waiting_on,
                **window.due_facts(),
            ),
        )


#: the stages that run against a time limit, and what is awaited in each
TIMED = (Stage.REVIEW, Stage.ANSWER, Stage.NEGOTIATION, Stage.ESCALATED)
_WHAT = {
    Stage.REVIEW: "compliance review (符合性审查) by the data-sharing authority",
    Stage.ANSWER: "answer by the provider",
    Stage.NEGOTIATION: "negotiation (协商) between consumer and provider",
    Stage.ESCALATED: "decision (协调决定) of the data-sharing authority",
}
