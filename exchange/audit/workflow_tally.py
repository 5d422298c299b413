"""The monthly report's figures of the data-sharing authority's workflow, per department.

Read from the audit entries of the workflow (:mod:`exchange.clients.workflow`):

* every department: the stages of applications it had to act on that went
  past their time limit (``stages_overdue``, per stage: review, answer,
  negotiation, escalated), from the routers' ``APPLICATION_OVERDUE`` notices;
* the authority (主管部门): applications reviewed (符合性审查) within and
  beyond the review's time limit, returned at review, and its decisions on
  disputes (upheld, ordered) within and beyond the decision's time limit;
* consumer and provider: disputes (共享争议) contested, escalated and decided
  (upheld, ordered), each counted for both sides ("as consumer" / "as
  provider"), and the provider's appeals of orders.

"In time" is what the entry says (``within_time_limit``): each application
carries the time limits in force when it was made, so the report does not
recompute them with today's catalog.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from exchange.audit.entry import Action, AuditEntry


class _Report(Protocol):
    workflow: Counter[tuple[str, str]]


def _timely(e: AuditEntry, what: str) -> str:
    within = e.details.get("within_time_limit")
    if within is None:
        return f"{what}_without_time_limit"
    return f"{what}_within_time_limit" if within == "true" else f"{what}_beyond_time_limit"


def tally(
    e: AuditEntry, rep: Callable[[str | None], _Report | None], seen: set[tuple[str, str]]
) -> None:
    """Count ``e`` (an entry of the period) in the reports of the departments it concerns.

    ``seen``: (application, stage) overdue notices counted already (every router run
    notices an overdue stage again: it is counted once).
    """
    both = ((e.consumer, "as consumer"), (e.provider, "as provider"))
    if e.action is Action.APPLICATION_OVERDUE and e.application_id:
        stage = e.details.get("stage", "answer")  # notices before stages were the answer's
        if (e.application_id, stage) in seen:
            return
        seen.add((e.application_id, stage))
        waiting = e.details.get("waiting_on") or (e.provider or "")
        for dept in sorted({w for w in waiting.split(",") if w}):
            r = rep(dept)
            if r is not None:
                r.workflow[("stages_overdue", stage)] += 1
    elif e.action is Action.APPLICATION_REVIEWED:
        r = rep(e.actor)
        if r is not None:
            r.workflow[(_timely(e, "applications_reviewed"), "")] += 1
            if e.decision == "returned":
                r.workflow[("applications_returned_at_review", "")] += 1
    elif e.action in (Action.APPLICATION_CONTESTED, Action.APPLICATION_ESCALATED):
        contested = e.action is Action.APPLICATION_CONTESTED
        metric = "disputes_contested" if contested else "disputes_escalated"
        for name, role in both:
            r = rep(name)
            if r is not None:
                r.workflow[(metric, role)] += 1
    elif e.action is Action.APPLICATION_DECIDED:
        r = rep(e.actor)
        if r is not None:
            r.workflow[(f"authority_decisions_{e.decision}", "")] += 1
            r.workflow[(_timely(e, "authority_decisions"), "")] += 1
        for name, role in both:
            r = rep(name)
            if r is not None:
                r.workflow[(f"disputes_decided_{e.decision}", role)] += 1
    elif e.action is Action.ORDER_APPEALED:
        r = rep(e.actor)
        if r is not None:
            r.workflow[("orders_appealed", "")] += 1
