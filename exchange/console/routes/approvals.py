"""The approver's inbox (待办), the approval form with its live checks, approving and rejecting."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from exchange import beijing
from exchange.catalog.model import Resource
from exchange.console import preview
from exchange.console.accounts import Role
from exchange.console.routes.common import (
    CsrfChecked,
    Refused,
    Service,
    SignedIn,
    need,
    page,
    redirect,
)
from exchange.errors import UnknownResource
from exchange.sharing.records import Application, AppStatus, now
from exchange.sharing.stages import Stage

router = APIRouter()


def _own(department: str | None, wanted: str) -> None:
    if department != wanted:
        raise Refused(
            403,
            f"只能查看本部门的待办 you may see the inbox of your own department "
            f"({department}) only, not {wanted}'s",
        )


@router.get("/departments/{department}/inbox")
async def inbox(request: Request, department: str, s: SignedIn, svc: Service) -> Response:
    person = need(s, Role.APPROVER)
    _own(person.department, department)
    async with svc.desks.acting(person) as desk:
        t = now()
        catalog = desk.state.catalog
        to_us = [
            a
            for a in desk.applications()
            if a.resource in catalog.resources
            and catalog.resources[a.resource].provider == department
        ]
    # under compliance review (符合性审查) an application is the authority's, not ours yet
    pending = [a for a in to_us if a.status is AppStatus.PENDING and a.stage is not Stage.REVIEW]
    pending.sort(key=lambda a: a.due())
    answered = [a for a in to_us if a.status is not AppStatus.PENDING]
    return page(
        request, "inbox.html", pending=pending, answered=answered, at=t, department=department
    )


@router.get("/applications")
async def my_applications(request: Request, s: SignedIn, svc: Service) -> Response:
    """Applications made by the person's department, with their answers."""
    person = need(s, Role.APPLICANT)
    async with svc.desks.acting(person) as desk:
        apps = [a for a in desk.applications() if a.consumer == person.department]
    return page(request, "applications.html", applications=apps, at=now())


async def _application(svc: Service, s: SignedIn, app_id: str) -> tuple[Application, Resource]:
    person = need(s, Role.APPROVER)
    async with svc.desks.acting(person) as desk:
        app = desk.state.book.applications.get(app_id)
        res = desk.state.catalog.resources.get(app.resource) if app else None
    if app is None or res is None:
        raise UnknownResource(f"申请不存在 no application {app_id!r}")
    _own(person.department, res.provider)
    return app, res


@router.get("/applications/{app_id}")
async def approval_form(request: Request, app_id: str, s: SignedIn, svc: Service) -> Response:
    app, res = await _application(svc, s, app_id)
    return page(request, "approve.html", app=app, res=res, at=now(), mask_rules=MASK_CHOICES)


MASK_CHOICES = [
    ("", "不脱敏 none"),
    ("keep:6:4", "保留前6后4位 keep first 6 and last 4"),
    ("keep:1:0", "保留首字 keep the first character"),
    ("surname", "仅保留姓 surname only"),
    ("year", "仅保留年份 year only"),
    ("hash", "按消费方加密哈希 keyed hash per consumer"),
    ("replace", "替换为“已隐藏” replaced by a placeholder"),
]


@router.post("/check/filter")
async def check_filter(
    request: Request,
    s: SignedIn,
    svc: Service,
    _csrf: CsrfChecked,
    resource: Annotated[str, Form()],
    row_filter: Annotated[str, Form()] = "",
) -> Response:
    """The row filter as typed, compiled by the permission manager's compiler (an htmx fragment)."""
    need(s, Role.APPROVER)
    res = (await svc.state()).catalog.resources.get(resource)
    if res is None:
        raise UnknownResource(f"no resource {resource!r}")
    return page(request, "_filter_check.html", check=preview.check_filter(res, row_filter))


@router.post("/preview/masks")
async def preview_masks(
    request: Request, s: SignedIn, svc: Service, _csrf: CsrfChecked
) -> Response:
    """The chosen fields of sample records before and after their masks (an htmx fragment)."""
    need(s, Role.APPROVER)
    form = await request.form()
    res = (await svc.state()).catalog.resources.get(str(form.get("resource", "")))
    if res is None:
        raise UnknownResource("no such resource")
    fields = [str(f) for f in form.getlist("fields")]
    masks = {f: str(form.get(f"mask_{f}", "")) for f in fields}
    return page(request, "_mask_preview.html", pv=preview.preview_masks(res, fields, masks))


@router.post("/applications/{app_id}/approve")
async def approve(
    request: Request, app_id: str, s: SignedIn, svc: Service, _csrf: CsrfChecked
) -> Response:
    """Approve through the same call as ``exchange approve``; a refusal shows its reason."""
    person = need(s, Role.APPROVER)
    form = await request.form()
    fields = [str(f) for f in form.getlist("fields")]
    masks = {f: str(form[f"mask_{f}"]) for f in fields if form.get(f"mask_{f}")}
    row_filter = str(form.get("row_filter", "")).strip() or None
    until_text = str(form.get("until", "")).strip()
    try:
        until = beijing.expiry(until_text) if until_text else None
    except beijing.ExpiryError as exc:
        raise Refused(400, f"有效期 expiry: {exc}") from None
    if not fields:
        raise Refused(
            400, "请至少批准一个字段 approve at least one field, or reject the application"
        )
    async with svc.desks.acting(person) as desk:
        grant_id = await desk.approve(
            app_id, fields=fields, row_filter=row_filter, masks=masks, until=until
        )
    s.flash.append(f"已批准 approved {app_id}: grant {grant_id}")
    return redirect(f"/departments/{person.department}/inbox")


@router.post("/applications/{app_id}/reject")
async def reject(
    request: Request,
    app_id: str,
    s: SignedIn,
    svc: Service,
    _csrf: CsrfChecked,
    reason: Annotated[str, Form()] = "",
) -> Response:
    person = need(s, Role.APPROVER)
    if not reason.strip():
        raise Refused(400, "驳回须说明理由 a rejection needs a reason (the applicant sees it)")
    async with svc.desks.acting(person) as desk:
        await desk.reject(app_id, reason=reason.strip())
    s.flash.append(f"已驳回 rejected {app_id}")
    return redirect(f"/departments/{person.department}/inbox")
