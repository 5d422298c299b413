"""Filtering the access log: by department, resource, action, decision, grant, purpose, time.

The same :class:`Filter` runs over entries read from ``gov.audit`` (in
memory, here) and over an archive (as SQL, in :mod:`exchange.audit.archive`).
Results are newest first and paged with ``limit``/``offset``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass

from exchange import beijing
from exchange.audit.entry import REFUSALS, Action, AuditEntry, Decision
from exchange.audit.verify import Position
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.errors import ExchangeError

FORMATS = ("table", "json", "csv")
COLUMNS = [
    "at",
    "action",
    "actor",
    "consumer",
    "provider",
    "resource",
    "decision",
    "grant_id",
    "application_id",
    "purpose",
    "reason",
    "details",
]


@dataclass(frozen=True)
class Filter:
    """Every criterion given must hold; ``dept`` matches actor, consumer or provider;
    ``decision`` ``denied`` matches every refusal (:func:`decisions`)."""

    dept: str | None = None
    resource: str | None = None
    action: Action | None = None
    decision: str | None = None
    grant: str | None = None
    purpose: str | None = None  # substring
    since: dt.datetime | None = None  # inclusive
    until: dt.datetime | None = None  # exclusive

    def matches(self, e: AuditEntry) -> bool:
        return (
            (self.dept is None or e.involves(self.dept))
            and (self.resource is None or e.resource == self.resource)
            and (self.action is None or e.action is self.action)
            and (self.decision is None or e.decision in decisions(self.decision))
            and (self.grant is None or e.grant_id == self.grant)
            and (self.purpose is None or (e.purpose is not None and self.purpose in e.purpose))
            and (self.since is None or e.at >= self.since)
            and (self.until is None or e.at < self.until)
        )


def parse_action(value: str | None) -> Action | None:
    if value is None:
        return None
    try:
        return Action(value.upper())
    except ValueError:
        raise ExchangeError(
            f"unknown action {value!r}; use one of {', '.join(a.value for a in Action)}"
        ) from None


def decisions(decision: str) -> frozenset[str]:
    """The decisions written that ``decision`` finds: every refusal for ``denied``."""
    return REFUSALS if decision in REFUSALS else frozenset({decision})


def parse_decision(value: str | None) -> str | None:
    """A decision of the vocabulary (``refused``, the old word, is ``denied``)."""
    if value is None:
        return None
    word = value.strip().lower()
    if word == Decision.REFUSED.value:
        return Decision.DENIED.value
    if word not in {d.value for d in Decision}:
        known = ", ".join(d.value for d in Decision if d is not Decision.REFUSED)
        raise ExchangeError(f"unknown decision {value!r}; use one of {known}")
    return word


def parse_time(value: str | None, *, end: bool = False) -> dt.datetime | None:
    """ISO date or timestamp; a date is a whole day in Beijing time (``end``: the day after)."""
    if value is None:
        return None
    try:
        t = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ExchangeError(f"{value!r} is not a date (YYYY-MM-DD) or ISO timestamp") from None
    if end and len(value) == 10:
        t += dt.timedelta(days=1)
    return t if t.tzinfo else t.replace(tzinfo=CHINA_TZ)


def select(
    items: Iterable[tuple[Position, AuditEntry]],
    flt: Filter,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> list[AuditEntry]:
    """Matching entries, newest first (log position breaks ties), one page of them."""
    hits = [(e.at, pos, e) for pos, e in items if flt.matches(e)]
    hits.sort(key=lambda t: (t[0], t[1]), reverse=True)
    page = hits[offset : None if limit is None else offset + limit]
    return [e for _, _, e in page]


#: the columns of the text table; the other columns lead its last one, "details"
TABLE_COLUMNS = ["at", "action", "actor", "resource", "decision", "details"]


def _details_text(details: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(details.items()))


def row(e: AuditEntry) -> dict[str, str]:
    j = e.to_json()
    out = {k: "" if j.get(k) is None else str(j[k]) for k in COLUMNS}
    out["details"] = _details_text(e.details)
    return out


def table_rows(entries: list[AuditEntry]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows for a text table, times in Beijing time to the second.

    The columns not in :data:`TABLE_COLUMNS` (consumer, provider, grant, application,
    purpose, reason) open the details text as ``name=value``; --format json or csv
    gives each field on its own.
    """
    rows = []
    for e in entries:
        r = row(e)
        r["at"] = beijing.shown(e.at, seconds=True)
        folded = [f"{c}={r[c]}" for c in COLUMNS if c not in TABLE_COLUMNS and r[c]]
        r["details"] = " ".join([*folded, r["details"]]).strip()
        rows.append([r[c] for c in TABLE_COLUMNS])
    return TABLE_COLUMNS, rows


def render(entries: list[AuditEntry], fmt: str) -> str:
    """Entries as JSON (every field) or CSV (every field, details as JSON)."""
    if fmt == "json":
        return json.dumps([e.to_json() for e in entries], ensure_ascii=False, indent=2)
    if fmt != "csv":
        raise ExchangeError(f"unknown format {fmt!r}; use json or csv (or table_rows)")
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["id", "writer", "seq", *COLUMNS, "instance", "hash"])
    for e in entries:
        r = row(e)
        r["details"] = json.dumps(e.details, ensure_ascii=False, sort_keys=True)
        w.writerow([e.id, e.writer, e.seq, *(r[c] for c in COLUMNS), e.instance, e.hash])
    return buf.getvalue().rstrip("\n")
