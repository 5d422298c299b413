"""The monthly report, computed from entries alone (no broker)."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange.audit.entry import Action, AuditEntry, Decision, Draft, chain, detail_map
from exchange.audit.report import UNCONDITIONAL, Period, answered_in_time, monthly, to_csv
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.errors import ExchangeError

RES = "birth_medical_certificate"
PURPOSE = "新生儿落户 household registration"


def at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.fromisoformat(day).replace(hour=hour, tzinfo=CHINA_TZ)


def d(action: Action, when: dt.datetime, **kw: object) -> Draft:
    kw.setdefault("actor", "router")
    kw.setdefault("decision", "x")
    return Draft(action, at=when, **kw)  # type: ignore[arg-type]


def approved(app: str, grant: str, consumer: str, when: dt.datetime, **details: object) -> Draft:
    return d(
        Action.APPLICATION_APPROVED,
        when,
        actor="health",
        decision=Decision.APPROVED,
        resource=RES,
        consumer=consumer,
        provider="health",
        application_id=app,
        grant_id=grant,
        purpose=PURPOSE,
        details=detail_map(**details),
    )


def submitted(app: str, consumer: str, when: dt.datetime) -> Draft:
    return d(
        Action.APPLICATION_SUBMITTED,
        when,
        actor=consumer,
        resource=RES,
        consumer=consumer,
        provider="health",
        application_id=app,
        purpose=PURPOSE,
    )


def delivered(consumer: str, n: int, when: dt.datetime, purpose: str | None) -> Draft:
    return d(
        Action.RECORDS_DELIVERED,
        when,
        decision=Decision.DELIVERED,
        resource=RES,
        consumer=consumer,
        provider="health",
        purpose=purpose,
        details=detail_map(record_count=n),
    )


@pytest.fixture
def october() -> list[AuditEntry]:
    drafts = [
        # answered on 10-16: within 10 working days only because 10-10 (a Saturday) is a
        # make-up working day and 10-01..07 are the National Day holiday
        submitted("APP-1", "police", at("2026-09-28")),
        approved(
            "APP-1",
            "GR-1",
            "police",
            at("2026-10-16"),
            valid_until=at("2026-10-20"),
            applied_at=at("2026-09-28"),
        ),
        submitted("APP-2", "police", at("2026-10-08")),
        approved("APP-2", "GR-2", "police", at("2026-10-28")),  # due 10-21: beyond
        submitted("APP-3", "market", at("2026-10-09")),  # never answered: overdue at the end
        submitted("APP-4", "hrss", at("2026-10-12")),
        approved("APP-4", "GR-4", "hrss", at("2026-10-13")),  # within, still active
        d(
            Action.GRANT_REVOKED,
            at("2026-10-31"),
            actor="health",
            resource=RES,
            consumer="police",
            provider="health",
            grant_id="GR-2",
        ),
        delivered("police", 5, at("2026-10-17"), PURPOSE),
        delivered("police", 7, at("2026-10-18"), PURPOSE),
        delivered("hrss", 10, at("2026-10-18"), None),
        delivered("hrss", 99, at("2026-11-01", 0), None),  # November, Beijing time
        delivered("hrss", 1, at("2026-09-30", 23), None),  # September
        d(
            Action.SUBSCRIPTION_DENIED,
            at("2026-10-19"),
            actor="civil_affairs",
            consumer="civil_affairs",
            resource=RES,
            reason="not shared",
        ),
        d(
            Action.SUBSCRIPTION_DENIED,
            at("2026-10-20"),
            actor="civil_affairs",
            consumer="civil_affairs",
            resource=RES,
            reason="not shared",
        ),
        d(
            Action.COMMAND_REFUSED,
            at("2026-10-21"),
            actor="police",
            resource=RES,
            reason="only the provider may approve",
        ),
    ]
    return chain(drafts, writer="w")


def test_working_days_follow_the_official_calendar() -> None:
    assert answered_in_time(at("2026-09-28"), at("2026-10-16"))
    assert not answered_in_time(at("2026-09-28"), at("2026-10-19"))


def test_the_period_is_a_month_in_beijing_time() -> None:
    p = Period.parse("2026-12")
    assert p.start == dt.datetime(2026, 12, 1, tzinfo=CHINA_TZ)
    assert p.end == dt.datetime(2027, 1, 1, tzinfo=CHINA_TZ)
    with pytest.raises(ExchangeError, match="YYYY-MM"):
        Period.parse("2026-13")


def test_monthly_report(october: list[AuditEntry]) -> None:
    reports = {r.department: r for r in monthly(october, Period.parse("2026-10"))}
    assert set(reports) == {"police", "hrss", "health", "civil_affairs", "market"}
    police, hrss, health = reports["police"], reports["hrss"], reports["health"]
    assert police.received == {(RES, PURPOSE): 12}
    assert hrss.received == {(RES, UNCONDITIONAL): 10}
    assert reports["civil_affairs"].denials == {("SUBSCRIPTION_DENIED", "not shared"): 2}
    assert police.denials == {("COMMAND_REFUSED", "only the provider may approve"): 1}
    assert police.grants["held"] == {"expired": 1, "revoked": 1}
    assert hrss.grants["held"] == {"active": 1}
    assert health.grants["given"] == {"expired": 1, "revoked": 1, "active": 1}
    assert (health.answered_within, health.answered_beyond) == (2, 1)
    assert health.overdue_unanswered == 1
    csv_text = to_csv([health], Period.parse("2026-10"))
    assert "2026-10,health,applications_answered_beyond_10_working_days,,,1" in csv_text


def test_one_department_only_and_a_month_before_anything(october: list[AuditEntry]) -> None:
    [r] = monthly(october, Period.parse("2026-10"), department="hrss")
    assert r.department == "hrss"
    assert monthly(october, Period.parse("2026-08")) == []


def test_a_duplicate_entry_is_counted_once(october: list[AuditEntry]) -> None:
    doubled = october + [e for e in october if e.action is Action.RECORDS_DELIVERED]
    [r] = monthly(doubled, Period.parse("2026-10"), department="police")
    assert r.received == {(RES, PURPOSE): 12}
