"""What a department asks of backfills: its subscriptions' progress, and a resync.

``exchange subscriptions`` and ``exchange resync`` are thin layers over the
functions here; a department's own system can call them too::

    async with Department(bus, "police") as police:
        for line in await subscriptions(bus, police):
            print(line.resource, line.backfill)
        await request_resync(bus, police, "birth_medical_certificate", reason="新系统上线")
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from exchange.audit.entry import Action, Decision
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.clients.department import Department
from exchange.errors import CommandRefused, PermissionDenied
from exchange.router.backfill_progress import resync_refusal
from exchange.router.backfill_state import BackfillBook, ResyncRequest, encode_request, summary
from exchange.sharing.policy import compute_view
from exchange.sharing.records import new_id, now


@dataclass(frozen=True)
class Subscription:
    """One resource a department receives, and where its backfill (全量) stands."""

    resource: str
    topic: str
    fields: tuple[str, ...]
    grant_id: str | None
    backfill: str


async def subscriptions(bus: Connection, dept: Department) -> list[Subscription]:
    """Every resource ``dept`` receives now, with its backfill's progress."""
    book = BackfillBook(bus, follow=False)
    await book.start()
    await book.stop()
    state = dept.state
    at = dt.datetime.now(dt.UTC)
    out = []
    for res_id in sorted(state.catalog.resources):
        view = compute_view(state.catalog, state.book, dept.department, res_id, at=at)
        if view.denied or not view.receiving or view.consumer == view.provider:
            continue
        out.append(
            Subscription(
                res_id,
                view.topic,
                view.fields,
                view.grant_id,
                summary(book.of_view(dept.department, res_id)),
            )
        )
    return out


async def request_resync(
    bus: Connection, dept: Department, resource: str, *, reason: str | None = None
) -> str:
    """Ask the routers for ``dept``'s full view of ``resource`` again; returns the request id.

    Refused (and audited) if ``dept`` receives nothing of it, or asked again sooner than
    the catalog's ``resync_interval_hours`` allows.
    """
    state = await dept.refresh()
    at = dt.datetime.now(dt.UTC)
    view = compute_view(state.catalog, state.book, dept.department, resource, at=at)
    facts = {"resource": resource, "consumer": dept.department}
    if view.denied or not view.receiving:
        why = view.denied or view.not_receiving()
        await dept.audit(Action.COMMAND_REFUSED, Decision.DENIED, reason=why, **facts)
        raise PermissionDenied(
            f"{dept.department} receives nothing of {resource} to resync: {why}",
            department=dept.department,
            resource=resource,
        )
    book = BackfillBook(bus, follow=False)
    await book.start()
    await book.stop()
    request = ResyncRequest(new_id("RS"), dept.department, resource, now(), reason)
    last = [p for p in book.of_view(dept.department, resource) if p.trigger == "resync"]
    refusal = resync_refusal(
        request, max(last, key=lambda p: p.at, default=None), state.catalog, at
    )
    if refusal is not None:
        details = {"command": "resync"}
        await dept.audit(
            Action.COMMAND_REFUSED, Decision.DENIED, reason=refusal, details=details, **facts
        )
        raise CommandRefused(refusal, **facts)
    async with kafka.producer(bus) as producer:
        await producer.send_and_wait(topics.RESYNC, key=request.key, value=encode_request(request))
    await dept.audit(
        Action.RESYNC_REQUESTED,
        Decision.REQUESTED,
        reason=reason,
        details={"request": request.request},
        **facts,
    )
    return request.request
