"""Working days on the official Chinese calendar (法定节假日 and 调休 make-up days).

The 2016 interim measures give a provider 10 working days to answer an
application for conditional data, and every later stage of the sharing
workflow counts working days too. A working day is decided, for each year,
by the first of these that has the year:

1. a **calendar file** of the catalog in force (``<catalog>/calendar/<year>.yaml``,
   read and checked by :mod:`exchange.catalog.calendar`, carried on the bus
   with the catalog): the operator adds a year the day the State Council
   publishes its notice, without waiting for a library release. The file
   decides every day of its year, so it wins over the package;
2. the ``chinesecalendar`` package, which follows the State Council's yearly
   notices (1.11.0 covers 2004–2026);
3. nothing: the year is **missing**.

What happens in a missing year (the decision, and why):

* where a person can fix it at once — ``exchange catalog validate`` and any
  caller passing ``strict=True`` — :class:`CalendarYearMissing` is raised:
  the catalog administrator adds the year's file;
* in the running bus (router, department API, report) a deadline must still
  be given: refusing applications, or stopping the router, because a
  holiday file is late would stop the sharing the deadline exists to
  speed up, and the deadline is an obligation to watch, not a gate. So the
  days of a missing year are counted Monday to Friday (right on all but the
  holiday weeks), and never silently: the first time per year a warning is
  logged, the year is kept by :func:`missing_years` (the metric
  ``gov_exchange_calendar_years_missing``, see :mod:`exchange.metrics`), and
  the audit details of the deadline say ``calendar_missing`` (see
  :func:`due_facts`), so the monthly report names every deadline computed
  without data.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import chinese_calendar
from pydantic import BaseModel, ConfigDict, Field

from exchange.beijing import china_date as china_date
from exchange.errors import ExchangeError

log = logging.getLogger(__name__)

ANSWER_WITHIN_WORKING_DAYS = 10
PACKAGE = "the chinesecalendar package"


class CalendarYearMissing(ExchangeError):
    """A working-day count reaches into a year with neither a calendar file nor package data."""

    def __init__(self, year: int, *, counting: str = "a deadline") -> None:
        super().__init__(
            f"no official holiday calendar for {year}: {counting} reaches into {year}, and "
            f"neither {PACKAGE} nor a calendar/{year}.yaml file of the catalog has that year; "
            f"add calendar/{year}.yaml from the State Council's notice on the {year} holidays "
            "(国务院办公厅关于部分节假日安排的通知) and load the catalog",
            year=year,
        )
        self.year = year


# --- the data of one year, as written in calendar/<year>.yaml -------------------------------


class Holiday(BaseModel):
    """One holiday of a notice (法定节假日, with its 调休 make-up working days)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, populate_by_name=True
    )

    name: str = Field(min_length=1, description="as the notice names it, e.g. 春节")
    name_en: str | None = Field(default=None, description="e.g. Spring Festival")
    from_: dt.date = Field(alias="from", description="first day off")
    to: dt.date | None = Field(default=None, description="last day off (default: from)")
    make_up_workdays: tuple[dt.date, ...] = Field(
        default=(), description="调休: weekend days worked in exchange for days off"
    )

    @property
    def last(self) -> dt.date:
        return self.to or self.from_

    def days(self) -> Iterator[dt.date]:
        """Every day off, ``from`` to ``to`` inclusive."""
        day = self.from_
        while day <= self.last:
            yield day
            day += dt.timedelta(days=1)


class YearCalendar(BaseModel):
    """The official calendar of one year: its holidays and make-up working days.

    Any other day is a working day from Monday to Friday and a rest day on a
    weekend. Checked when read (:mod:`exchange.catalog.calendar`): dates
    inside the year, no day both off and worked, make-up days on weekends.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    year: int = Field(ge=2000, le=2200)
    notice: str = Field(
        min_length=1,
        description="the State Council notice the year comes from (title and number)",
    )
    url: str | None = Field(default=None, description="where the notice is published")
    holidays: tuple[Holiday, ...] = ()

    def days_off(self) -> dict[dt.date, str]:
        """Holiday day -> holiday name."""
        return {day: h.name for h in self.holidays for day in h.days()}

    def make_up_days(self) -> dict[dt.date, str]:
        """Make-up working day (调休上班) -> the holiday it makes up for."""
        return {day: h.name for h in self.holidays for day in h.make_up_workdays}

    def is_workday(self, day: dt.date) -> bool:
        """Whether ``day`` (of this year) is a working day; :class:`Calendar` caches this."""
        if day in self.days_off():
            return False
        return day in self.make_up_days() or day.weekday() < 5


@functools.lru_cache(maxsize=512)
def package_covers(year: int) -> bool:
    """Whether the ``chinesecalendar`` package has data for ``year``."""
    try:
        chinese_calendar.is_workday(dt.date(year, 6, 1))
    except NotImplementedError:
        return False
    return True


# --- the calendar: files first, then the package --------------------------------------------


class Calendar:
    """Working days from calendar files (one per year, they win) and the package."""

    def __init__(self, years: Iterable[YearCalendar] = ()) -> None:
        self.years: dict[int, YearCalendar] = {y.year: y for y in years}
        #: per file year: its days off and its make-up working days
        self._index = {
            y: (frozenset(c.days_off()), frozenset(c.make_up_days())) for y, c in self.years.items()
        }

    def source(self, year: int) -> str | None:
        """Where ``year`` comes from: ``calendar/<year>.yaml``, the package, or None (missing)."""
        if year in self.years:
            return f"calendar/{year}.yaml"
        return PACKAGE if package_covers(year) else None

    def covers(self, year: int) -> bool:
        return self.source(year) is not None

    def workday(self, day: dt.date) -> bool | None:
        """Whether ``day`` is a working day; None if its year is missing."""
        index = self._index.get(day.year)
        if index is not None:
            off, worked = index
            return day not in off and (day in worked or day.weekday() < 5)
        try:
            return bool(chinese_calendar.is_workday(day))
        except NotImplementedError:
            return None

    def differences_from_package(self, year: int) -> list[tuple[dt.date, bool, bool]]:
        """Days on which the file of ``year`` and the package disagree: (day, file, package)
        working day or not. Empty if there is no file or the package lacks the year."""
        if year not in self.years or not package_covers(year):
            return []
        out = []
        day = dt.date(year, 1, 1)
        while day.year == year:
            mine, theirs = bool(self.workday(day)), bool(chinese_calendar.is_workday(day))
            if mine != theirs:
                out.append((day, mine, theirs))
            day += dt.timedelta(days=1)
        return out


@dataclass(frozen=True)
class Deadline:
    """The last day of a period, and the years it counted Monday to Friday for lack of data."""

    day: dt.date
    years_missing: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.years_missing


# --- the calendar of this process, and what it lacked -------------------------------------

_installed = Calendar()
#: counts (deadlines, working days between two dates) made without data, per missing year
_without_data: Counter[int] = Counter()
_warned: set[int] = set()


def use(calendar: Calendar) -> None:
    """Make ``calendar`` the one every count of this process uses (the catalog in force's).

    Called when a catalog snapshot comes into force; a file that contradicts
    the package is logged (the file wins).
    """
    global _installed
    _installed = calendar
    _warned.clear()
    for year in sorted(calendar.years):
        diffs = calendar.differences_from_package(year)
        if diffs:
            log.warning(
                "calendar/%s.yaml differs from %s on %d day(s) (first: %s); the file wins",
                year,
                PACKAGE,
                len(diffs),
                diffs[0][0],
            )


def installed() -> Calendar:
    """The calendar this process counts with."""
    return _installed


def missing_years() -> list[int]:
    """Years this process counted Monday to Friday for lack of data, and still lacks."""
    return sorted(y for y in _without_data if not _installed.covers(y))


def deadlines_without_data() -> dict[int, int]:
    """How many counts reached into each year still missing (for metrics and tests)."""
    return {y: _without_data[y] for y in missing_years()}


def forget_missing() -> None:
    """Clear what this process recorded as missing (tests)."""
    _without_data.clear()
    _warned.clear()


def _record(years: Iterable[int], counting: str) -> None:
    for year in years:
        _without_data[year] += 1
        if year not in _warned:
            _warned.add(year)
            log.warning(
                "%s; counting Monday to Friday in %s meanwhile (法定节假日 and 调休 ignored), "
                "and reporting it (metric gov_exchange_calendar_years_missing, monthly report)",
                CalendarYearMissing(year, counting=counting),
                year,
            )


# --- counting ----------------------------------------------------------------------------


def _workday(day: dt.date, cal: Calendar, strict: bool, missing: set[int], counting: str) -> bool:
    answer = cal.workday(day)
    if answer is not None:
        return answer
    if strict:
        raise CalendarYearMissing(day.year, counting=counting)
    missing.add(day.year)
    return day.weekday() < 5


def is_workday(day: dt.date, *, calendar: Calendar | None = None, strict: bool = False) -> bool:
    """Whether ``day`` is a working day (Monday to Friday in a missing year, unless ``strict``)."""
    missing: set[int] = set()
    answer = _workday(day, calendar or _installed, strict, missing, f"the day {day}")
    _record(missing, f"the day {day}")
    return answer


def working_days_between(
    start: dt.date, end: dt.date, *, calendar: Calendar | None = None, strict: bool = False
) -> int:
    """Working days after ``start`` up to and including ``end`` (0 if end <= start)."""
    cal = calendar or _installed
    counting = f"counting working days from {start} to {end}"
    missing: set[int] = set()
    days = 0
    day = start
    while day < end:
        day += dt.timedelta(days=1)
        if _workday(day, cal, strict, missing, counting):
            days += 1
    _record(sorted(missing), counting)
    return days


def deadline(
    applied: dt.date,
    within: int = ANSWER_WITHIN_WORKING_DAYS,
    *,
    calendar: Calendar | None = None,
    strict: bool = False,
    record: bool = True,
) -> Deadline:
    """The last day of a period of ``within`` working days after the (Beijing) date ``applied``.

    With ``strict``, a missing year raises :class:`CalendarYearMissing`;
    otherwise it is counted Monday to Friday and named in
    :attr:`Deadline.years_missing` (and, with ``record``, logged and counted
    for the metric).
    """
    cal = calendar or _installed
    counting = f"the deadline of {within} working days from {applied}"
    missing: set[int] = set()
    day = applied
    left = within
    while left:
        day += dt.timedelta(days=1)
        if _workday(day, cal, strict, missing, counting):
            left -= 1
    if record:
        _record(sorted(missing), counting)
    return Deadline(day, tuple(sorted(missing)))


def answer_due(applied: dt.date, within: int = ANSWER_WITHIN_WORKING_DAYS) -> dt.date:
    """The last day of the answer period: ``within`` working days after the (Beijing) date
    ``applied``. For an application, call :func:`due_date` with the instant it was made."""
    return deadline(applied, within).day


def due_date(applied_at: dt.datetime, within: int = ANSWER_WITHIN_WORKING_DAYS) -> dt.date:
    """The last day to answer an application made at the instant ``applied_at``.

    The one place the due date of an application is computed: 10 working days
    after the day it was made on the Beijing calendar (an application made at
    01:30 in Beijing is made on that day, though it is still the day before in
    UTC). The grant book, the audit entries and the reports all call this.
    """
    return answer_due(china_date(applied_at), within)


def due_facts(applied_at: dt.datetime, within: int = ANSWER_WITHIN_WORKING_DAYS) -> dict[str, Any]:
    """The audit details of an application's due date: ``due``, and ``calendar_missing``
    (the years counted Monday to Friday, comma-separated) when the calendar lacked one.

    ``within``: the working days of the stage (the answer's 10 by default; each stage of
    the sharing workflow has its own, see :mod:`exchange.catalog.workflow`)."""
    found = deadline(china_date(applied_at), within)
    facts: dict[str, Any] = {"due": found.day}
    if found.years_missing:
        facts["calendar_missing"] = ",".join(str(y) for y in found.years_missing)
    return facts
