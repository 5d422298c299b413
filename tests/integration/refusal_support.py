"""Helpers for the refusal tests: a refused command changed nothing, and its refusal is audited.

Not a test module. "Nothing changed" is the grant state a fresh process reads
from the control topics (the records on ``gov.ctl.grants``, the grant book,
what ``explain`` shows); "audited" is exactly one new ``COMMAND_REFUSED`` (or
``SUBSCRIPTION_DENIED``) entry on ``gov.audit``, by the department, naming
the resource, with the reason the caller was given.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from exchange.audit.entry import MAX_REASON, Action, AuditEntry, Decision
from exchange.audit.log import entries_only, read_log
from exchange.bus import kafka, topics
from exchange.bus.connection import Connection
from exchange.clients.department import Department
from exchange.control.state import load
from exchange.errors import CommandRefused, ExchangeError
from exchange.sharing import limits as command_limits
from exchange.sharing.limits import MAX_AUDIT_TEXT
from exchange.sharing.policy import compute_view
from exchange.sharing.records import now

REFUSALS = (Action.COMMAND_REFUSED, Action.SUBSCRIPTION_DENIED)
EXPLAINED = ("birth_medical_certificate", "population_basic")


@dataclass(frozen=True)
class Snapshot:
    grant_records: int
    grants: dict[str, Any]
    applications: dict[str, Any]
    subscriptions: frozenset[tuple[str, str]]
    explain: dict[tuple[str, str], dict[str, Any]]


async def snapshot(bus: Connection) -> Snapshot:
    """The grant state as a fresh process reads it from the topics."""
    records = await kafka.read_to_end(bus, topics.GRANTS)
    state = await load(bus)
    explain = {  # what Department.explain shows each consumer
        (consumer, resource): compute_view(
            state.catalog, state.book, consumer, resource, at=now()
        ).to_json()
        for consumer in ("police", "hrss", "civil_affairs")
        for resource in EXPLAINED
    }
    return Snapshot(
        grant_records=len(records),
        grants=dict(state.book.grants),
        applications=dict(state.book.applications),
        subscriptions=frozenset(state.book.subscriptions),
        explain=explain,
    )


async def audit_log(bus: Connection) -> list[AuditEntry]:
    return [e for _, e in entries_only(await read_log(bus))]


def as_audited(reason: str) -> str:
    """A reason as the audit entry holds it (cut at MAX_REASON characters)."""
    return reason if len(reason) <= MAX_REASON else reason[: MAX_REASON - 1] + "…"


async def new_refusals(bus: Connection, seen: set[str]) -> list[AuditEntry]:
    return [e for e in await audit_log(bus) if e.id not in seen and e.action in REFUSALS]


async def refused_and_audited(
    bus: Connection,
    actor: str,
    command: str,
    *args: Any,
    resource: str | None,
    consumer: str | None = None,
    raises: type[ExchangeError] = CommandRefused,
    **kw: Any,
) -> str:
    """Run ``command`` as ``actor``: it must raise, change nothing, and be audited once.

    Returns the reason the caller was given. ``resource`` (and ``consumer``,
    if given) is what the audit entry must name.
    """
    before = await snapshot(bus)
    seen = {e.id for e in await audit_log(bus)}
    async with Department(bus, actor) as dept:
        with pytest.raises(raises) as exc:
            await getattr(dept, command)(*args, **kw)
    reason = str(exc.value)
    assert len(reason) <= 2000, f"the reason quotes too much: {len(reason)} characters"
    assert all(c.isprintable() or c == "\n" for c in reason), f"not printable: {reason!r}"
    after = await snapshot(bus)
    assert after == before, "a refused command changed the grant state"

    [entry] = await new_refusals(bus, seen)
    if command == "subscribe":
        assert (entry.action, entry.decision) == (Action.SUBSCRIPTION_DENIED, Decision.DENIED)
        assert entry.consumer == command_limits.safe(actor, command_limits.MAX_ID_CHARS)
    else:
        assert (entry.action, entry.decision) == (Action.COMMAND_REFUSED, Decision.DENIED)
        assert entry.details["command"] == command
    assert entry.actor == actor
    expected = None if resource is None else command_limits.safe(resource, MAX_AUDIT_TEXT)
    assert entry.resource == expected
    if consumer is not None:
        assert entry.consumer == consumer
    assert entry.reason == as_audited(reason)
    return reason
