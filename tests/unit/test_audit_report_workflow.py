"""``exchange audit report``: the authority's workflow per department (issue 22)."""

from __future__ import annotations

import datetime as dt

from exchange.audit.entry import Action, Decision, Draft, chain, detail_map
from exchange.audit.report import Period, monthly, summary_counts
from exchange.avro.jsoncodec import CHINA_TZ

BMC = "birth_medical_certificate"


def at(day: int, hour: int = 10) -> dt.datetime:
    return dt.datetime(2026, 10, day, hour, tzinfo=CHINA_TZ).astimezone(dt.UTC)


def step(action: Action, actor: str, decision: str, day: int, app: str, **details: object) -> Draft:
    return Draft(
        action,
        actor=actor,
        decision=decision,
        resource=BMC,
        consumer="police",
        provider="health",
        application_id=app,
        at=at(day),
        details=detail_map(**details),
    )


def test_reviews_answers_disputes_and_decisions_are_counted_per_department() -> None:
    drafts = [
        step(
            Action.APPLICATION_REVIEWED,
            "data_bureau",
            Decision.PASSED,
            8,
            "A1",
            within_time_limit=True,
        ),
        step(
            Action.APPLICATION_REVIEWED,
            "data_bureau",
            Decision.RETURNED,
            12,
            "A2",
            within_time_limit=False,
        ),
        # answered on 20 Oct: beyond 10 working days of 1 Oct's count, but within the
        # application's own limit from its forwarding (the entry says so)
        step(
            Action.APPLICATION_REJECTED,
            "health",
            Decision.REJECTED,
            20,
            "A1",
            applied_at=at(1),
            within_time_limit=True,
        ),
        step(Action.APPLICATION_CONTESTED, "police", Decision.CONTESTED, 21, "A1"),
        step(Action.APPLICATION_ESCALATED, "police", Decision.ESCALATED, 22, "A1"),
        step(
            Action.APPLICATION_DECIDED,
            "data_bureau",
            Decision.ORDERED,
            23,
            "A1",
            within_time_limit=True,
        ),
        step(Action.ORDER_APPEALED, "health", Decision.APPEALED, 26, "A1"),
        # the review of A2 noticed overdue by two router runs: counted once, for the bureau
        step(
            Action.APPLICATION_OVERDUE,
            "router",
            Decision.OVERDUE,
            12,
            "A2",
            stage="review",
            waiting_on="data_bureau",
        ),
        step(
            Action.APPLICATION_OVERDUE,
            "router",
            Decision.OVERDUE,
            13,
            "A2",
            stage="review",
            waiting_on="data_bureau",
        ),
    ]
    drafts[5] = Draft(**{**drafts[5].__dict__, "grant_id": "GR-O"})
    reports = monthly(chain(drafts, writer="w"), Period.parse("2026-10"), at=at(31))
    counts = summary_counts(reports)
    bureau = counts["data_bureau"]
    assert bureau["applications_reviewed_within_time_limit"] == 1
    assert bureau["applications_reviewed_beyond_time_limit"] == 1
    assert bureau["applications_returned_at_review"] == 1
    assert bureau["authority_decisions_ordered"] == 1
    assert bureau["authority_decisions_within_time_limit"] == 1
    health, police = counts["health"], counts["police"]
    assert health["applications_answered_within_10_working_days"] == 1
    assert health["applications_answered_beyond_10_working_days"] == 0
    assert health["disputes_contested"] == police["disputes_contested"] == 1
    assert health["disputes_escalated"] == police["disputes_escalated"] == 1
    assert health["disputes_decided_ordered"] == 1
    assert health["orders_appealed"] == 1
    assert health["grants_given_active"] == police["grants_held_active"] == 1  # the order
    assert bureau["stages_overdue"] == 1
    assert "stages_overdue" not in health
    rows = {r.department: r.rows() for r in reports}
    assert ("stages_overdue", "", "review", 1) in rows["data_bureau"]
    assert ("disputes_contested", "", "as provider", 1) in rows["health"]
