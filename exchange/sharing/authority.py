"""The data-sharing authority's part of the workflow (政务数据共享主管部门), and disputes.

Rules the :class:`~exchange.sharing.grants.GrantBook` applies to the commands
of the three-actor workflow of the 2025 regulation (《政务数据共享条例》):

* **compliance review** (符合性审查, when ``workflow.yaml`` switches it on):
  the authority passes an application (``REVIEW_PASSED``: forwarded to the
  provider; an application for unconditional data is authorised at once and
  becomes the subscription) or returns it with a reason (``REVIEW_RETURNED``);
* **disputes over refusals** (共享争议): the consumer contests a rejection
  (``CONTESTED``), both sides negotiate (``NEGOTIATED``, recorded), either
  escalates to the authority (``ESCALATED``), which upholds the refusal
  (``UPHELD``) or orders sharing (``ORDERED``: fields, filter, masks and
  expiry like an approval, never a not-shared field); the provider may appeal
  an order (``APPEALED``, recorded): the ordered grant stands until the
  authority itself revokes it.

Only the department the catalog marks ``data_authority: true`` may review
or decide, and its commands are signed with its registered key like every
other (checked by the book before these rules).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any, Protocol

from exchange.catalog.model import Catalog, Department, ShareType
from exchange.errors import CommandRefused
from exchange.sharing import terms
from exchange.sharing.records import (
    MAX_TEXT,
    Application,
    AppStatus,
    EventKind,
    Grant,
    GrantEvent,
    GrantKind,
)
from exchange.sharing.stages import Stage


class GrantBook(Protocol):
    """What these rules need of :class:`exchange.sharing.grants.GrantBook` (which calls them)."""

    applications: dict[str, Application]
    grants: dict[str, Grant]
    subscriptions: set[tuple[str, str]]

    def application_of(self, ev: GrantEvent) -> Application: ...

    def add_grant(
        self, ev: GrantEvent, app: Application, *, ordered_by: str | None = None
    ) -> None: ...

    @staticmethod
    def step(
        app: Application, ev: GrantEvent, name: str, to: Stage, outcome: str = ""
    ) -> dict[str, Any]: ...


def _reason(ev: GrantEvent, what: str) -> None:
    if ev.reason is None or not ev.reason.strip():
        raise CommandRefused(f"{what} is required (--reason)")
    if len(ev.reason) > MAX_TEXT:
        raise CommandRefused(f"{what} is {len(ev.reason)} characters long; at most {MAX_TEXT}")


def authority_of(catalog: Catalog) -> Department:
    """The authority the catalog names; refused if it names none."""
    found = catalog.authority()
    if found is None:
        raise CommandRefused(
            "the catalog names no data-sharing authority (政务数据共享主管部门): mark one "
            "department 'data_authority: true' in departments.yaml"
        )
    return found


def _by_authority(ev: GrantEvent, catalog: Catalog, what: str) -> None:
    bureau = authority_of(catalog).id
    if ev.actor != bureau:
        raise CommandRefused(
            f"only the data-sharing authority ({bureau}) may {what}; {ev.actor!r} may not"
        )


def _in_stage(app: Application, *allowed: Stage) -> None:
    if app.stage not in allowed:
        wanted = " or ".join(s.value for s in allowed)
        raise CommandRefused(
            f"application {app.id} is at stage {app.stage.value} ({app.stage.zh}), not {wanted}"
        )


def _by_party(ev: GrantEvent, app: Application, catalog: Catalog, what: str) -> None:
    provider = catalog.resource(app.resource).provider
    if ev.actor not in (app.consumer, provider):
        raise CommandRefused(
            f"only {app.consumer} (consumer) or {provider} (provider) may {what}; "
            f"{ev.actor!r} may not"
        )


def unconditional_application(ev: GrantEvent, catalog: Catalog) -> bool:
    """Whether ``ev`` applies for unconditional fields only under compliance review (then the
    review authorises it: Shanxi's procedure); without review such fields need no application."""
    if not catalog.workflow.compliance_review or ev.for_verification or not ev.fields:
        return False
    res = catalog.resource(ev.resource)
    types = {f.name: f.share_type for f in res.fields}
    return all(types.get(name) is ShareType.UNCONDITIONAL for name in ev.fields)


def _check_review(book: GrantBook, ev: GrantEvent, catalog: Catalog) -> None:
    _by_authority(ev, catalog, "review applications (符合性审查)")
    _in_stage(book.application_of(ev), Stage.REVIEW)
    if ev.kind is EventKind.REVIEW_RETURNED:
        _reason(ev, "a reason for returning the application")


def _check_contest(book: GrantBook, ev: GrantEvent, catalog: Catalog) -> None:
    app = book.application_of(ev)
    if ev.actor != app.consumer:
        raise CommandRefused(
            f"only the applicant ({app.consumer}) may contest the refusal of {app.id}; "
            f"{ev.actor!r} may not"
        )
    _in_stage(app, Stage.REJECTED)
    _reason(ev, "the reason the data is still needed")


def _check_negotiate(book: GrantBook, ev: GrantEvent, catalog: Catalog) -> None:
    app = book.application_of(ev)
    what = "negotiate" if ev.kind is EventKind.NEGOTIATED else "escalate the dispute"
    _by_party(ev, app, catalog, what)
    _in_stage(app, Stage.NEGOTIATION)
    if ev.kind is EventKind.ESCALATED:
        authority_of(catalog)
    _reason(ev, "a message" if ev.kind is EventKind.NEGOTIATED else "a reason to escalate")


def _check_decide(book: GrantBook, ev: GrantEvent, catalog: Catalog) -> None:
    _by_authority(ev, catalog, "decide a dispute (协调决定)")
    app = book.application_of(ev)
    _in_stage(app, Stage.ESCALATED)
    _reason(ev, "the reason of the decision")
    if ev.kind is EventKind.ORDERED:
        if not ev.grant_id or ev.grant_id in book.grants:
            raise CommandRefused(f"grant id {ev.grant_id!r} is missing or already used")
        terms.check_terms(ev, app, catalog, "the order")


def _check_appeal(book: GrantBook, ev: GrantEvent, catalog: Catalog) -> None:
    app = book.application_of(ev)
    provider = catalog.resource(app.resource).provider
    if ev.actor != provider:
        raise CommandRefused(
            f"only the provider ({provider}) may appeal the order on {app.id}; {ev.actor!r} may not"
        )
    _in_stage(app, Stage.ORDERED)
    _reason(ev, "the grounds of the appeal")


def check_order_revoker(grant: Grant, ev: GrantEvent, catalog: Catalog) -> None:
    """An ordered grant ends only by the authority's hand; the provider may appeal it."""
    bureau = authority_of(catalog).id
    if ev.actor != bureau:
        raise CommandRefused(
            f"grant {grant.id} was ordered by the data-sharing authority ({grant.ordered_by}): "
            f"it stands until the authority ({bureau}) changes it; the provider may appeal "
            "('exchange appeal')"
        )


CHECKS: dict[EventKind, Callable[[GrantBook, GrantEvent, Catalog], None]] = {
    EventKind.REVIEW_PASSED: _check_review,
    EventKind.REVIEW_RETURNED: _check_review,
    EventKind.CONTESTED: _check_contest,
    EventKind.NEGOTIATED: _check_negotiate,
    EventKind.ESCALATED: _check_negotiate,
    EventKind.UPHELD: _check_decide,
    EventKind.ORDERED: _check_decide,
    EventKind.APPEALED: _check_appeal,
}

#: kind -> (step name, stage after it, outcome) for the steps that only move the stage
_MOVES: dict[EventKind, tuple[str, Stage | None, str]] = {
    EventKind.CONTESTED: ("contested", Stage.NEGOTIATION, ""),
    EventKind.NEGOTIATED: ("negotiated", None, ""),
    EventKind.ESCALATED: ("escalated", Stage.ESCALATED, ""),
    EventKind.UPHELD: ("decided", Stage.UPHELD, "upheld"),
    EventKind.APPEALED: ("appealed", None, ""),
}


def mutate(book: GrantBook, ev: GrantEvent, catalog: Catalog) -> None:
    """Apply an accepted command of the authority's workflow to ``book``."""
    app = book.applications[ev.application_id or ""]
    if ev.kind is EventKind.REVIEW_PASSED:
        if _all_unconditional(app, catalog):
            book.subscriptions.add((app.consumer, app.resource))
            book.applications[app.id] = replace(
                app,
                status=AppStatus.APPROVED,
                answered_at=ev.at,
                **book.step(app, ev, "reviewed", Stage.AUTHORISED, "passed"),
            )
        else:
            book.applications[app.id] = replace(
                app, **book.step(app, ev, "reviewed", Stage.ANSWER, "passed")
            )
    elif ev.kind is EventKind.REVIEW_RETURNED:
        book.applications[app.id] = replace(
            app,
            status=AppStatus.RETURNED,
            answered_at=ev.at,
            reason=ev.reason,
            **book.step(app, ev, "reviewed", Stage.RETURNED, "returned"),
        )
    elif ev.kind is EventKind.ORDERED:
        book.applications[app.id] = replace(
            app,
            status=AppStatus.ORDERED,
            grant_id=ev.grant_id,
            **book.step(app, ev, "decided", Stage.ORDERED, "ordered"),
        )
        book.add_grant(ev, app, ordered_by=ev.actor)
    else:
        name, to, outcome = _MOVES[ev.kind]
        book.applications[app.id] = replace(
            app, **book.step(app, ev, name, to or app.stage, outcome)
        )


def _all_unconditional(app: Application, catalog: Catalog) -> bool:
    """An application for unconditional data (not a verification): authorised at review."""
    res = catalog.resources.get(app.resource)
    if res is None or app.kind is not GrantKind.DATA or not app.fields:
        return False
    types = {f.name: f.share_type for f in res.fields}
    return all(types.get(name) is ShareType.UNCONDITIONAL for name in app.fields)
