"""Working days on the official Chinese calendar (法定节假日 and 调休 make-up days).

The 2016 interim measures give a provider 10 working days to answer an
application for conditional data. The ``chinesecalendar`` package follows
the State Council's yearly holiday notices, make-up working days included.
"""

from __future__ import annotations

import datetime as dt

import chinese_calendar

from exchange.beijing import china_date as china_date

ANSWER_WITHIN_WORKING_DAYS = 10


def is_workday(day: dt.date) -> bool:
    try:
        return bool(chinese_calendar.is_workday(day))
    except NotImplementedError:
        # a year the package does not cover yet: fall back on Monday to Friday
        return day.weekday() < 5


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after ``start`` up to and including ``end`` (0 if end <= start)."""
    days = 0
    day = start
    while day < end:
        day += dt.timedelta(days=1)
        if is_workday(day):
            days += 1
    return days


def due_date(applied_at: dt.datetime) -> dt.date:
    """The last day to answer an application made at the instant ``applied_at``.

    The one place the due date of an application is computed: 10 working days
    after the day it was made on the Beijing calendar (an application made at
    01:30 in Beijing is made on that day, though it is still the day before in
    UTC). The grant book, the audit entries and the reports all call this.
    """
    return answer_due(china_date(applied_at))


def answer_due(applied: dt.date, within: int = ANSWER_WITHIN_WORKING_DAYS) -> dt.date:
    """The last day of the answer period: ``within`` working days after the (Beijing) date
    ``applied``. For an application, call :func:`due_date` with the instant it was made."""
    day = applied
    left = within
    while left:
        day += dt.timedelta(days=1)
        if is_workday(day):
            left -= 1
    return day
