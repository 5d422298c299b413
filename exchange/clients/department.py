"""The Python API a department's own system uses: subscribe, apply, approve, ...

Every CLI command of the sharing workflow is a method here, so a
department's system can apply for and approve data without shelling out::

    async with Department(bus, "police") as police:
        app_id = await police.apply("birth_medical_certificate",
                                    fields=["mother_id_number"],
                                    purpose="新生儿户口登记 household registration of newborns")
    async with Department(bus, "health") as health:
        grant_id = await health.approve(app_id, masks={"mother_id_number": "keep:6:4"})

Each command is checked against the current state before it is written, and
read back afterwards: it returns only once the permission manager accepted
it, and raises :class:`CommandRefused` with the reason otherwise.

Every command is audited on ``gov.audit`` before it returns, a refused one
included (``COMMAND_REFUSED`` with the reason; ``SUBSCRIPTION_DENIED`` for a
subscription): each :class:`Department` is one audit chain.

What a command carries is checked first (:mod:`exchange.sharing.limits`:
lengths, control characters, text that is not UTF-8), and whatever a refused
command carried is quoted in the audit entry escaped and cut short, so no
argument can make the refusal itself fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from exchange import beijing
from exchange.audit.entry import Action, Decision, Draft, detail_map
from exchange.audit.writer import AuditWriter
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.catalog import signing
from exchange.clients import workflow
from exchange.clients.disputes import DisputeDesk
from exchange.control.state import GRANT_CODEC, ControlFollower, ControlState
from exchange.errors import (
    CommandRefused,
    ControlStateReset,
    ExchangeError,
    PermissionDenied,
    UnknownResource,
)
from exchange.sharing import limits as command_limits
from exchange.sharing.dispute_records import DEFAULT_ANSWER_WITHIN, Answer, Dispute
from exchange.sharing.policy import View, compute_view
from exchange.sharing.records import (
    GRANT_EVENT,
    Application,
    EventKind,
    Grant,
    GrantEvent,
    new_id,
    now,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from exchange.metrics import AuditMetrics

_MAX_DETAIL = 10_000  # longest detail value (the fields of a wide resource)


class Department:
    """Acts on the bus as one department (``--as DEPT`` on the command line)."""

    def __init__(
        self,
        bus: Connection,
        department: str,
        *,
        signing_key: Ed25519PrivateKey | None = None,
        person: str | None = None,
        audit_metrics: AuditMetrics | None = None,
        dispute_answer_within: int = DEFAULT_ANSWER_WITHIN,
    ) -> None:
        """``signing_key``: the department's Ed25519 private key; required for commands when
        the catalog registers a public key for it (see :mod:`exchange.catalog.signing`).

        ``person``: who, in the department, acts (a console user's name); every audit
        entry this session writes names them in its details (``person``). A program that
        acts for several people in turn (the web console) sets :attr:`person` per command.

        ``audit_metrics``: where a long-lived session (the web console's) counts its audit
        entries and exports its unsigned tail; None for a command's short session.

        ``dispute_answer_within``: working days a provider has to answer a dispute this
        session opens (疑义校核; the setting ``EXCHANGE_DISPUTE_ANSWER_WORKING_DAYS``).
        """
        self.bus = bus
        self.department = department
        self.signing_key = signing_key
        self.person = person
        self._state: ControlState | None = None
        self._producer: Any = None
        self._audit: AuditWriter | None = None
        self._audit_metrics = audit_metrics
        self._reader: ControlFollower | None = None
        self._disputes = DisputeDesk(self, answer_within=dispute_answer_within)

    async def start(self) -> None:
        # one control-topic reader for the whole session, starting from the routers' last
        # snapshot of the grant book: each command then reads only what was written since.
        # The producer connects meanwhile (not after): one session start, not two in a row.
        self._reader = ControlFollower(ControlState(self.bus))
        starts = [self._reader.start(follow=False, from_snapshot=True)]
        if self._producer is None:
            self._producer = kafka.producer(self.bus, linger_ms=0)
            starts.append(self._producer.start())
        try:
            for result in await asyncio.gather(*starts, return_exceptions=True):
                if isinstance(result, BaseException):
                    raise result
            self._state = self._reader.state
            catalog = self._state.catalog  # no catalog loaded: fail early
        except BaseException:
            await self.stop()
            raise
        if self._audit is None:
            role = command_limits.safe(self.department, command_limits.MAX_ID_CHARS)
            self._audit = AuditWriter(
                self._producer, self._state.registry, role=role, metrics=self._audit_metrics
            )
        try:
            command_limits.check_id(self.department, "department")
            catalog.department(self.department)
        except (UnknownResource, CommandRefused) as exc:  # a department the catalog lacks
            try:
                await self._audit_entry(
                    Action.COMMAND_REFUSED,
                    Decision.DENIED,
                    reason=exc.message,
                    details=detail_map(command="start"),
                )
            finally:
                await self.stop()
            raise

    async def stop(self) -> None:
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await reader.stop()
        if self._producer is not None:
            p, self._producer = self._producer, None
            audit, self._audit = self._audit, None
            if audit is not None:  # a clean stop signs the head of its chain
                await audit.stop()
            await p.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def state(self) -> ControlState:
        if self._state is None:
            raise ExchangeError("Department is not started: use 'async with Department(...)'")
        return self._state

    async def refresh(self) -> ControlState:
        """Catch up with every command and catalog change written since the last look."""
        return await self._catch_up(None)

    async def _catch_up(self, at_least: dict[str, int] | None) -> ControlState:
        if self._reader is None:
            raise ExchangeError("Department is not started: use 'async with Department(...)'")
        try:
            return await self._reader.catch_up(at_least=at_least)
        except ControlStateReset as exc:
            # no command is checked against, or written after, state that left the bus
            raise ControlStateReset(
                f"{exc.message}. This session refuses to act on it: nothing was written; "
                "start a new session (it reads the control topics as they are now)",
                topic=exc.topic,
                partition=exc.partition,
                kind=exc.kind,
                had=exc.had,
                found=exc.found,
            ) from exc

    async def _submit(self, event: GrantEvent, *, caught_up: bool = False) -> None:
        """Sign, check, write and read back one command.

        ``caught_up``: the caller read the control topics for this very command just
        before (nothing awaited since): the check uses that state, not a second read.
        """
        command_limits.check_event(event)  # raises CommandRefused
        if self.signing_key is not None:
            event = replace(event, signature=signing.sign(self.signing_key, event.signed_fields()))
        current = self.state if caught_up else await self.refresh()
        # raises CommandRefused
        current.book.check(event, current.catalog, workflow=current.workflow_at(event.at))
        # resolvable on gov.ctl.schemas before the first event that uses it (a no-op once it is)
        await current.registry.register(self._producer, GRANT_EVENT)
        written = await self._producer.send_and_wait(
            topics.GRANTS, key=event.resource.encode(), value=GRANT_CODEC.encode(event.to_avro())
        )
        after = await self._catch_up({topics.GRANTS: written.offset + 1})
        if event.event_id in after.book.refused:
            raise CommandRefused(after.book.refused[event.event_id])
        if event.event_id not in after.book.accepted:
            raise ExchangeError(f"command {event.event_id} was written but is not visible yet")

    @property
    def producer(self) -> Any:
        """The session's producer (commands and audit entries)."""
        if self._producer is None:
            raise ExchangeError("Department is not started: use 'async with Department(...)'")
        return self._producer

    # --- audit -----------------------------------------------------------------

    async def _audit_entry(self, action: Action, decision: str, **facts: Any) -> None:
        """Write one audit entry of this department and wait for its acknowledgement.

        Text that a refused command carried (too long, not UTF-8, control
        characters) is written as :func:`~exchange.sharing.limits.shown` of it.
        """
        if self._audit is None:
            raise ExchangeError("Department is not started: use 'async with Department(...)'")
        details = {
            k: command_limits.safe(v, _MAX_DETAIL) for k, v in facts.pop("details", {}).items()
        }
        if self.person is not None:
            details["person"] = command_limits.safe(self.person, command_limits.MAX_ID_CHARS)
        resource = facts.get("resource")
        res = self.state.catalog.resources.get(resource) if isinstance(resource, str) else None
        facts.setdefault("provider", res.provider if res else None)
        for key, value in facts.items():
            if isinstance(value, str):
                facts[key] = command_limits.safe(value, command_limits.MAX_AUDIT_TEXT)
        actor = command_limits.safe(self.department, command_limits.MAX_ID_CHARS)
        await self._audit.write(
            Draft(action, actor=actor, decision=decision, details=details, **facts)
        )

    async def audit(self, action: Action, decision: str, **facts: Any) -> None:
        """Write one audit entry of this department (a resync request, a snapshot file)."""
        await self._audit_entry(action, decision, **facts)

    def refusals_audited(
        self, command: str, facts: dict[str, Any]
    ) -> AbstractAsyncContextManager[None]:
        """Audit a refusal of the command (COMMAND_REFUSED, with the reason), then re-raise it."""
        return self._refusals_audited(command, facts)

    @asynccontextmanager
    async def _refusals_audited(self, command: str, facts: dict[str, Any]) -> AsyncIterator[None]:
        """Audit a refusal of the command (COMMAND_REFUSED, with the reason), then re-raise it.

        ``facts`` may be completed inside the block, as the command learns them.
        """
        try:
            yield
        except CommandRefused as exc:
            details = detail_map(command=command, **facts.pop("details", {}))
            await self._audit_entry(
                Action.COMMAND_REFUSED,
                Decision.DENIED,
                reason=exc.message,
                details=details,
                **facts,
            )
            raise

    # --- consumer side ---------------------------------------------------------

    def explain(self, resource: str) -> View:
        """The effective view of ``resource`` for this department, with every exclusion's reason."""
        s = self.state
        return compute_view(s.catalog, s.book, self.department, resource, at=now())

    async def subscribe(self, resource: str) -> View:
        """Subscribe to a resource; raises :class:`PermissionDenied` if the view is empty."""
        await self.refresh()
        try:
            command_limits.check_id(resource, "resource")
            view = self.explain(resource)
            if view.denied:
                raise PermissionDenied(
                    view.denied, department=self.department, resource=resource, rule=view.denied
                )
            already = (self.department, resource) in self.state.book.subscriptions
            event_id = None  # no command written: subscribed already
            if not already:
                event = GrantEvent(
                    kind=EventKind.SUBSCRIBED,
                    actor=self.department,
                    consumer=self.department,
                    resource=resource,
                )
                await self._submit(event)
                event_id = event.event_id
        except (PermissionDenied, CommandRefused, UnknownResource) as exc:
            await self._audit_entry(
                Action.SUBSCRIPTION_DENIED,
                Decision.DENIED,
                resource=resource,
                consumer=self.department,
                reason=exc.message,
            )
            raise
        view = self.explain(resource)
        await self._audit_entry(
            Action.SUBSCRIPTION_GRANTED,
            Decision.GRANTED,
            resource=resource,
            consumer=self.department,
            grant_id=view.grant_id,
            purpose=view.purpose,
            details=detail_map(
                fields=view.fields,
                masks=view.masks or None,
                row_filter=view.row_filter,
                left_out=sorted(view.excluded) or None,
                already_subscribed=already,
                event_id=event_id,
            ),
        )
        return view

    async def apply(
        self,
        resource: str,
        *,
        fields: Iterable[str],
        purpose: str,
        legal_basis: str | None = None,
        verify: bool = False,
    ) -> str:
        """Apply for conditional fields (有条件共享); returns the application id.

        ``verify``: for verification only (核验): the grant will let the department ask
        whether a record matches values of these fields, and deliver none of them.
        """
        app_id = new_id("APP")
        wanted = tuple(dict.fromkeys(fields))
        facts: dict[str, Any] = {
            "resource": resource,
            "consumer": self.department,
            "application_id": app_id,
            "purpose": purpose,
            "details": {"fields": wanted},
        }
        async with self._refusals_audited("apply", facts):
            command_limits.check_id(resource, "resource")
            command_limits.check_fields(wanted)
            event = GrantEvent(
                kind=EventKind.APPLIED,
                actor=self.department,
                consumer=self.department,
                resource=resource,
                application_id=app_id,
                fields=wanted,
                purpose=purpose,
                legal_basis=legal_basis,
                grant_kind="verify" if verify else None,
            )
            await self._submit(event)
        await self._audit_entry(
            Action.APPLICATION_SUBMITTED,
            Decision.SUBMITTED,
            resource=resource,
            consumer=self.department,
            application_id=app_id,
            purpose=purpose,
            details=detail_map(
                fields=wanted,
                legal_basis=legal_basis,
                applied_at=event.at,
                **self.state.book.applications[app_id].current_window().due_facts(),
                event_id=event.event_id,
            ),
        )
        return app_id

    # --- provider side ---------------------------------------------------------

    async def _answer(
        self,
        command: str,
        facts: dict[str, Any],
        action: Action,
        decision: str,
        make: Callable[[], Awaitable[tuple[GrantEvent, dict[str, Any]]]],
    ) -> GrantEvent:
        """The one path of approve, reject and revoke: build the event, write it, audit it.

        ``make`` checks what the command carries and builds its event and the facts of
        its audit entry; a refusal anywhere is audited with ``facts`` as known by then.
        """
        async with self._refusals_audited(command, facts):
            event, audited = await make()  # caught up to find what it answers
            await self._submit(event, caught_up=True)
        await self._audit_entry(action, decision, **audited)
        return event

    async def _application(self, application_id: str, facts: dict[str, Any]) -> Application:
        """The application a provider answers, from the book caught up to now."""
        command_limits.check_id(application_id, "application id")
        await self.refresh()
        app = self.state.book.applications.get(application_id)
        if app is None:
            raise CommandRefused(f"unknown application {application_id!r}")
        facts.update(resource=app.resource, consumer=app.consumer, purpose=app.purpose)
        return app

    async def approve(
        self,
        application_id: str,
        *,
        fields: Iterable[str] | None = None,
        row_filter: str | None = None,
        masks: Mapping[str, str] | None = None,
        until: dt.datetime | dt.date | None = None,
        purpose: str | None = None,
        verify: bool | None = None,
        quota_per_second: int | None = None,
        quota_per_day: int | None = None,
        at_rest: str | None = None,
    ) -> str:
        """Approve an application (provider only), possibly narrowing it; returns the grant id.

        ``at_rest``: what the consumer does with the rows it holds once the grant is revoked
        or expires, ``delete`` (None: the default) or ``keep-frozen``
        (:class:`~exchange.sharing.records.AtRest`).

        ``verify``: a verification-only grant (核验); None: what the application asked for.
        ``quota_per_second`` / ``quota_per_day``: limits on requests by key (接口调用).

        ``until`` follows :data:`exchange.beijing.EXPIRY_RULE`, as ``--until`` does: a
        :class:`datetime.date` is valid through the end of that day in Beijing; a
        :class:`datetime.datetime` must carry its zone (one without is refused, audited).
        """
        facts: dict[str, Any] = {"application_id": application_id}
        if isinstance(until, dt.date) and not isinstance(until, dt.datetime):
            until = beijing.end_of_day(until)

        async def make() -> tuple[GrantEvent, dict[str, Any]]:
            app = await self._application(application_id, facts)
            command_limits.check_fields(fields)
            command_limits.check_masks(masks)
            command_limits.check_text(purpose, "the purpose of use (用途)")
            command_limits.check_until(until)
            command_limits.check_row_filter(
                row_filter, self.state.catalog.resources.get(app.resource)
            )
            event = GrantEvent(
                kind=EventKind.APPROVED,
                actor=self.department,
                consumer=app.consumer,
                resource=app.resource,
                application_id=app.id,
                grant_id=new_id("GR"),
                fields=tuple(dict.fromkeys(fields)) if fields else app.fields,
                purpose=purpose or app.purpose,
                row_filter=row_filter,
                masks=dict(masks or {}),
                valid_until=until,
                grant_kind=(
                    "verify" if verify or (verify is None and app.kind.value == "verify") else None
                ),
                quota_per_second=quota_per_second,
                quota_per_day=quota_per_day,
                at_rest=at_rest,
            )
            facts.update(
                purpose=event.purpose,
                details={"fields": event.fields, "masks": event.masks or None},
            )
            return event, {
                **_answered(app),
                "grant_id": event.grant_id,
                "purpose": event.purpose,
                "details": detail_map(
                    fields=event.fields,
                    masks=event.masks or None,
                    row_filter=row_filter,
                    valid_until=until,
                    grant_kind=event.grant_kind,
                    quota_per_second=quota_per_second,
                    quota_per_day=quota_per_day,
                    at_rest=at_rest,
                    event_id=event.event_id,
                    **app.answer_facts(event.at),
                ),
            }

        event = await self._answer(
            "approve", facts, Action.APPLICATION_APPROVED, Decision.APPROVED, make
        )
        assert event.grant_id is not None
        return event.grant_id

    async def reject(self, application_id: str, *, reason: str) -> None:
        """Reject an application (provider only); a reason is required."""
        facts: dict[str, Any] = {"application_id": application_id}

        async def make() -> tuple[GrantEvent, dict[str, Any]]:
            app = await self._application(application_id, facts)
            event = GrantEvent(
                kind=EventKind.REJECTED,
                actor=self.department,
                consumer=app.consumer,
                resource=app.resource,
                application_id=app.id,
                reason=reason,
            )
            return event, {
                **_answered(app),
                "purpose": app.purpose,
                "reason": reason,
                "details": detail_map(
                    fields=app.fields, event_id=event.event_id, **app.answer_facts(event.at)
                ),
            }

        await self._answer("reject", facts, Action.APPLICATION_REJECTED, Decision.REJECTED, make)

    async def revoke(self, grant_id: str, *, reason: str) -> None:
        """End a grant at once (provider only); a reason is required."""
        facts: dict[str, Any] = {"grant_id": grant_id}

        async def make() -> tuple[GrantEvent, dict[str, Any]]:
            command_limits.check_id(grant_id, "grant id")
            await self.refresh()
            grant = self.state.book.grants.get(grant_id)
            if grant is None:
                raise CommandRefused(f"unknown grant {grant_id!r}")
            facts.update(
                resource=grant.resource,
                consumer=grant.consumer,
                application_id=grant.application_id,
                purpose=grant.purpose,
            )
            event = GrantEvent(
                kind=EventKind.REVOKED,
                actor=self.department,
                consumer=grant.consumer,
                resource=grant.resource,
                grant_id=grant.id,
                application_id=grant.application_id,
                reason=reason,
            )
            return event, {
                **facts,
                "grant_id": grant.id,
                "reason": reason,
                "details": detail_map(fields=grant.fields, event_id=event.event_id),
            }

        await self._answer("revoke", facts, Action.GRANT_REVOKED, Decision.REVOKED, make)

    # --- disputes (疑义校核): exchange.clients.disputes ----------------------------

    async def dispute(
        self, resource: str, record_id: str, *, fields: Iterable[str], reason: str
    ) -> str:
        """Dispute fields of a record this department received; returns the dispute id.

        Refused unless the record (by its ``gov-record-id``) is on this department's
        delivery topic, and each field is one it received of it.
        """
        return await self._disputes.open(resource, record_id, fields, reason=reason)

    async def answer_dispute(self, dispute_id: str, *, corrected: bool, reason: str) -> Dispute:
        """Answer a dispute about one of this department's resources (provider only)."""
        answer = Answer.CORRECTED if corrected else Answer.CONFIRMED
        return await self._disputes.answer(dispute_id, answer, reason=reason)

    async def correct(
        self, dispute_id: str, record: Mapping[str, Any] | Path, *, reason: str | None = None
    ) -> Dispute:
        """Publish the corrected record of a dispute (a record, or a JSON Lines file of one);
        the dispute closes with a link to it."""
        return await self._disputes.correct(dispute_id, record, reason=reason)

    async def disputes(self, *, status: str | None = None) -> list[Dispute]:
        """Disputes opened by this department or about its resources (open/answered/overdue)."""
        return await self._disputes.listing(status=status)

    # --- the data-sharing authority's workflow (exchange.clients.workflow) -------

    async def review(self, application_id: str, *, passed: bool, reason: str | None = None) -> str:
        """符合性审查 (the data-sharing authority only): pass an application (forwarded to the
        provider; unconditional data is authorised at once) or return it with a reason.
        Returns the application's stage after it."""
        return await workflow.review(self, application_id, passed=passed, reason=reason)

    async def contest(self, application_id: str, *, reason: str) -> str:
        """共享争议 (the applicant): contest a rejection, saying why the data is still needed;
        the negotiation with the provider opens. Returns the stage (negotiation)."""
        return await workflow.simple(self, "contest", application_id, reason)

    async def negotiate(self, application_id: str, *, message: str) -> str:
        """One message of the negotiation (consumer or provider), recorded on the path."""
        return await workflow.simple(self, "negotiate", application_id, message)

    async def escalate(self, application_id: str, *, reason: str) -> str:
        """Escalate a dispute to the data-sharing authority (consumer or provider)."""
        return await workflow.simple(self, "escalate", application_id, reason)

    async def uphold(self, application_id: str, *, reason: str) -> str:
        """The authority's decision: the provider's refusal stands."""
        return await workflow.simple(self, "uphold", application_id, reason)

    async def order(
        self,
        application_id: str,
        *,
        reason: str,
        fields: Iterable[str] | None = None,
        row_filter: str | None = None,
        masks: Mapping[str, str] | None = None,
        until: dt.datetime | dt.date | None = None,
    ) -> str:
        """The authority's decision: order the provider to share (责令共享), with fields,
        row filter, masks and expiry as an approval; returns the grant id. The router
        delivers under it; only the authority can end it (the provider may appeal)."""
        return await workflow.order(
            self,
            application_id,
            reason=reason,
            fields=fields,
            row_filter=row_filter,
            masks=masks,
            until=until,
        )

    async def appeal(self, application_id: str, *, reason: str) -> str:
        """The provider appeals an order; recorded, the ordered grant stands."""
        return await workflow.simple(self, "appeal", application_id, reason)

    # --- listings --------------------------------------------------------------

    def applications(
        self, *, status: str | None = None, mine_only: bool = True, stage: str | None = None
    ) -> list[Application]:
        """Applications made by or addressed to this department, newest first (the data-sharing
        authority's: every application). ``stage``: only those at this stage, e.g. ``review``
        (the authority's inbox); ``status="overdue"``: those whose stage under way is late."""
        s = self.state
        bureau = s.catalog.authority()
        if bureau is not None and bureau.id == self.department:
            mine_only = False
        out = []
        for app in s.book.applications.values():
            if stage is not None and app.stage.value != stage:
                continue
            provider = (
                s.catalog.resources[app.resource].provider
                if app.resource in s.catalog.resources
                else None
            )
            if mine_only and self.department not in (app.consumer, provider):
                continue
            if status == "overdue":
                if app.overdue_stage(now()) is None:
                    continue
            elif status and app.status.value != status:
                continue
            out.append(app)
        return sorted(out, key=lambda a: a.applied_at, reverse=True)

    def grants(self) -> list[Grant]:
        s = self.state
        out = []
        for g in s.book.grants.values():
            provider = (
                s.catalog.resources[g.resource].provider
                if g.resource in s.catalog.resources
                else None
            )
            if self.department in (g.consumer, provider):
                out.append(g)
        return sorted(out, key=lambda g: g.approved_at, reverse=True)


def _answered(app: Application) -> dict[str, Any]:
    """The facts every answer to an application names in its audit entry."""
    return {"resource": app.resource, "consumer": app.consumer, "application_id": app.id}
