"""The commands of the data-sharing authority's workflow, for :class:`Department`.

Compliance review (符合性审查) by the authority, and disputes over refusals
(共享争议): contest, negotiate, escalate, the authority's decision (uphold or
order), the provider's appeal. Each is one signed command on
``gov.ctl.grants``, checked by the grant book
(:mod:`exchange.sharing.authority`) before it is written and by every
router on replay, and one audit entry naming the stage and the actor; a
refusal is audited (``COMMAND_REFUSED``) like every other.

The audit entry of a step that ends a timed stage (review, answer,
negotiation, decision) says whether it came in time: the stage's ``due``
date, its time limit, the working days taken and ``within_time_limit``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol

from exchange import beijing, workdays
from exchange.audit.entry import Action, Decision, detail_map
from exchange.catalog.model import ShareType
from exchange.control.state import ControlState
from exchange.errors import CommandRefused
from exchange.sharing import limits as command_limits
from exchange.sharing.records import Application, EventKind, GrantEvent, new_id
from exchange.sharing.stages import Stage


class Department(Protocol):
    """What these commands need of :class:`exchange.clients.department.Department`."""

    department: str

    @property
    def state(self) -> ControlState: ...

    async def refresh(self) -> ControlState: ...

    async def _application(self, application_id: str, facts: dict[str, Any]) -> Application: ...

    async def _answer(
        self,
        command: str,
        facts: dict[str, Any],
        action: Action,
        decision: str,
        make: Callable[[], Awaitable[tuple[GrantEvent, dict[str, Any]]]],
    ) -> GrantEvent: ...


def stage_facts(app: Application, at: dt.datetime) -> dict[str, Any]:
    """Whether the step at ``at`` closes the stage under way within its time limit."""
    window = app.current_window()
    facts: dict[str, Any] = {"stage": window.stage.value}
    if window.limit is None or window.end is not None:
        return facts
    facts.update(window.due_facts())
    taken = workdays.working_days_between(
        workdays.china_date(window.start), workdays.china_date(at)
    )
    facts["working_days_taken"] = taken
    facts["within_time_limit"] = workdays.china_date(at) <= facts["due"]
    return facts


async def step(
    dept: Department,
    command: str,
    application_id: str,
    kind: EventKind,
    action: Action,
    decision: str,
    *,
    reason: str | None,
    **terms: Any,
) -> GrantEvent:
    """One workflow command on ``application_id``: build, sign, check, write, audit."""
    facts: dict[str, Any] = {"application_id": application_id}

    async def make() -> tuple[GrantEvent, dict[str, Any]]:
        command_limits.check_text(reason, "the reason")
        app = await dept._application(application_id, facts)
        event = GrantEvent(
            kind=kind,
            actor=dept.department,
            consumer=app.consumer,
            resource=app.resource,
            application_id=app.id,
            reason=reason,
            **terms,
        )
        return event, {
            "resource": app.resource,
            "consumer": app.consumer,
            "application_id": app.id,
            "purpose": app.purpose,
            "reason": reason,
            "grant_id": event.grant_id,
            "details": detail_map(
                command=command,
                fields=event.fields or app.fields,
                masks=event.masks or None,
                row_filter=event.row_filter,
                valid_until=event.valid_until,
                applied_at=app.applied_at,
                event_id=event.event_id,
                **stage_facts(app, event.at),
            ),
        }

    return await dept._answer(command, facts, action, decision, make)


def review_decision(dept: Department, application_id: str, passed: bool) -> Decision:
    """``authorised`` for unconditional data passed at review, else ``passed`` / ``returned``."""
    if not passed:
        return Decision.RETURNED
    app = dept.state.book.applications.get(application_id)
    res = dept.state.catalog.resources.get(app.resource) if app else None
    if app is None or res is None or app.kind.value != "data":
        return Decision.PASSED
    types = {f.name: f.share_type for f in res.fields}
    if all(types.get(f) is ShareType.UNCONDITIONAL for f in app.fields):
        return Decision.AUTHORISED
    return Decision.PASSED


async def review(
    dept: Department, application_id: str, *, passed: bool, reason: str | None = None
) -> str:
    """The authority's compliance review; returns the application's stage after it."""
    command_limits.check_id(application_id, "application id")
    await dept.refresh()
    decision = review_decision(dept, application_id, passed)
    kind = EventKind.REVIEW_PASSED if passed else EventKind.REVIEW_RETURNED
    await step(
        dept, "review", application_id, kind, Action.APPLICATION_REVIEWED, decision, reason=reason
    )
    return dept.state.book.applications[application_id].stage.value


async def order(
    dept: Department,
    application_id: str,
    *,
    reason: str,
    fields: Iterable[str] | None = None,
    row_filter: str | None = None,
    masks: Mapping[str, str] | None = None,
    until: dt.datetime | dt.date | None = None,
) -> str:
    """The authority orders sharing (责令共享) on an escalated dispute; returns the grant id."""
    if isinstance(until, dt.date) and not isinstance(until, dt.datetime):
        until = beijing.end_of_day(until)
    command_limits.check_id(application_id, "application id")
    command_limits.check_fields(fields)
    command_limits.check_masks(masks)
    command_limits.check_until(until)
    await dept.refresh()
    app = dept.state.book.applications.get(application_id)
    if app is None:
        raise CommandRefused(f"unknown application {application_id!r}")
    command_limits.check_row_filter(row_filter, dept.state.catalog.resources.get(app.resource))
    event = await step(
        dept,
        "order",
        application_id,
        EventKind.ORDERED,
        Action.APPLICATION_DECIDED,
        Decision.ORDERED,
        reason=reason,
        grant_id=new_id("GR"),
        fields=tuple(dict.fromkeys(fields)) if fields else app.fields,
        row_filter=row_filter,
        masks=dict(masks or {}),
        valid_until=until,
        grant_kind="verify" if app.kind.value == "verify" else None,
    )
    assert event.grant_id is not None
    return event.grant_id


#: command -> (event kind, audit action, decision) of the workflow steps with a reason only
SIMPLE: dict[str, tuple[EventKind, Action, Decision]] = {
    "contest": (EventKind.CONTESTED, Action.APPLICATION_CONTESTED, Decision.CONTESTED),
    "negotiate": (EventKind.NEGOTIATED, Action.APPLICATION_NEGOTIATED, Decision.NEGOTIATED),
    "escalate": (EventKind.ESCALATED, Action.APPLICATION_ESCALATED, Decision.ESCALATED),
    "uphold": (EventKind.UPHELD, Action.APPLICATION_DECIDED, Decision.UPHELD),
    "appeal": (EventKind.APPEALED, Action.ORDER_APPEALED, Decision.APPEALED),
}


async def simple(dept: Department, command: str, application_id: str, reason: str) -> str:
    """contest, negotiate, escalate, uphold or appeal; returns the stage after it."""
    kind, action, decision = SIMPLE[command]
    command_limits.check_id(application_id, "application id")
    await step(dept, command, application_id, kind, action, decision, reason=reason)
    return dept.state.book.applications[application_id].stage.value


__all__ = ["SIMPLE", "Stage", "order", "review", "simple", "stage_facts", "step"]
