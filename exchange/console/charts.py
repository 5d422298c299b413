"""The monthly report's charts: figures per day of the month, from the access log alone.

Three series, each a Chart.js data set the page draws (Chart.js, vendored from
npm, renders them; nothing here draws): records delivered per consumer per
day (``RECORDS_DELIVERED``, its ``record_count``), refusals per day (every
decision that means refused) and applications found overdue per day
(``APPLICATION_OVERDUE``), next to the table of
:func:`exchange.audit.report.monthly`.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from exchange.audit.entry import REFUSALS, Action, AuditEntry
from exchange.audit.report import Period
from exchange.avro.jsoncodec import CHINA_TZ


def _days(period: Period) -> list[str]:
    days = []
    day = period.start
    while day < period.end:
        days.append(day.strftime("%m-%d"))
        day += dt.timedelta(days=1)
    return days


def _count(e: AuditEntry) -> int:
    try:
        return int(e.details.get("record_count", "0"))
    except ValueError:
        return 0


def daily(entries: Iterable[AuditEntry], period: Period) -> dict[str, Any]:
    """``{"days": [...], "delivered": {consumer: [n per day]}, "refused": [...], "overdue": [...]}``"""
    days = _days(period)
    index = {d: i for i, d in enumerate(days)}
    delivered: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    refused = [0] * len(days)
    overdue = [0] * len(days)
    for e in entries:
        if not period.start <= e.at < period.end:
            continue
        i = index[e.at.astimezone(CHINA_TZ).strftime("%m-%d")]
        if e.action is Action.RECORDS_DELIVERED and e.consumer:
            delivered[e.consumer][i] += _count(e)
        elif e.decision in REFUSALS:
            refused[i] += 1
        elif e.action is Action.APPLICATION_OVERDUE:
            overdue[i] += 1
    return {
        "days": days,
        "delivered": dict(sorted(delivered.items())),
        "refused": refused,
        "overdue": overdue,
    }


def totals(data: dict[str, Any]) -> Counter[str]:
    """Sums of each series (the page states them in text beside the charts)."""
    out: Counter[str] = Counter()
    for consumer, counts in data["delivered"].items():
        out[f"delivered:{consumer}"] = sum(counts)
    out["refused"] = sum(data["refused"])
    out["overdue"] = sum(data["overdue"])
    return out
