"""The report's disputes and freshness figures (疑义校核, 更新周期), from entries alone."""

from __future__ import annotations

import datetime as dt

from exchange.audit.entry import Action, AuditEntry, Decision, Draft, chain, detail_map
from exchange.audit.report import Period, monthly, summary_counts
from exchange.avro.jsoncodec import CHINA_TZ

RES = "birth_medical_certificate"
OCTOBER = Period(2026, 10)


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=CHINA_TZ)


def dispute(action: Action, dispute_id: str, when: dt.datetime, **details: object) -> Draft:
    actor = "police" if action is Action.DISPUTE_OPENED else "health"
    return Draft(
        action,
        actor=actor if action is not Action.DISPUTE_OVERDUE else "router",
        decision="x",
        resource=RES,
        consumer="police",
        provider="health",
        at=when,
        details=detail_map(dispute_id=dispute_id, **details),
    )


def freshness(action: Action, since: dt.datetime, when: dt.datetime, **details: object) -> Draft:
    return Draft(
        action,
        actor="router",
        decision=Decision.STALE if action is Action.RESOURCE_STALE else Decision.FRESH,
        resource=RES,
        provider="health",
        at=when,
        details=detail_map(stale_since=since, **details),
    )


def entries() -> list[AuditEntry]:
    drafts = [
        # in time: opened Mon 28 Sep (due Sat 10 Oct, a make-up working day), answered 9 Oct
        dispute(Action.DISPUTE_OPENED, "DS-A", at("2026-09-28"), due="2026-10-10"),
        dispute(Action.DISPUTE_ANSWERED, "DS-A", at("2026-10-09"), answered_in_time=True),
        dispute(Action.DISPUTE_CLOSED, "DS-A", at("2026-10-12"), answered_in_time=True),
        # late: answered after its due day
        dispute(Action.DISPUTE_OPENED, "DS-B", at("2026-10-08"), due="2026-10-15"),
        dispute(Action.DISPUTE_ANSWERED, "DS-B", at("2026-10-20"), answered_in_time=False),
        # never answered: overdue at the end of October (two routers noticed it)
        dispute(Action.DISPUTE_OPENED, "DS-C", at("2026-10-19"), due="2026-10-23"),
        dispute(Action.DISPUTE_OVERDUE, "DS-C", at("2026-10-24"), due="2026-10-23"),
        dispute(Action.DISPUTE_OVERDUE, "DS-C", at("2026-10-24", 11), due="2026-10-23"),
        # opened late in the month, not due yet
        dispute(Action.DISPUTE_OPENED, "DS-D", at("2026-10-30"), due="2026-11-06"),
        # stale from 3 Oct 22:00 to 5 Oct 09:00 (Beijing): days 3, 4, 5; written twice
        freshness(Action.RESOURCE_STALE, at("2026-10-03", 22), at("2026-10-03", 23)),
        freshness(Action.RESOURCE_STALE, at("2026-10-03", 22), at("2026-10-03", 23)),
        freshness(
            Action.RESOURCE_FRESH,
            at("2026-10-03", 22),
            at("2026-10-05", 10),
            recovered_at=at("2026-10-05", 9),
        ),
        # stale from 30 Oct 12:00, still at the end of the month: days 30, 31
        freshness(Action.RESOURCE_STALE, at("2026-10-30", 12), at("2026-10-30", 13)),
    ]
    return chain(drafts, writer="w")


def test_per_provider_and_consumer_figures() -> None:
    counts = summary_counts(monthly(entries(), OCTOBER, at=at("2026-12-01")))
    health, police = counts["health"], counts["police"]
    assert health["disputes_opened"] == 3  # B, C, D (A was opened in September)
    assert health["disputes_answered_in_time"] == 1  # A
    assert health["disputes_answered_late"] == 1  # B
    assert health["disputes_unanswered_overdue"] == 1  # C, counted once
    assert police["disputes_raised"] == 3
    assert health["resource_days_stale"] == 3 + 2


def test_days_stale_are_per_resource_rows_of_the_provider() -> None:
    (health,) = [
        r for r in monthly(entries(), OCTOBER, at=at("2026-12-01")) if r.department == "health"
    ]
    rows = [row for row in health.rows() if row[0] == "resource_days_stale"]
    assert rows == [("resource_days_stale", RES, "", 5)]


def test_a_report_of_a_moment_inside_the_month_counts_up_to_it() -> None:
    counts = summary_counts(monthly(entries(), OCTOBER, at=at("2026-10-21")))
    health = counts["health"]
    assert health["disputes_unanswered_overdue"] == 0  # C is due on the 23rd
    assert health["resource_days_stale"] == 3  # the second spell has not begun
