"""The access log (访问日志) for auditors: filters, paging, CSV export, chain status, monthly report."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from exchange import workdays
from exchange.audit import query as q
from exchange.audit import report as rpt
from exchange.audit.entry import Action, AuditEntry, Decision
from exchange.audit.log import entries_only
from exchange.audit.verify import verify
from exchange.avro.jsoncodec import CHINA_TZ
from exchange.console import charts
from exchange.console.accounts import Role
from exchange.console.routes.common import Refused, Service, SignedIn, need, page
from exchange.errors import ExchangeError
from exchange.sharing.records import now

router = APIRouter()
FILTERS = ("dept", "resource", "action", "decision", "grant", "purpose", "person", "since", "until")


def _filter(params: dict[str, str]) -> q.Filter:
    """The query's filter, as ``exchange audit query`` reads its options; 400 naming a bad one."""
    try:
        return q.Filter(
            dept=params.get("dept") or None,
            resource=params.get("resource") or None,
            action=q.parse_action(params.get("action") or None),
            decision=q.parse_decision(params.get("decision") or None),
            grant=params.get("grant") or None,
            purpose=params.get("purpose") or None,
            since=q.parse_time(params.get("since") or None),
            until=q.parse_time(params.get("until") or None, end=True),
        )
    except ExchangeError as exc:
        raise Refused(400, f"筛选条件有误 a filter is wrong: {exc}") from None


def _params(request: Request) -> dict[str, str]:
    return {k: request.query_params.get(k, "").strip() for k in FILTERS}


def _matching(items: list[Any], flt: q.Filter, person: str) -> list[AuditEntry]:
    entries = q.select(entries_only(items), flt)
    if person:
        entries = [e for e in entries if e.details.get("person") == person]
    return entries


@router.get("/audit")
async def audit_log(request: Request, s: SignedIn, svc: Service) -> Response:
    need(s, Role.AUDITOR)
    params = _params(request)
    flt = _filter(params)
    try:
        page_no = max(1, int(request.query_params.get("page", "1")))
    except ValueError:
        raise Refused(400, "page: a page number (1, 2, ...)") from None
    items = await svc.log()
    report = await asyncio.to_thread(verify, items)
    entries = _matching(items, flt, params["person"])
    size = svc.settings.page_size
    pages = max(1, -(-len(entries) // size))
    shown = entries[(page_no - 1) * size : page_no * size]
    query = "&".join(f"{k}={v}" for k, v in params.items() if v)
    return page(
        request,
        "audit.html",
        entries=shown,
        total=len(entries),
        page_no=page_no,
        pages=pages,
        params=params,
        query=query,
        report=report,
        actions=[a.value for a in Action],
        decisions=[d.value for d in Decision if d is not Decision.REFUSED],
    )


@router.get("/audit.csv")
async def audit_csv(request: Request, s: SignedIn, svc: Service) -> Response:
    """Every matching entry (not only one page), every field, as ``audit query --format csv``."""
    need(s, Role.AUDITOR)
    params = _params(request)
    entries = _matching(await svc.log(), _filter(params), params["person"])
    body = "\ufeff" + q.render(entries, "csv") + "\n"  # the BOM: Excel reads the Chinese right
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="access-log.csv"'},
    )


@router.get("/report")
async def monthly_report(request: Request, s: SignedIn, svc: Service) -> Response:
    need(s, Role.AUDITOR)
    text = request.query_params.get("period") or now().astimezone(CHINA_TZ).strftime("%Y-%m")
    try:
        period = rpt.Period.parse(text)
    except ExchangeError as exc:
        raise Refused(400, str(exc)) from None
    state = await svc.state()
    workdays.use(workdays.Calendar(state.catalog.calendar))
    entries = [e for _, e in entries_only(await svc.log())]
    reports = rpt.monthly(entries, period, at=now(), departments=set(state.catalog.departments))
    rows = [r[:-1] for r in rpt.to_rows(reports) if r[-2] != "0"]
    data = charts.daily(entries, period)
    return page(
        request,
        "report.html",
        period=str(period),
        rows=rows,
        headers=rpt.HEADERS[:-1],
        # inside <script type="application/json">: no "<" may close the element early
        chart_json=json.dumps(data, ensure_ascii=False).replace("<", "\\u003c"),
        totals=charts.totals(data),
    )
