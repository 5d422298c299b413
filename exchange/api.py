"""The Python API a department's own system uses: subscribe, apply, approve, ...

Every CLI command of the sharing workflow is a method here, so a
department's system can apply for and approve data without shelling out::

    async with Department(bootstrap, "police") as police:
        app_id = await police.apply("birth_medical_certificate",
                                    fields=["mother_id_number"],
                                    purpose="新生儿户口登记 household registration of newborns")
    async with Department(bootstrap, "health") as health:
        grant_id = await health.approve(app_id, masks={"mother_id_number": "keep:6:4"})

Each command is checked against the current state before it is written, and
read back afterwards: it returns only once the permission manager accepted
it, and raises :class:`CommandRefused` with the reason otherwise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any, Self

from exchange import kafka, state, topics
from exchange.errors import CommandRefused, ExchangeError, PermissionDenied
from exchange.grants import Application, AppStatus, EventKind, Grant, GrantEvent, new_id, now
from exchange.policy import View, compute_view
from exchange.state import GRANT_CODEC, ControlState


class Department:
    """Acts on the bus as one department (``--as DEPT`` on the command line)."""

    def __init__(self, bootstrap: str, department: str) -> None:
        self.bootstrap = bootstrap
        self.department = department
        self._state: ControlState | None = None
        self._producer: Any = None

    async def start(self) -> None:
        self._state = await state.load(self.bootstrap)
        self._state.catalog.department(self.department)  # unknown department: fail early
        if self._producer is None:
            producer = kafka.producer(self.bootstrap, linger_ms=0)
            await producer.start()
            self._producer = producer

    async def stop(self) -> None:
        if self._producer is not None:
            p, self._producer = self._producer, None
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
        self._state = await state.load(self.bootstrap)
        return self._state

    async def _submit(self, event: GrantEvent) -> None:
        """Check, write and read back one command."""
        current = await self.refresh()
        current.book.check(event, current.catalog)  # raises CommandRefused
        await self._producer.send_and_wait(
            topics.GRANTS, key=event.resource.encode(), value=GRANT_CODEC.encode(event.to_avro())
        )
        after = await self.refresh()
        if event.event_id in after.book.refused:
            raise CommandRefused(after.book.refused[event.event_id])
        if event.event_id not in after.book.accepted:
            raise ExchangeError(f"command {event.event_id} was written but is not visible yet")

    # --- consumer side ---------------------------------------------------------

    def explain(self, resource: str) -> View:
        """The effective view of ``resource`` for this department, with every exclusion's reason."""
        s = self.state
        return compute_view(s.catalog, s.book, self.department, resource, at=now())

    async def subscribe(self, resource: str) -> View:
        """Subscribe to a resource; raises :class:`PermissionDenied` if the view is empty."""
        await self.refresh()
        view = self.explain(resource)
        if view.denied:
            raise PermissionDenied(
                view.denied, department=self.department, resource=resource, rule=view.denied
            )
        if (self.department, resource) not in self.state.book.subscriptions:
            await self._submit(
                GrantEvent(
                    kind=EventKind.SUBSCRIBED,
                    actor=self.department,
                    consumer=self.department,
                    resource=resource,
                )
            )
        return self.explain(resource)

    async def apply(
        self,
        resource: str,
        *,
        fields: Iterable[str],
        purpose: str,
        legal_basis: str | None = None,
    ) -> str:
        """Apply for conditional fields (有条件共享); returns the application id."""
        app_id = new_id("APP")
        await self._submit(
            GrantEvent(
                kind=EventKind.APPLIED,
                actor=self.department,
                consumer=self.department,
                resource=resource,
                application_id=app_id,
                fields=tuple(dict.fromkeys(fields)),
                purpose=purpose,
                legal_basis=legal_basis,
            )
        )
        return app_id

    # --- provider side ---------------------------------------------------------

    def _application(self, application_id: str) -> Application:
        app = self.state.book.applications.get(application_id)
        if app is None:
            raise CommandRefused(f"unknown application {application_id!r}")
        return app

    async def approve(
        self,
        application_id: str,
        *,
        fields: Iterable[str] | None = None,
        row_filter: str | None = None,
        masks: Mapping[str, str] | None = None,
        until: dt.datetime | None = None,
        purpose: str | None = None,
    ) -> str:
        """Approve an application (provider only), possibly narrowing it; returns the grant id."""
        await self.refresh()
        app = self._application(application_id)
        grant_id = new_id("GR")
        await self._submit(
            GrantEvent(
                kind=EventKind.APPROVED,
                actor=self.department,
                consumer=app.consumer,
                resource=app.resource,
                application_id=app.id,
                grant_id=grant_id,
                fields=tuple(dict.fromkeys(fields)) if fields else app.fields,
                purpose=purpose or app.purpose,
                row_filter=row_filter,
                masks=dict(masks or {}),
                valid_until=until,
            )
        )
        return grant_id

    async def reject(self, application_id: str, *, reason: str) -> None:
        """Reject an application (provider only); a reason is required."""
        await self.refresh()
        app = self._application(application_id)
        await self._submit(
            GrantEvent(
                kind=EventKind.REJECTED,
                actor=self.department,
                consumer=app.consumer,
                resource=app.resource,
                application_id=app.id,
                reason=reason,
            )
        )

    async def revoke(self, grant_id: str, *, reason: str) -> None:
        """End a grant at once (provider only); a reason is required."""
        await self.refresh()
        grant = self.state.book.grants.get(grant_id)
        if grant is None:
            raise CommandRefused(f"unknown grant {grant_id!r}")
        await self._submit(
            GrantEvent(
                kind=EventKind.REVOKED,
                actor=self.department,
                consumer=grant.consumer,
                resource=grant.resource,
                grant_id=grant.id,
                application_id=grant.application_id,
                reason=reason,
            )
        )

    # --- listings --------------------------------------------------------------

    def applications(
        self, *, status: str | None = None, mine_only: bool = True
    ) -> list[Application]:
        """Applications made by or addressed to this department, newest first."""
        s = self.state
        out = []
        for app in s.book.applications.values():
            provider = (
                s.catalog.resources[app.resource].provider
                if app.resource in s.catalog.resources
                else None
            )
            if mine_only and self.department not in (app.consumer, provider):
                continue
            if status == "overdue":
                if not (app.status is AppStatus.PENDING and app.overdue(now())):
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
