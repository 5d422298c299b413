"""The official holiday calendar of a catalog: ``calendar/<year>.yaml``, one file per year.

The State Council publishes each year's holidays (法定节假日) and make-up
working days (调休, weekend days worked in exchange) in a notice in the
autumn before. The ``chinesecalendar`` package carries them only up to the
year of its last release; a catalog administrator adds a year the day the
notice appears, as a file of the catalog directory, and loads the catalog:
every router and department client then counts with it
(:func:`exchange.workdays.use`). A year's file decides every day of that
year, so it wins over the package. The format::

    year: 2027
    notice: 国务院办公厅关于2027年部分节假日安排的通知（国办发明电〔2026〕N号）
    url: https://www.gov.cn/...            # optional
    holidays:
      - name: 春节
        name_en: Spring Festival          # optional
        from: 2027-02-05                  # first day off
        to: 2027-02-11                    # last day off (default: from)
        make_up_workdays: [2027-02-13]    # 调休上班, weekend days only

(dates above only show the shape.) Days not listed are working days Monday
to Friday and rest days at weekends. :func:`load_years` checks every file,
each problem naming file and line; :func:`check_coverage` checks that the
years a deadline needs are there, for ``exchange catalog validate``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from exchange import workdays
from exchange.catalog.yamlfile import Document, YamlProblem, read
from exchange.errors import CatalogError
from exchange.workdays import PACKAGE, Calendar, CalendarYearMissing, YearCalendar

CALENDAR_DIR = "calendar"
#: from this day of a year on, ``validate`` warns when next year has no calendar
WARN_FROM = (10, 1)
YEAR_FILE = re.compile(r"^(\d{4})\.ya?ml$")
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def load_years(
    root: Path, rel: Callable[[Path], str], errors: list[CatalogError]
) -> tuple[YearCalendar, ...]:
    """Read and check every ``calendar/<year>.yaml`` of the catalog directory ``root``.

    Problems are appended to ``errors`` (file and line named, as everywhere in
    the catalog); a year with a problem is left out. No directory: no years.
    """
    directory = root / CALENDAR_DIR
    if not directory.is_dir():
        return ()
    years: list[YearCalendar] = []
    for path in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")):
        name = rel(path)
        match = YEAR_FILE.match(path.name)
        if match is None:
            errors.append(
                CatalogError(
                    "a calendar file is named after its year, e.g. calendar/2027.yaml", file=name
                )
            )
            continue
        try:
            doc = read(path)
        except YamlProblem as exc:
            errors.append(CatalogError(exc.message, file=name, line=exc.line))
            continue
        year = _load_year(doc, name, int(match[1]), errors)
        if year is not None:
            years.append(year)
    return tuple(sorted(years, key=lambda y: y.year))


def _load_year(
    doc: Document, name: str, file_year: int, errors: list[CatalogError]
) -> YearCalendar | None:
    def problem(message: str, loc: tuple[Any, ...] = ()) -> None:
        errors.append(CatalogError(message, file=name, line=doc.line_of(loc)))

    if not isinstance(doc.data, dict):
        problem("expected a mapping with year, notice and holidays")
        return None
    try:
        cal = YearCalendar.model_validate(doc.data)
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "document"
            problem(f"{where}: {err['msg']}", loc)
        return None
    before = len(errors)
    if cal.year != file_year:
        problem(f"year {cal.year} in a file named {file_year}: they must be the same", ("year",))
        return None
    off: dict[dt.date, tuple[str, int | None]] = {}  # day off -> (holiday, line)
    for i, holiday in enumerate(cal.holidays):
        h = ("holidays", i)
        if holiday.last < holiday.from_:
            problem(
                f"holiday {holiday.name}: to {holiday.last} is before from {holiday.from_}",
                (*h, "to"),
            )
            continue
        ends = [("from", holiday.from_)] + ([("to", holiday.to)] if holiday.to else [])
        for key, day in ends:
            if day.year != cal.year:
                problem(
                    f"holiday {holiday.name}: {key} {day} is not in {cal.year} (a day of another "
                    "year goes in that year's file, citing the same notice)",
                    (*h, key),
                )
        for day in holiday.days():
            if day in off:
                other, line = off[day]
                problem(
                    f"holiday {holiday.name}: {day} is already a day off of {other}"
                    + (f" (line {line})" if line else ""),
                    (*h, "from"),
                )
            else:
                off[day] = (holiday.name, doc.line_of((*h, "from")))
    worked: dict[dt.date, int | None] = {}
    for i, holiday in enumerate(cal.holidays):
        for j, day in enumerate(holiday.make_up_workdays):
            loc = ("holidays", i, "make_up_workdays", j)
            what = f"holiday {holiday.name}: make-up working day (调休) {day}"
            if day.year != cal.year:
                problem(f"{what} is not in {cal.year}", loc)
            if day in off:
                other, line = off[day]
                problem(
                    f"{what} is also a day off of {other}"
                    + (f" (line {line})" if line else "")
                    + ": a day is either a holiday or a make-up working day",
                    loc,
                )
            if day.weekday() < 5:
                problem(
                    f"{what} is a {WEEKDAYS[day.weekday()]}: a make-up working day is a "
                    "Saturday or Sunday (a weekday is a working day already)",
                    loc,
                )
            if day in worked:
                line = worked[day]
                problem(
                    f"{what} is listed twice" + (f" (first at line {line})" if line else ""), loc
                )
            worked.setdefault(day, doc.line_of(loc))
    return cal if len(errors) == before else None


@dataclass
class CoverageCheck:
    """What ``exchange catalog validate`` says of the calendar on a given day."""

    errors: list[CatalogError] = field(default_factory=list)
    warnings: list[CatalogError] = field(default_factory=list)
    #: the files that contradict the package for a year it covers (the file wins)
    notices: list[CatalogError] = field(default_factory=list)


def check_coverage(
    years: tuple[YearCalendar, ...], calendar_dir: str, today: dt.date
) -> CoverageCheck:
    """The rules of the calendar on the (Beijing) date ``today``.

    * **error** when the current year has no data, or when an application
      made today would be due in a year without data (a deadline computed
      without data is for the catalog administrator to fix, not a guess);
    * **warning** from 1 October when next year has no data yet (the State
      Council publishes it in the autumn; from 1 January it is an error);
    * **notice** for each file that contradicts the package for a year the
      package covers: the file wins, but someone should know.

    ``calendar_dir`` is how messages name the directory (e.g. ``schemas/calendar``).
    """
    cal = Calendar(years)
    out = CoverageCheck()

    def file_of(year: int) -> str:
        return f"{calendar_dir}/{year}.yaml"

    if not cal.covers(today.year):
        out.errors.append(
            CatalogError(
                f"missing: no official holiday calendar for the current year {today.year} "
                f"(today is {today}; {PACKAGE} has no {today.year} and there is no such file): "
                "every deadline is counted Monday to Friday, ignoring 法定节假日 and 调休; add "
                f"this file from the State Council's notice on the {today.year} holidays",
                file=file_of(today.year),
            )
        )
    else:
        try:
            workdays.deadline(today, calendar=cal, strict=True, record=False)
        except CalendarYearMissing as exc:
            out.errors.append(
                CatalogError(
                    f"missing: the deadline of an application made today ({today}), "
                    f"{workdays.ANSWER_WITHIN_WORKING_DAYS} working days, reaches into {exc.year}, "
                    f"which has no official holiday calendar: add this file from the State "
                    f"Council's notice on the {exc.year} holidays",
                    file=file_of(exc.year),
                )
            )
    next_year = today.year + 1
    named = {e.facts.get("file") for e in out.errors}  # an error already is not warned of
    if (
        (today.month, today.day) >= WARN_FROM
        and not cal.covers(next_year)
        and file_of(next_year) not in named
    ):
        out.warnings.append(
            CatalogError(
                f"missing: no official holiday calendar for next year {next_year} yet "
                f"(neither {PACKAGE} nor a file has it): "
                f"add this file once the State Council publishes the {next_year} holidays "
                f"(usually in the autumn); from 1 January {next_year} validation fails",
                file=file_of(next_year),
            )
        )
    for year in sorted(cal.years):
        diffs = cal.differences_from_package(year)
        if diffs:
            shown = ", ".join(
                f"{day} ({_kind(mine)} in the file, {_kind(theirs)} in the package)"
                for day, mine, theirs in diffs[:5]
            )
            more = f" and {len(diffs) - 5} more" if len(diffs) > 5 else ""
            out.notices.append(
                CatalogError(
                    f"contradicts {PACKAGE} on {len(diffs)} day(s) of {year}: {shown}{more}; "
                    "the file wins",
                    file=file_of(year),
                )
            )
    return out


def _kind(workday: bool) -> str:
    return "working day" if workday else "day off"


def calendar_check(
    directory: Path, years: tuple[YearCalendar, ...], today: dt.date
) -> CoverageCheck:
    """:func:`check_coverage` for the catalog directory ``directory``, naming its files
    as the loader does (``schemas/calendar/2027.yaml``)."""
    root = Path(directory)
    where = root / CALENDAR_DIR
    try:
        name = str(where.relative_to(root.parent))
    except ValueError:
        name = str(where)
    return check_coverage(years, name, today)
