"""The monthly report per department, computed from the access log alone.

For a month (Beijing time) and each department:

* records received, per resource and purpose (``RECORDS_DELIVERED``; the
  purpose of an unconditional subscription is shown as such);
* its requests that were denied, by reason (subscriptions denied, commands
  refused, applications rejected);
* grants it holds (as consumer) and grants it gave (as provider): active at
  the moment the report describes (the end of the month, or now for the
  current month), revoked and expired during the month up to that moment (a
  grant that runs out later is active, not expired);
* applications it answered as provider during the month, within and beyond
  10 working days (the official calendar with its make-up working days,
  :mod:`exchange.workdays`), and those still unanswered past their due date
  at the end of the month;
* disputes (疑义校核) and freshness (更新周期): disputes opened about its
  resources, answered in time or late, unanswered and overdue; days stale per
  resource; disputes it raised as consumer (:mod:`exchange.audit.quality_report`);
* the deadlines computed without official holiday data: those this
  report computed into a year that neither the chinesecalendar package nor
  a calendar file has (counted Monday to Friday, so within/beyond may be
  wrong), and those a router or client computed so when it audited them
  (detail ``calendar_missing``), one row each, naming the application.
  The calendar is the one of this process (:func:`exchange.workdays.use`;
  ``exchange audit report`` installs the catalog's).

Names that are not departments of the catalog (``departments``: an actor
such as ``--as nobody`` whose commands were refused) are not departments:
they get a report of their own marked ``known=False``, listed in a section
of their own after the departments (CSV and JSON column ``section``:
``department`` or ``unknown actor``), since they are exactly what an auditor
wants to see.

Counts follow the log, which is at-least-once like deliveries: a router
that crashes before committing re-routes (and re-audits) the uncommitted
tail, so the figures can exceed what a consumer keeps after dropping
duplicates by record id.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

from exchange import workdays
from exchange.audit import workflow_tally
from exchange.audit.entry import REFUSALS, Action, AuditEntry
from exchange.audit.quality_report import QualityFigures, QualityTally
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.errors import ExchangeError

UNCONDITIONAL = "(无条件共享 unconditional subscription)"
NOT_DEPARTMENTS = {"router", "admin"}
DEPARTMENT = "department"
UNKNOWN_ACTOR = "unknown actor"


@dataclass(frozen=True)
class Period:
    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        m = re.fullmatch(r"(\d{4})-(\d{2})", text)
        if not m or not 1 <= int(m[2]) <= 12:
            raise ExchangeError(f"period {text!r}: write YYYY-MM, e.g. 2026-11")
        return cls(int(m[1]), int(m[2]))

    @property
    def start(self) -> dt.datetime:
        return dt.datetime(self.year, self.month, 1, tzinfo=CHINA_TZ)

    @property
    def end(self) -> dt.datetime:
        y, m = (self.year + 1, 1) if self.month == 12 else (self.year, self.month + 1)
        return dt.datetime(y, m, 1, tzinfo=CHINA_TZ)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"


@dataclass
class DepartmentReport:
    department: str
    received: Counter[tuple[str, str]] = field(default_factory=Counter)  # (resource, purpose)
    denials: Counter[tuple[str, str]] = field(default_factory=Counter)  # (action, reason)
    grants: dict[str, Counter[str]] = field(
        default_factory=lambda: {"held": Counter(), "given": Counter()}
    )
    answered_within: int = 0
    answered_beyond: int = 0
    overdue_unanswered: int = 0
    #: application id -> what was computed without holiday data, and how
    without_calendar: dict[str, str] = field(default_factory=dict)
    #: False for a name that is not a department of the catalog (an unknown actor)
    known: bool = True
    #: disputes and freshness (疑义校核, 更新周期)
    quality: QualityFigures = field(default_factory=QualityFigures)
    #: (metric, role) -> count: the authority's workflow (exchange.audit.workflow_tally)
    workflow: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def section(self) -> str:
        return DEPARTMENT if self.known else UNKNOWN_ACTOR

    def rows(self) -> list[tuple[str, str, str, int]]:
        """(metric, resource, detail, value) rows, in a fixed order; an unknown actor's
        only the metrics it has (it holds no grants and answers no applications)."""
        if not self.known:
            return [row for row in self._rows() if row[0] == "denied" or row[3]]
        return self._rows()

    def _rows(self) -> list[tuple[str, str, str, int]]:
        out: list[tuple[str, str, str, int]] = []
        for (res, purpose), n in sorted(self.received.items()):
            out.append(("records_received", res, purpose, n))
        for (action, reason), n in sorted(self.denials.items()):
            out.append(("denied", action, reason, n))
        for role in ("held", "given"):
            for state in ("active", "revoked", "expired"):
                out.append((f"grants_{role}_{state}", "", "", self.grants[role][state]))
        out.append(("applications_answered_within_10_working_days", "", "", self.answered_within))
        out.append(("applications_answered_beyond_10_working_days", "", "", self.answered_beyond))
        out.append(("applications_unanswered_overdue", "", "", self.overdue_unanswered))
        out.extend(self.quality.rows())
        for app_id, what in sorted(self.without_calendar.items()):
            out.append(("deadline_without_calendar_data", app_id, what, 1))
        for (metric, role), n in sorted(self.workflow.items()):
            out.append((metric, "", role, n))
        return out


@dataclass
class _Grant:
    id: str
    consumer: str | None
    provider: str | None
    resource: str | None
    approved_at: dt.datetime
    valid_until: dt.datetime | None
    ended_at: dt.datetime | None = None  # revoked or superseded
    revoked_at: dt.datetime | None = None
    expired_seen: dt.datetime | None = None


def _time(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def answered_in_time(applied: dt.datetime, answered: dt.datetime) -> bool:
    """Whether an answer came within 10 working days (Beijing dates)."""
    due = workdays.due_date(applied)
    return answered.astimezone(CHINA_TZ).date() <= due


def _deadline(applied: dt.datetime) -> workdays.Deadline:
    """The due date of an application made at ``applied``, and the years it lacked data for."""
    return workdays.deadline(workdays.china_date(applied))


def _without_data(found: workdays.Deadline) -> str:
    years = ", ".join(str(y) for y in found.years_missing)
    return (
        f"due {found.day} computed by this report with no holiday calendar for {years} "
        "(counted Monday to Friday): add calendar/<year>.yaml to the catalog"
    )


def monthly(
    entries: Iterable[AuditEntry],
    period: Period,
    *,
    department: str | None = None,
    at: dt.datetime | None = None,
    departments: Collection[str] | None = None,
) -> list[DepartmentReport]:
    """Reports for every department in the log (or one), for ``period``; entries in any order.

    ``at`` is now: the report describes the end of the period, or ``at`` if earlier.
    ``departments``: the catalog's; any other name gets an unknown actor's report,
    listed after the departments (None: every name is taken for a department).
    """
    horizon = min(period.end, at) if at is not None else period.end  # never after now
    tally = _Tally(period.start, period.end, department, departments)
    seen: set[str] = set()
    for e in sorted(entries, key=lambda x: x.at):
        if e.id in seen:  # a duplicate written by a producer retry
            continue
        seen.add(e.id)
        if e.at < period.end:
            tally.add(e)
    tally.count_grants(horizon)
    tally.count_overdue(horizon)
    for name, figures in tally.quality.finish(horizon).items():
        r = tally.rep(name)
        if r is not None:
            r.quality = figures
    return sorted(tally.reports.values(), key=lambda r: (not r.known, r.department))


class _Tally:
    """What the log says up to the end of a period, read entry by entry in time order."""

    def __init__(
        self,
        start: dt.datetime,
        end: dt.datetime,
        department: str | None,
        departments: Collection[str] | None,
    ) -> None:
        self.start, self.end, self.department = start, end, department
        self.departments = None if departments is None else frozenset(departments)
        self.reports: dict[str, DepartmentReport] = {}
        self.grants: dict[str, _Grant] = {}
        self.current: dict[tuple[str | None, str | None], str] = {}  # (consumer, resource)
        self.applied: dict[str, dt.datetime] = {}
        self.answered: dict[str, dt.datetime] = {}
        self.app_provider: dict[str, str | None] = {}
        self.quality = QualityTally(start, end)
        self.overdue_seen: set[tuple[str, str]] = set()  # (application, stage) noticed

    def rep(self, name: str | None) -> DepartmentReport | None:
        """The report of department ``name``; None for the router, admin or another department."""
        if name is None or name in NOT_DEPARTMENTS:
            return None
        if self.department is not None and name != self.department:
            return None
        report = self.reports.get(name)
        if report is None:
            known = self.departments is None or name in self.departments
            report = self.reports[name] = DepartmentReport(name, known=known)
        return report

    def add(self, e: AuditEntry) -> None:
        in_period = e.at >= self.start
        self.quality.add(e)
        missing = e.details.get("calendar_missing")
        if missing and in_period and e.application_id:
            r = self.rep(e.provider)
            if r is not None:
                r.without_calendar.setdefault(
                    e.application_id,
                    f"due {e.details.get('due', '?')} in the {e.action.value} entry of {e.actor} "
                    f"computed with no holiday calendar for {missing} (counted Monday to Friday)",
                )
        for name in (e.actor, e.consumer, e.provider):
            if in_period:
                self.rep(name)
        if in_period:
            workflow_tally.tally(e, self.rep, self.overdue_seen)
        if e.action is Action.RECORDS_DELIVERED and in_period:
            r = self.rep(e.consumer)
            if r is not None:
                n = int(e.details.get("record_count", "0"))
                r.received[(e.resource or "", e.purpose or UNCONDITIONAL)] += n
        elif in_period and (  # every refusal, whatever the action
            e.decision in REFUSALS
            or e.action in (Action.SUBSCRIPTION_DENIED, Action.COMMAND_REFUSED)
        ):
            r = self.rep(e.actor if e.actor not in NOT_DEPARTMENTS else e.consumer)
            if r is not None:
                r.denials[(e.action.value, e.reason or "")] += 1
        elif e.action is Action.APPLICATION_SUBMITTED and e.application_id:
            self.applied.setdefault(e.application_id, e.at)
            self.app_provider[e.application_id] = e.provider
        elif e.action is Action.APPLICATION_OVERDUE and e.application_id:
            # noticed by a router: also covers applications written without the API
            when = _time(e.details.get("applied_at"))
            if when is not None:
                self.applied.setdefault(e.application_id, when)
                self.app_provider.setdefault(e.application_id, e.provider)
        elif e.action in (Action.APPLICATION_APPROVED, Action.APPLICATION_REJECTED):
            self._answer(e, in_period)
        elif e.action is Action.APPLICATION_DECIDED and e.decision == "ordered" and e.grant_id:
            self._grant(e)  # an order of the authority: a grant like an approval's
        elif e.action is Action.GRANT_REVOKED and e.grant_id in self.grants:
            g = self.grants[e.grant_id or ""]
            if g.revoked_at is None:
                g.revoked_at = e.at
                g.ended_at = g.ended_at or e.at
        elif e.action is Action.GRANT_EXPIRED and e.grant_id in self.grants:
            g = self.grants[e.grant_id or ""]
            g.expired_seen = g.expired_seen or e.at

    def _answer(self, e: AuditEntry, in_period: bool) -> None:
        """An application approved or rejected: in time or not; a denial; a new grant."""
        if e.application_id and e.application_id not in self.answered:
            self.answered[e.application_id] = e.at
            self.app_provider[e.application_id] = e.provider
            when = _time(e.details.get("applied_at")) or self.applied.get(e.application_id)
            if when is not None:
                self.applied.setdefault(e.application_id, when)
            r = self.rep(e.provider)
            if in_period and r is not None and when is not None:
                found = _deadline(when)
                said = e.details.get("within_time_limit")  # the application's own limit
                in_time = (
                    said == "true"
                    if said is not None
                    else e.at.astimezone(CHINA_TZ).date() <= found.day
                )
                if in_time:
                    r.answered_within += 1
                else:
                    r.answered_beyond += 1
                if not found.complete:
                    r.without_calendar.setdefault(e.application_id, _without_data(found))
        if e.action is Action.APPLICATION_REJECTED and in_period:
            r = self.rep(e.consumer)
            if r is not None:
                r.denials[(e.action.value, e.reason or "")] += 1
        if e.action is Action.APPLICATION_APPROVED and e.grant_id:
            self._grant(e)

    def _grant(self, e: AuditEntry) -> None:
        """A new grant (an approval, or the authority's order); it supersedes the last one."""
        if e.grant_id:
            key = (e.consumer, e.resource)
            previous = self.grants.get(self.current.get(key, ""))
            if previous is not None and previous.ended_at is None:
                previous.ended_at = e.at  # superseded by the new approval
            self.grants[e.grant_id] = _Grant(
                e.grant_id,
                e.consumer,
                e.provider,
                e.resource,
                e.at,
                _time(e.details.get("valid_until")),
            )
            self.current[key] = e.grant_id

    def count_grants(self, horizon: dt.datetime) -> None:
        """Grants held and given: revoked or expired in the period up to ``horizon`` (the
        moment the report describes: a grant that runs out after it has not expired),
        active at ``horizon``."""
        start, end = self.start, self.end
        for g in self.grants.values():
            expiry = g.valid_until or g.expired_seen
            ended = g.ended_at
            if ended is not None and expiry is not None and ended > expiry:
                ended = None  # it had expired already; the revocation changed nothing
            for role, name in (("held", g.consumer), ("given", g.provider)):
                r = self.rep(name)
                if r is None:
                    continue
                if g.revoked_at is not None and ended is not None and start <= g.revoked_at < end:
                    r.grants[role]["revoked"] += 1
                elif (
                    expiry is not None
                    and start <= expiry < end
                    and expiry <= horizon  # not the end of the month: it may still run
                    and ended is None
                ):
                    r.grants[role]["expired"] += 1
                if (
                    g.approved_at < horizon
                    and (ended is None or ended >= horizon)
                    and (expiry is None or expiry > horizon)
                ):
                    r.grants[role]["active"] += 1

    def count_overdue(self, horizon: dt.datetime) -> None:
        """Applications unanswered at ``horizon`` and past their due date on its last day."""
        last_day = (horizon - dt.timedelta(milliseconds=1)).astimezone(CHINA_TZ).date()
        for app_id, when in self.applied.items():
            if app_id in self.answered and self.answered[app_id] < horizon:
                continue
            if when >= horizon:
                continue
            r = self.rep(self.app_provider.get(app_id))
            if r is None:
                continue
            found = _deadline(when)
            if last_day > found.day:
                r.overdue_unanswered += 1
            if not found.complete:
                r.without_calendar.setdefault(app_id, _without_data(found))


HEADERS = ["department", "metric", "resource/action", "purpose/reason", "value", "section"]


def to_rows(reports: list[DepartmentReport]) -> list[list[str]]:
    """Rows of :data:`HEADERS`: the departments', then the unknown actors' (``section``)."""
    ordered = sorted(reports, key=lambda r: not r.known)
    return [
        [r.department, m, a, b, str(v), r.section] for r in ordered for (m, a, b, v) in r.rows()
    ]


def to_csv(reports: list[DepartmentReport], period: Period) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["period", *HEADERS])
    for row in to_rows(reports):
        w.writerow([str(period), *row])
    return buf.getvalue().rstrip("\n")


def summary_counts(reports: list[DepartmentReport]) -> dict[str, dict[str, int]]:
    """{department: {metric: total}} (tests and quick checks)."""
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for r in reports:
        for metric, _, _, v in r.rows():
            out[r.department][metric] = out[r.department].get(metric, 0) + v
    return dict(out)
