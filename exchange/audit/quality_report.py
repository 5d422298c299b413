"""The data-quality figures of the monthly report: disputes (疑义校核) and freshness (更新周期).

What a provincial data bureau publishes in its yearly assessment of
departments (考核), counted from the access log alone:

* per provider: disputes opened about its resources in the period, those it
  answered in the period within their working days and beyond them, and those
  still unanswered past their due day at the moment the report describes;
* per provider and resource: the days stale, i.e. the Beijing calendar days
  of the period on which the resource was stale at some moment (a stale spell
  runs from ``stale_since`` in its ``RESOURCE_STALE`` entry to ``recovered_at``
  in the matching ``RESOURCE_FRESH`` entry, or on to the report's moment);
* per consumer: disputes it raised in the period.

Several routers write the same freshness and overdue entries (each instance
once): a spell is known by its resource and ``stale_since``, a dispute by
its id, so copies count once.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from exchange.audit.entry import Action, AuditEntry
from exchange.avro.jsoncodec import CHINA_TZ


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def _date(text: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        return None


@dataclass
class QualityFigures:
    """One department's figures (as provider and as consumer)."""

    disputes_opened: int = 0
    disputes_answered_in_time: int = 0
    disputes_answered_late: int = 0
    disputes_overdue: int = 0
    disputes_raised: int = 0
    days_stale: Counter[str] = field(default_factory=Counter)  # resource -> days

    def rows(self) -> list[tuple[str, str, str, int]]:
        out = [
            ("disputes_opened", "", "", self.disputes_opened),
            ("disputes_answered_in_time", "", "", self.disputes_answered_in_time),
            ("disputes_answered_late", "", "", self.disputes_answered_late),
            ("disputes_unanswered_overdue", "", "", self.disputes_overdue),
            ("disputes_raised", "", "", self.disputes_raised),
        ]
        out.extend(
            ("resource_days_stale", res, "", n) for res, n in sorted(self.days_stale.items())
        )
        return out


@dataclass
class _Dispute:
    provider: str | None
    due: dt.date | None
    answered_at: dt.datetime | None = None


class QualityTally:
    """Reads entries in time order (those before the period's end); then :meth:`figures`."""

    def __init__(self, start: dt.datetime, end: dt.datetime) -> None:
        self.start, self.end = start, end
        self.figures: dict[str, QualityFigures] = {}
        self.disputes: dict[str, _Dispute] = {}
        #: (resource, stale_since) -> (provider, recovered_at or None)
        self.spells: dict[tuple[str, dt.datetime], tuple[str | None, dt.datetime | None]] = {}

    def of(self, name: str) -> QualityFigures:
        return self.figures.setdefault(name, QualityFigures())

    def add(self, e: AuditEntry) -> None:
        in_period = e.at >= self.start
        dispute_id = e.details.get("dispute_id")
        if e.action in (Action.DISPUTE_OPENED, Action.DISPUTE_OVERDUE) and dispute_id:
            known = dispute_id in self.disputes
            self.disputes.setdefault(dispute_id, _Dispute(e.provider, _date(e.details.get("due"))))
            if e.action is Action.DISPUTE_OPENED and not known and in_period:
                if e.provider:
                    self.of(e.provider).disputes_opened += 1
                if e.consumer:
                    self.of(e.consumer).disputes_raised += 1
        elif e.action in (Action.DISPUTE_ANSWERED, Action.DISPUTE_CLOSED) and dispute_id:
            d = self.disputes.setdefault(dispute_id, _Dispute(e.provider, None))
            if d.answered_at is not None:
                return  # closing a dispute answered before is not a second answer
            d.answered_at = e.at
            if in_period and e.provider:
                in_time = e.details.get("answered_in_time") == "true"
                figures = self.of(e.provider)
                if in_time:
                    figures.disputes_answered_in_time += 1
                else:
                    figures.disputes_answered_late += 1
        elif e.action in (Action.RESOURCE_STALE, Action.RESOURCE_FRESH) and e.resource:
            since = _time(e.details.get("stale_since"))
            if since is None:
                return
            key = (e.resource, since)
            recovered = _time(e.details.get("recovered_at"))
            provider, known_end = self.spells.get(key, (e.provider, None))
            self.spells[key] = (provider or e.provider, known_end or recovered)

    def finish(self, horizon: dt.datetime) -> dict[str, QualityFigures]:
        """The figures as at ``horizon`` (overdue disputes, spells still running)."""
        last_day = (horizon - dt.timedelta(milliseconds=1)).astimezone(CHINA_TZ).date()
        for d in self.disputes.values():
            unanswered = d.answered_at is None or d.answered_at >= horizon
            if unanswered and d.due is not None and last_day > d.due and d.provider:
                self.of(d.provider).disputes_overdue += 1
        for (resource, since), (provider, recovered) in self.spells.items():
            if provider is None:
                continue
            days = _days(max(since, self.start), min(recovered or horizon, horizon))
            if days:
                self.of(provider).days_stale[resource] += days
        return self.figures


def _days(begin: dt.datetime, end: dt.datetime) -> int:
    """Beijing calendar days touched by the span ``[begin, end)`` (0 if it is empty)."""
    if end <= begin:
        return 0
    first = begin.astimezone(CHINA_TZ).date()
    last = (end - dt.timedelta(milliseconds=1)).astimezone(CHINA_TZ).date()
    return (last - first).days + 1
