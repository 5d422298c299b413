"""The monthly report, computed from entries alone (no broker)."""

from __future__ import annotations

import datetime as dt

import pytest

from exchange.audit.entry import Action, AuditEntry, Decision, Draft, chain, detail_map
from exchange.audit.report import (
    UNCONDITIONAL,
    UNKNOWN_ACTOR,
    DepartmentReport,
    Period,
    answered_in_time,
    monthly,
    to_csv,
    to_rows,
)
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


def _grant(grant: str, consumer: str, approved_at: dt.datetime, until: dt.datetime) -> Draft:
    return approved(f"APP-{grant}", grant, consumer, approved_at, valid_until=until)


@pytest.fixture
def expiring() -> list[AuditEntry]:
    """Four grants approved on 1 September, running out before, during, later in and
    after October (issue 23 item 3)."""
    approved_at = at("2026-09-01")
    return chain(
        [
            _grant("GR-BEFORE", "police", approved_at, at("2026-09-30")),
            _grant("GR-DURING", "hrss", approved_at, at("2026-10-10")),
            _grant(
                "GR-SOON", "market", approved_at, at("2026-10-20", 12) + dt.timedelta(minutes=10)
            ),
            _grant("GR-AFTER", "civil_affairs", approved_at, at("2026-11-15")),
        ],
        writer="w",
    )


def _grants(reports: list[DepartmentReport]) -> dict[str, tuple[int, int]]:
    """consumer -> (active, expired) held; and the provider's under 'health (given)'."""
    out = {r.department: (r.grants["held"]["active"], r.grants["held"]["expired"]) for r in reports}
    health = next(r for r in reports if r.department == "health")
    out["health (given)"] = (health.grants["given"]["active"], health.grants["given"]["expired"])
    return out


def test_a_running_grant_is_active_not_expired_in_the_current_month(
    expiring: list[AuditEntry],
) -> None:
    now = at("2026-10-20", 12)  # GR-SOON runs out 10 minutes from now, later this month
    counts = _grants(monthly(expiring, Period.parse("2026-10"), at=now))
    assert counts["police"] == (0, 0)  # ran out in September
    assert counts["hrss"] == (0, 1)  # ran out in October, before now
    assert counts["market"] == (1, 0)  # still running: active, not (also) expired
    assert counts["civil_affairs"] == (1, 0)
    assert counts["health (given)"] == (2, 1)


def test_a_report_of_a_past_month_counts_what_expired_in_it(expiring: list[AuditEntry]) -> None:
    now = at("2026-10-20", 12)
    counts = _grants(monthly(expiring, Period.parse("2026-09"), at=now))
    assert counts["police"] == (0, 1)  # 30 September, in the month
    assert counts["hrss"] == (1, 0)
    assert counts["market"] == (1, 0)
    assert counts["civil_affairs"] == (1, 0)
    assert counts["health (given)"] == (3, 1)
    whole = _grants(monthly(expiring, Period.parse("2026-10"), at=at("2026-12-01")))
    assert whole["market"] == (0, 1)  # October seen from December: it did expire
    assert whole["health (given)"] == (1, 2)


def test_unknown_actors_have_their_own_section(october: list[AuditEntry]) -> None:
    """Issue 23 item 4: a refused command by a name that is no department is no department."""
    nobody = d(
        Action.COMMAND_REFUSED,
        at("2026-10-22"),
        actor="nobody",
        decision=Decision.DENIED,
        reason="unknown department 'nobody'",
        details=detail_map(command="catalog load"),
    )
    entries = october + chain([nobody], writer="other")
    departments = {"police", "hrss", "health", "civil_affairs", "market"}
    reports = monthly(entries, Period.parse("2026-10"), departments=departments)
    assert [r.department for r in reports if r.known] == sorted(departments)
    [unknown] = [r for r in reports if not r.known]
    assert unknown.department == "nobody"
    assert reports[-1] is unknown  # after every department
    assert unknown.rows() == [("denied", "COMMAND_REFUSED", "unknown department 'nobody'", 1)]
    rows = to_rows(reports)
    assert [r for r in rows if r[0] == "nobody"] == [
        ["nobody", "denied", "COMMAND_REFUSED", "unknown department 'nobody'", "1", UNKNOWN_ACTOR]
    ]
    assert {r[-1] for r in rows if r[0] != "nobody"} == {"department"}
    csv_text = to_csv(reports, Period.parse("2026-10"))
    assert csv_text.splitlines()[0].endswith(",section")
    assert csv_text.splitlines()[-1].endswith(",unknown actor")
