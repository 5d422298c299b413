"""The official holiday calendar as data: calendar/<year>.yaml files, the package, missing years.

The year 2031 below is **made up** (the State Council has published no 2031
schedule, and these tests must not pass for a real one): a Spring Festival
week from Thursday 23 January to Wednesday 29 January with two make-up
Saturdays, 18 January and 8 February.
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from typer.testing import CliRunner

from exchange import workdays
from exchange.audit.entry import Action, AuditEntry, Decision, Draft, chain, detail_map
from exchange.audit.report import Period, monthly, summary_counts
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.catalog.calendar import check_coverage
from exchange.catalog.loader import load_catalog
from exchange.cli import app
from exchange.control.catalog_store import diff
from exchange.errors import CatalogErrors
from exchange.metrics import CalendarMetrics, RouterMetrics
from exchange.workdays import Calendar, CalendarYearMissing, Deadline

SAMPLE = Path(__file__).parents[2] / "schemas"
D = dt.date

MADE_UP_2031 = """\
# A made-up year for tests: not the State Council's schedule.
year: 2031
notice: 测试用虚构通知 made-up notice for tests (no such notice exists)
holidays:
  - name: 元旦
    name_en: New Year's Day
    from: 2031-01-01
  - name: 春节
    name_en: Spring Festival
    from: 2031-01-23
    to: 2031-01-29
    make_up_workdays: [2031-01-18, 2031-02-08]
"""


@pytest.fixture(autouse=True)
def _fresh_calendar() -> Iterator[None]:
    """Every test starts and ends with the package-only calendar and nothing missing."""
    workdays.use(Calendar())
    workdays.forget_missing()
    yield
    workdays.use(Calendar())
    workdays.forget_missing()


def catalog_with(tmp_path: Path, files: dict[str, str]) -> Path:
    root = Path(shutil.copytree(SAMPLE, tmp_path / "schemas"))
    (root / "calendar").mkdir(exist_ok=True)
    for name, text in files.items():
        (root / "calendar" / name).write_text(text, encoding="utf-8")
    return root


def errors_of(root: Path) -> list[str]:
    with pytest.raises(CatalogErrors) as caught:
        load_catalog(root)
    return [str(e) for e in caught.value.errors]


# --- counting -------------------------------------------------------------------------------


def test_deadline_across_the_2026_national_day_holiday_from_the_package() -> None:
    # 1-7 October 2026 off (Thursday to Wednesday), Saturday 10 October worked (调休)
    assert workdays.answer_due(D(2026, 9, 28)) == D(2026, 10, 16)
    assert workdays.answer_due(D(2026, 9, 30)) == D(2026, 10, 20)
    found = workdays.deadline(D(2026, 9, 28))
    assert found == Deadline(D(2026, 10, 16))
    assert found.complete
    assert workdays.installed().source(2026) == workdays.PACKAGE


def test_deadline_across_a_made_up_spring_festival_from_a_file(tmp_path: Path) -> None:
    catalog = load_catalog(catalog_with(tmp_path, {"2031.yaml": MADE_UP_2031}))
    (year,) = catalog.calendar
    assert year.year == 2031
    assert year.holidays[1].name == "春节"
    cal = Calendar(catalog.calendar)
    assert cal.source(2031) == "calendar/2031.yaml"
    assert cal.workday(D(2031, 1, 18)) is True  # Saturday, made up
    assert cal.workday(D(2031, 1, 27)) is False  # Monday of the festival
    assert cal.workday(D(2031, 2, 8)) is True  # Saturday, made up
    assert cal.workday(D(2031, 2, 9)) is False  # an ordinary Sunday
    # from Friday 17 January: Sat 18 (1), Mon 20 - Wed 22 (4), festival 23-29 off,
    # Thu 30, Fri 31 (6), Mon 3 - Thu 6 February (10): due on Thursday 6 February ...
    assert workdays.deadline(D(2031, 1, 17), calendar=cal) == Deadline(D(2031, 2, 6))
    # ... the same count Monday to Friday would end on 31 January, a week early
    found = workdays.deadline(D(2031, 1, 17), record=False)
    assert found == Deadline(D(2031, 1, 31), (2031,))
    # once the catalog is in force, every count of the process uses it
    workdays.use(cal)
    assert workdays.answer_due(D(2031, 1, 17)) == D(2031, 2, 6)
    assert workdays.working_days_between(D(2031, 1, 17), D(2031, 2, 8)) == 12  # Fri 7, Sat 8
    assert workdays.missing_years() == []


def test_a_file_contradicting_the_package_wins_with_a_notice(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # the package's 2026, except that the package ends National Day on Wednesday
    # 7 October and this file (a made-up correction, not a real notice) on Thursday the 8th
    text = """\
year: 2026
notice: 测试用虚构更正 made-up correction for tests
holidays:
  - {name: 元旦, from: 2026-01-01, to: 2026-01-03, make_up_workdays: [2026-01-04]}
  - name: 春节
    from: 2026-02-15
    to: 2026-02-23
    make_up_workdays: [2026-02-14, 2026-02-28]
  - {name: 清明节, from: 2026-04-04, to: 2026-04-06}
  - {name: 劳动节, from: 2026-05-01, to: 2026-05-05, make_up_workdays: [2026-05-09]}
  - {name: 端午节, from: 2026-06-19, to: 2026-06-21}
  - {name: 中秋节, from: 2026-09-25, to: 2026-09-27}
  - name: 国庆节
    from: 2026-10-01
    to: 2026-10-08
    make_up_workdays: [2026-09-20, 2026-10-10]
"""
    root = catalog_with(tmp_path, {"2026.yaml": text})
    catalog = load_catalog(root)
    cal = Calendar(catalog.calendar)
    assert workdays.is_workday(D(2026, 10, 8)) is True  # the package alone
    assert cal.workday(D(2026, 10, 8)) is False  # the file wins
    assert cal.differences_from_package(2026) == [(D(2026, 10, 8), False, True)]
    check = check_coverage(catalog.calendar, "schemas/calendar", D(2026, 11, 30))
    assert not check.errors
    (notice,) = check.notices
    assert str(notice).startswith("schemas/calendar/2026.yaml: contradicts the chinesecalendar")
    assert (
        "on 1 day(s) of 2026: 2026-10-08 (day off in the file, working day in the package)"
        in str(notice)
    )
    assert "the file wins" in str(notice)
    with caplog.at_level(logging.WARNING, logger="exchange.workdays"):
        workdays.use(cal)
    assert "calendar/2026.yaml differs from the chinesecalendar package" in caplog.text
    assert workdays.answer_due(D(2026, 9, 28)) == D(2026, 10, 19)  # not the 16th
    assert workdays.answer_due(D(2026, 9, 30)) == D(2026, 10, 21)  # not the 20th


def test_a_deadline_into_a_missing_year_is_an_error_when_strict() -> None:
    with pytest.raises(CalendarYearMissing) as caught:
        workdays.deadline(D(2026, 12, 24), strict=True)
    assert caught.value.year == 2027
    assert "calendar/2027.yaml" in str(caught.value)
    assert workdays.missing_years() == []  # strict counts leave no trace


def test_a_deadline_into_a_missing_year_falls_back_loudly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = CollectorRegistry()
    RouterMetrics(registry)
    assert registry.get_sample_value("gov_exchange_calendar_years_missing") == 0
    with caplog.at_level(logging.WARNING, logger="exchange.workdays"):
        # from Thursday 24 December 2026: 25, 28-31 (5), then 2027 counted Monday to Friday
        found = workdays.deadline(D(2026, 12, 24))
        workdays.answer_due(D(2026, 12, 28))
    assert found == Deadline(D(2027, 1, 7), (2027,))
    assert caplog.text.count("no official holiday calendar for 2027") == 1  # once per year
    assert workdays.missing_years() == [2027]
    assert workdays.deadlines_without_data() == {2027: 2}
    assert registry.get_sample_value("gov_exchange_calendar_years_missing") == 1
    facts = workdays.due_facts(dt.datetime(2026, 12, 24, 2, tzinfo=dt.UTC))
    assert facts == {"due": D(2027, 1, 7), "calendar_missing": "2027"}
    # the year's file arrives with a catalog: the metric falls back to 0
    made_up = Calendar([_year_2027_made_up()])
    workdays.use(made_up)
    assert registry.get_sample_value("gov_exchange_calendar_years_missing") == 0
    assert workdays.due_facts(dt.datetime(2026, 12, 24, 2, tzinfo=dt.UTC)) == {"due": D(2027, 1, 8)}


def _year_2027_made_up() -> workdays.YearCalendar:
    """A made-up 2027 (New Year's Day off only): not the State Council's schedule."""
    return workdays.YearCalendar.model_validate(
        {
            "year": 2027,
            "notice": "made-up for tests",
            "holidays": [{"name": "元旦", "from": "2027-01-01"}],
        }
    )


def test_calendar_metrics_stand_alone_for_other_processes() -> None:
    metrics = CalendarMetrics()
    workdays.is_workday(D(2099, 3, 2))
    assert metrics.registry.get_sample_value("gov_exchange_calendar_years_missing") == 1


# --- validation: every error names file and line ---------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        (
            "year: 2031\nnotice: x\nholidays:\n  - name: 春节\n    from: 2030-12-31\n",
            5,
            "holiday 春节: from 2030-12-31 is not in 2031",
        ),
        (
            "year: 2031\nnotice: x\nholidays:\n  - name: 春节\n    from: 2031-01-23\n"
            "    to: 2031-01-20\n",
            6,
            "to 2031-01-20 is before from 2031-01-23",
        ),
        (
            "year: 2031\nnotice: x\nholidays:\n  - name: 春节\n    from: 2031-01-23\n"
            "    to: 2031-01-29\n    make_up_workdays:\n      - 2031-01-18\n      - 2031-01-20\n",
            9,
            "make-up working day (调休) 2031-01-20 is a Monday",
        ),
        (
            "year: 2031\nnotice: x\nholidays:\n  - name: 春节\n    from: 2031-01-23\n"
            "    to: 2031-01-29\n    make_up_workdays: [2031-01-25]\n",
            7,
            "2031-01-25 is also a day off of 春节 (line 5)",
        ),
        (
            "year: 2031\nnotice: x\nholidays:\n  - name: 春节\n    from: 2031-01-23\n"
            "    make_up_workdays: [2032-01-17]\n",
            6,
            "make-up working day (调休) 2032-01-17 is not in 2031",
        ),
        (
            "year: 2031\nnotice: x\nholidays:\n  - name: 元旦\n    from: 2031-01-01\n"
            "  - name: 春节\n    from: 2031-01-01\n",
            7,
            "holiday 春节: 2031-01-01 is already a day off of 元旦 (line 5)",
        ),
        ("year: 2030\nnotice: x\n", 1, "year 2030 in a file named 2031"),
        ("year: 2031\nholidays: []\n", 1, "notice: Field required"),
        (
            "year: 2031\nnotice: x\nholidays:\n  - name: 春节\n    form: 2031-01-23\n",
            5,
            "holidays.0.form: Extra inputs are not permitted",
        ),
        (
            "year: 2031\nnotice: x\nholidays:\n  - name: 春节\n    from: 31 January\n",
            5,
            "holidays.0.from: Input should be a valid date",
        ),
        ("year: 2031\nnotice: [x\n", 3, "not valid YAML"),
    ],
)
def test_each_calendar_error_names_file_and_line(
    tmp_path: Path, text: str, line: int, message: str
) -> None:
    errors = errors_of(catalog_with(tmp_path, {"2031.yaml": text}))
    (error,) = [e for e in errors if message in e] or errors
    assert message in error
    assert error.startswith(f"schemas/calendar/2031.yaml:{line}: "), error


def test_a_calendar_file_is_named_after_its_year(tmp_path: Path) -> None:
    (error,) = errors_of(catalog_with(tmp_path, {"holidays.yaml": MADE_UP_2031}))
    assert error.startswith("schemas/calendar/holidays.yaml: ")
    assert "named after its year" in error


def test_a_calendar_change_is_a_catalog_change(tmp_path: Path) -> None:
    before = load_catalog(SAMPLE)
    after = load_catalog(catalog_with(tmp_path, {"2031.yaml": MADE_UP_2031}))
    change = diff(before, after, 2)
    assert change.calendar_changed == ["2031"]
    assert not change.empty
    assert after.model_validate_json(after.model_dump_json(by_alias=True)) == after
    assert diff(after, after, 3).empty


# --- the rules of validate on a given day -------------------------------------------------------


def test_validate_rules_by_date() -> None:
    nothing: tuple[workdays.YearCalendar, ...] = ()

    def check(day: dt.date) -> tuple[list[str], list[str]]:
        out = check_coverage(nothing, "schemas/calendar", day)
        return [str(e) for e in out.errors], [str(w) for w in out.warnings]

    assert check(D(2026, 9, 30)) == ([], [])  # 2026 covered, too early to warn
    errors, (warning,) = check(D(2026, 10, 1))  # from 1 October: next year missing
    assert not errors
    assert warning.startswith("schemas/calendar/2027.yaml: missing: no official holiday")
    # mid-December, a deadline starting today reaches into 2027: an error
    (error,), warnings = check(D(2026, 12, 20))
    assert "reaches into 2027" in error
    assert error.startswith("schemas/calendar/2027.yaml")
    assert warnings == []
    (error,), _ = check(D(2027, 1, 4))  # the current year missing
    assert "current year 2027" in error
    made_up = (_year_2027_made_up(),)
    assert check_coverage(made_up, "schemas/calendar", D(2027, 1, 4)).errors == []


def test_the_validate_command_warns_and_fails_by_date(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(app, ["catalog", "validate", str(SAMPLE), "--today", "2026-11-30"])
    assert ok.exit_code == 0, ok.output
    assert "warning: " in ok.stderr
    assert "2027.yaml: missing" in ok.stderr
    assert "holiday calendar files: none" in ok.stdout
    bad = runner.invoke(app, ["catalog", "validate", str(SAMPLE), "--today", "2027-01-04"])
    assert bad.exit_code == 2
    assert "current year 2027" in bad.stderr
    early = runner.invoke(app, ["catalog", "validate", str(SAMPLE), "--today", "2026-06-01"])
    assert early.exit_code == 0
    assert "warning" not in early.stderr
    root = catalog_with(tmp_path, {"2031.yaml": MADE_UP_2031})
    far = runner.invoke(app, ["catalog", "validate", str(root), "--today", "2031-01-05"])
    assert far.exit_code == 0, far.output
    assert "holiday calendar files: 2031" in far.stdout


# --- the monthly report names deadlines computed without data --------------------------------------


def _entry(action: Action, when: dt.datetime, **kw: object) -> Draft:
    return Draft(action, at=when, **kw)  # type: ignore[arg-type]


def test_the_monthly_report_names_deadlines_computed_without_data() -> None:
    applied = dt.datetime(2026, 12, 24, 10, tzinfo=CHINA_TZ)
    answered = dt.datetime(2027, 1, 7, 10, tzinfo=CHINA_TZ)
    drafts = [
        _entry(
            Action.APPLICATION_SUBMITTED,
            applied,
            actor="civil",
            decision=Decision.SUBMITTED,
            resource="birth_medical_certificate",
            consumer="civil",
            provider="health",
            application_id="AP-1",
            details=detail_map(**workdays.due_facts(applied)),
        ),
        _entry(
            Action.APPLICATION_APPROVED,
            answered,
            actor="health",
            decision=Decision.APPROVED,
            resource="birth_medical_certificate",
            consumer="civil",
            provider="health",
            application_id="AP-1",
            grant_id="GR-1",
            details=detail_map(applied_at=applied),
        ),
    ]
    entries: list[AuditEntry] = chain(drafts, writer="tests")
    december = {r.department: r for r in monthly(entries, Period(2026, 12))}
    (what,) = december["health"].without_calendar.values()
    assert "computed with no holiday calendar for 2027" in what  # the API's entry said so
    january = {r.department: r for r in monthly(entries, Period(2027, 1))}
    assert january["health"].answered_within == 1
    assert "due 2027-01-07 computed by this report" in january["health"].without_calendar["AP-1"]
    rows = [row for row in january["health"].rows() if row[0] == "deadline_without_calendar_data"]
    assert rows
    assert rows[0][1] == "AP-1"
    assert summary_counts(list(january.values()))["health"]["deadline_without_calendar_data"] == 1
    # with the year's file in force the report computes it fully and names nothing for January
    workdays.use(Calendar([_year_2027_made_up()]))
    again = {r.department: r for r in monthly(entries, Period(2027, 1))}
    assert again["health"].without_calendar == {}
    assert again["health"].answered_within == 1  # due 8 January now
