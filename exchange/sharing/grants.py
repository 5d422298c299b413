"""Applications, approvals and grants for conditional data (有条件共享).

Every command is a :class:`GrantEvent` on ``gov.ctl.grants``. The
:class:`GrantBook` replays those events into the state every process agrees
on. It checks each event against the catalog in force and the book itself
(only the provider approves; never a not-shared field; a filter that
compiles; ...): an event that breaks a rule is refused and changes nothing,
whether it came from our own API or was written to the topic by hand.

Checks depend only on the event and on the state before it (times are
compared with the event's own time, not with the clock), so every replay of
the topic gives the same book.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from exchange.catalog import signing
from exchange.catalog.model import Catalog, ShareType
from exchange.catalog.workflow import Workflow
from exchange.errors import CommandRefused, ExchangeError
from exchange.sharing import authority, limits, terms
from exchange.sharing.policy import compute_view
from exchange.sharing.records import (
    MAX_TEXT,
    Application,
    AppStatus,
    AtRest,
    EventKind,
    Grant,
    GrantEvent,
    GrantKind,
)
from exchange.sharing.stages import Stage, Step


def _refuse(message: str, **facts: Any) -> CommandRefused:
    return CommandRefused(message, **facts)


def _text(value: str | None, what: str, *, required: bool) -> None:
    if value is None or not value.strip():
        if required:
            raise _refuse(f"{what} is required")
        return
    if len(value) > MAX_TEXT:
        raise _refuse(f"{what} is {len(value)} characters long; at most {MAX_TEXT} are allowed")


def _check_kind(ev: GrantEvent) -> None:
    """The grant kind and quotas of an application or approval."""
    kinds = [k.value for k in GrantKind]
    if ev.grant_kind is not None and ev.grant_kind not in kinds:
        raise _refuse(f"grant kind {ev.grant_kind!r} is unknown: one of {', '.join(kinds)}")
    if ev.kind is EventKind.APPLIED and (ev.quota_per_second or ev.quota_per_day):
        raise _refuse("quotas are the provider's to set when it approves, not the applicant's")
    rules = [r.value for r in AtRest]
    if ev.at_rest is not None and ev.at_rest not in rules:
        raise _refuse(f"rule for data at rest {ev.at_rest!r} is unknown: one of {', '.join(rules)}")
    if ev.at_rest is not None and ev.kind not in (EventKind.APPROVED, EventKind.ORDERED):
        raise _refuse(
            "the rule for data at rest is set with the grant: by the provider's approval "
            "or the authority's order"
        )


def _with_workflow(catalog: Catalog, workflow: Workflow | None) -> Catalog:
    """``catalog`` with the sharing workflow ``workflow`` (a shallow copy, only if it differs)."""
    if workflow is None or workflow == catalog.workflow:
        return catalog
    return catalog.model_copy(update={"workflow": workflow})


class GrantBook:
    """The state of subscriptions, applications and grants, replayed from events."""

    def __init__(self) -> None:
        self.applications: dict[str, Application] = {}
        self.grants: dict[str, Grant] = {}
        self.subscriptions: set[tuple[str, str]] = set()
        self.accepted: set[str] = set()  # event ids
        self.refused: dict[str, str] = {}  # event id -> reason
        #: (consumer, resource) -> id of its latest grant
        self.current: dict[tuple[str, str], str] = {}

    # --- queries ---------------------------------------------------------------

    def grant_for(self, consumer: str, resource: str, at: dt.datetime) -> Grant | None:
        gid = self.current.get((consumer, resource))
        grant = self.grants.get(gid) if gid else None
        return grant if grant is not None and grant.active(at) else None

    def latest_grant(self, consumer: str, resource: str) -> Grant | None:
        gid = self.current.get((consumer, resource))
        return self.grants.get(gid) if gid else None

    def receives(self, consumer: str, resource: str, at: dt.datetime) -> bool:
        """Whether the router delivers ``resource`` to ``consumer``: one of :meth:`targets`."""
        grant = self.grant_for(consumer, resource, at)
        return (consumer, resource) in self.subscriptions or (
            grant is not None and not grant.verify_only
        )

    def targets(self, resource: str, at: dt.datetime) -> set[str]:
        """Consumers that asked for ``resource``: subscribed, or holding an active data grant
        (a verification grant, 核验, delivers nothing)."""
        return self.all_targets(at).get(resource, set())

    def all_targets(self, at: dt.datetime) -> dict[str, set[str]]:
        """:meth:`targets` of every resource, in one pass over the book (resource -> consumers)."""
        out: dict[str, set[str]] = {}
        for c, r in self.subscriptions:
            out.setdefault(r, set()).add(c)
        for g in self.grants.values():
            if g.active(at) and not g.verify_only:
                out.setdefault(g.resource, set()).add(g.consumer)
        return out

    def next_expiry(self, after: dt.datetime) -> dt.datetime | None:
        ends = [
            g.valid_until
            for g in self.grants.values()
            if g.valid_until is not None and g.valid_until > after and g.active(after)
        ]
        return min(ends) if ends else None

    # --- events ----------------------------------------------------------------

    def check(self, ev: GrantEvent, catalog: Catalog, *, workflow: Workflow | None = None) -> None:
        """Raise :class:`CommandRefused` with the reason if ``ev`` breaks a rule.

        ``workflow``: the sharing workflow in force when ``ev`` was made (the catalog's
        ``workflow.yaml`` as loaded at that time; default: the catalog's own). A new
        application takes its review and time limits from it, so that a later catalog
        with other settings changes nothing for it, on every replay.
        """
        catalog = _with_workflow(catalog, workflow)
        if ev.event_id in self.accepted or ev.event_id in self.refused:
            raise _refuse(f"event {ev.event_id} was already processed")
        limits.check_event(ev, row_filter=False)  # a forged event breaks them too
        try:
            actor = catalog.department(ev.actor)
            res = catalog.resource(ev.resource)
            catalog.department(ev.consumer)
        except ExchangeError as exc:
            raise _refuse(str(exc)) from None
        if actor.public_key is not None and not signing.verify(
            actor.public_key, ev.signed_fields(), ev.signature
        ):
            raise _refuse(
                f"the command is not signed with {ev.actor!r}'s registered key"
                + (" (no signature)" if not ev.signature else " (the signature does not verify)")
            )
        _CHECKS[ev.kind](self, ev, catalog)
        del res

    def apply(
        self, ev: GrantEvent, catalog: Catalog, *, workflow: Workflow | None = None
    ) -> str | None:
        """Apply an event; returns the refusal reason, or None if it was accepted.

        ``workflow``: as for :meth:`check`.
        """
        catalog = _with_workflow(catalog, workflow)
        try:
            self.check(ev, catalog)
        except CommandRefused as exc:
            if ev.event_id not in self.accepted:
                self.refused[ev.event_id] = exc.message
            return exc.message
        self._mutate(ev, catalog)
        self.accepted.add(ev.event_id)
        return None

    def _check_subscribe(self, ev: GrantEvent, catalog: Catalog) -> None:
        if ev.actor != ev.consumer:
            raise _refuse(f"{ev.actor!r} cannot subscribe on behalf of {ev.consumer!r}")
        view = compute_view(catalog, self, ev.consumer, ev.resource, at=ev.at)
        if view.denied:
            raise _refuse(view.denied)

    def _check_apply(self, ev: GrantEvent, catalog: Catalog) -> None:
        res = catalog.resource(ev.resource)
        if ev.actor != ev.consumer:
            raise _refuse(f"{ev.actor!r} cannot apply on behalf of {ev.consumer!r}")
        if ev.consumer == res.provider:
            raise _refuse(f"{ev.consumer!r} provides {res.id!r}; a provider needs no application")
        if not ev.application_id or ev.application_id in self.applications:
            raise _refuse(f"application id {ev.application_id!r} is missing or already used")
        if res.share.type is ShareType.NOT_SHARED:
            raise _refuse(
                f"resource {res.id!r} is wholly not shared (不予共享): no application can be "
                f"granted (legal basis: {res.share.legal_basis})"
            )
        _text(ev.purpose, "the purpose of use (用途)", required=True)
        _text(ev.legal_basis, "the legal basis", required=False)
        if not ev.fields:
            raise _refuse("name the conditional fields you apply for (--fields)")
        _check_kind(ev)
        if authority.unconditional_application(ev, catalog):
            return  # under compliance review: authorised at the review (no provider's answer)
        self._check_conditional_fields(ev.fields, res.id, catalog, verify=ev.for_verification)

    @staticmethod
    def _check_conditional_fields(
        fields: tuple[str, ...], resource: str, catalog: Catalog, *, verify: bool = False
    ) -> None:
        """Fields an application or approval may name (:func:`exchange.sharing.terms.check_fields`)."""
        terms.check_fields(fields, resource, catalog, verify=verify)

    def application_of(self, ev: GrantEvent) -> Application:
        """The application ``ev`` names, for the same consumer and resource."""
        app = self.applications.get(ev.application_id or "")
        if app is None:
            raise _refuse(f"unknown application {ev.application_id!r}")
        if app.resource != ev.resource or app.consumer != ev.consumer:
            raise _refuse(f"application {app.id} is for {app.consumer}/{app.resource}")
        return app

    def _pending(self, ev: GrantEvent, *, negotiating: bool = False) -> Application:
        """The application a provider answers: forwarded to it and not answered yet (or, with
        ``negotiating``, refused and under negotiation: the provider may still approve)."""
        app = self.application_of(ev)
        if app.stage is Stage.REVIEW:
            raise _refuse(
                f"application {app.id} is under compliance review (符合性审查) by the data-sharing "
                "authority; the provider answers once the authority forwards it"
            )
        if negotiating and app.stage is Stage.NEGOTIATION:
            return app
        if app.status is not AppStatus.PENDING:
            raise _refuse(f"application {app.id} was already answered ({app.status.value})")
        return app

    @staticmethod
    def _check_provider(ev: GrantEvent, catalog: Catalog, what: str) -> None:
        provider = catalog.resource(ev.resource).provider
        if ev.actor != provider:
            raise _refuse(
                f"only the provider of {ev.resource!r} ({provider}) may {what}; "
                f"{ev.actor!r} may not"
            )

    def _check_approve(self, ev: GrantEvent, catalog: Catalog) -> None:
        self._check_provider(ev, catalog, "approve its applications")
        app = self._pending(ev, negotiating=True)
        if not ev.grant_id or ev.grant_id in self.grants:
            raise _refuse(f"grant id {ev.grant_id!r} is missing or already used")
        _check_kind(ev)
        terms.check_terms(ev, app, catalog, "the approval")
        _text(ev.purpose, "purpose", required=False)

    def _check_reject(self, ev: GrantEvent, catalog: Catalog) -> None:
        self._check_provider(ev, catalog, "reject its applications")
        self._pending(ev)
        _text(ev.reason, "a reason for the rejection", required=True)

    def _check_revoke(self, ev: GrantEvent, catalog: Catalog) -> None:
        grant = self.grants.get(ev.grant_id or "")
        if grant is not None and grant.ordered_by is not None:
            authority.check_order_revoker(grant, ev, catalog)
        else:
            self._check_provider(ev, catalog, "revoke its grants")
        if grant is None or grant.resource != ev.resource:
            raise _refuse(f"unknown grant {ev.grant_id!r} for {ev.resource!r}")
        if not grant.active(ev.at):
            raise _refuse(f"grant {grant.id} is already {grant.status(ev.at)}")
        _text(ev.reason, "a reason for the revocation", required=True)

    def _mutate(self, ev: GrantEvent, catalog: Catalog) -> None:
        if ev.kind is EventKind.SUBSCRIBED:
            self.subscriptions.add((ev.consumer, ev.resource))
        elif ev.kind is EventKind.APPLIED:
            assert ev.application_id
            assert ev.purpose
            res = catalog.resource(ev.resource)
            stage = Stage.REVIEW if catalog.workflow.compliance_review else Stage.ANSWER
            self.applications[ev.application_id] = Application(
                id=ev.application_id,
                consumer=ev.consumer,
                resource=ev.resource,
                fields=ev.fields,
                purpose=ev.purpose,
                legal_basis=ev.legal_basis,
                applied_at=ev.at,
                kind=GrantKind(ev.grant_kind or GrantKind.DATA.value),
                stage=stage,
                limits=catalog.workflow.time_limits.for_case(on_platform=res.on_platform),
                steps=(Step.of("applied", ev.actor, ev.at, stage, reason=ev.purpose),),
            )
        elif ev.kind is EventKind.APPROVED:
            assert ev.application_id
            assert ev.grant_id
            app = self.applications[ev.application_id]
            self.applications[app.id] = replace(
                app,
                status=AppStatus.APPROVED,
                answered_at=app.answered_at or ev.at,  # after a negotiation: the first answer
                grant_id=ev.grant_id,
                **self.step(app, ev, "answered", Stage.APPROVED, "approved"),
            )
            self.add_grant(ev, app)
        elif ev.kind is EventKind.REJECTED:
            assert ev.application_id
            app = self.applications[ev.application_id]
            self.applications[app.id] = replace(
                app,
                status=AppStatus.REJECTED,
                answered_at=ev.at,
                reason=ev.reason,
                **self.step(app, ev, "answered", Stage.REJECTED, "rejected"),
            )
        elif ev.kind is EventKind.REVOKED:
            assert ev.grant_id
            g = self.grants[ev.grant_id]
            self.grants[g.id] = replace(g, revoked_at=ev.at, revoke_reason=ev.reason)
            of = self.applications.get(g.application_id)
            if of is not None:
                self.applications[of.id] = replace(
                    of, **self.step(of, ev, "revoked", of.stage, g.id)
                )
        else:
            authority.mutate(self, ev, catalog)

    @staticmethod
    def step(
        app: Application, ev: GrantEvent, name: str, to: Stage, outcome: str = ""
    ) -> dict[str, Any]:
        """The stage and path of ``app`` after the step ``name`` that ``ev`` takes."""
        step = Step.of(name, ev.actor, ev.at, to, outcome, ev.reason)
        return {"stage": to, "steps": (*app.steps, step)}

    def add_grant(self, ev: GrantEvent, app: Application, *, ordered_by: str | None = None) -> None:
        """The grant an approval (or the authority's order) makes; it supersedes the last one."""
        assert ev.grant_id
        key = (ev.consumer, ev.resource)
        previous = self.current.get(key)
        if previous and self.grants[previous].superseded_by is None:
            self.grants[previous] = replace(self.grants[previous], superseded_by=ev.grant_id)
        self.grants[ev.grant_id] = Grant(
            id=ev.grant_id,
            application_id=app.id,
            consumer=ev.consumer,
            resource=ev.resource,
            fields=ev.fields,
            purpose=ev.purpose or app.purpose,
            row_filter=ev.row_filter,
            masks=dict(ev.masks),
            valid_until=ev.valid_until,
            approved_at=ev.at,
            kind=GrantKind(ev.grant_kind or GrantKind.DATA.value),
            quota_per_second=ev.quota_per_second,
            quota_per_day=ev.quota_per_day,
            at_rest=AtRest(ev.at_rest or AtRest.DELETE.value),
            ordered_by=ordered_by,
        )
        self.current[key] = ev.grant_id


#: the rule of each kind of command (the authority's workflow: exchange.sharing.authority)
_CHECKS: dict[EventKind, Callable[[GrantBook, GrantEvent, Catalog], None]] = {
    EventKind.SUBSCRIBED: GrantBook._check_subscribe,
    EventKind.APPLIED: GrantBook._check_apply,
    EventKind.APPROVED: GrantBook._check_approve,
    EventKind.REJECTED: GrantBook._check_reject,
    EventKind.REVOKED: GrantBook._check_revoke,
    **authority.CHECKS,
}
