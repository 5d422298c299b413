"""Dates in one person's life, for sample data: age, school entry and school grade.

School follows the mainland rule: a child who is six by 31 August starts primary
school on 1 September of that year; a school year runs from September to August.
Grades 1-6 are primary school, 7-9 junior middle school.
"""

from __future__ import annotations

import datetime as dt
from random import Random

SCHOOL_START_AGE = 6
COMPULSORY_GRADES = 9
_GRADE_NAMES = ("一", "二", "三", "四", "五", "六")


def add_years(day: dt.date, years: int) -> dt.date:
    """The same day ``years`` later (earlier if negative); 29 February becomes the 28th."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, day=28)


def age_at(birth: dt.date, day: dt.date) -> int:
    """Full years from ``birth`` to ``day``."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def school_year(day: dt.date) -> int:
    """The year the school year of ``day`` began in."""
    return day.year if day.month >= 9 else day.year - 1


def school_entry(birth: dt.date) -> dt.date:
    """1 September of the year a child born on ``birth`` starts primary school."""
    late = (birth.month, birth.day) > (8, 31)
    return dt.date(birth.year + SCHOOL_START_AGE + late, 9, 1)


def grade_at(birth: dt.date, day: dt.date) -> int:
    """The grade a pupil born on ``birth`` is in on ``day`` (below 1: not at school yet)."""
    return school_year(day) - school_entry(birth).year + 1


def pupil_birth(rng: Random, day: dt.date) -> dt.date:
    """A birth date that puts a pupil in one of the compulsory grades on ``day``."""
    entry = school_year(day) - rng.randint(1, COMPULSORY_GRADES) + 1
    first, end = (
        dt.date(entry - SCHOOL_START_AGE - 1, 9, 1),
        dt.date(entry - SCHOOL_START_AGE, 9, 1),
    )
    return first + dt.timedelta(days=rng.randrange((end - first).days))


def grade_name(grade: int) -> str:
    """一年级 ... 六年级, then 初一 ... 初三."""
    if 1 <= grade <= len(_GRADE_NAMES):
        return f"{_GRADE_NAMES[grade - 1]}年级"
    if grade <= COMPULSORY_GRADES:
        return f"初{_GRADE_NAMES[grade - len(_GRADE_NAMES) - 1]}"
    return f"{grade}年级"
