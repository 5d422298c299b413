"""The catalog (目录), a department's view of a resource (what ``exchange explain`` says), applying."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from exchange.catalog.model import Resource, ShareType
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
from exchange.control.state import ControlState
from exchange.errors import UnknownResource

router = APIRouter()

SHARE_LABELS = {
    ShareType.UNCONDITIONAL: "无条件共享 unconditional",
    ShareType.CONDITIONAL: "有条件共享 conditional",
    ShareType.NOT_SHARED: "不予共享 not shared",
}


@router.get("/")
async def home(s: SignedIn) -> Response:
    person = s.person
    assert person is not None
    if person.has(Role.APPROVER):
        return redirect(f"/departments/{person.department}/inbox")
    if person.has(Role.AUDITOR):
        return redirect("/audit")
    return redirect("/catalog")


@router.get("/catalog")
async def catalog(request: Request, s: SignedIn, svc: Service) -> Response:
    state = await svc.state()
    by_provider: dict[str, list[Resource]] = {}
    for res in sorted(state.catalog.resources.values(), key=lambda r: (r.provider, r.id)):
        by_provider.setdefault(res.provider, []).append(res)
    return page(
        request,
        "catalog.html",
        catalog=state.catalog,
        by_provider=by_provider,
        share_labels=SHARE_LABELS,
        keys_held={d: svc.desks.holds_key(d) for d in state.catalog.departments},
    )


def _resource(state: ControlState, resource: str) -> Resource:
    res = state.catalog.resources.get(resource)
    if res is None:
        raise UnknownResource(f"资源不存在 no resource {resource!r} in the catalog")
    return res


@router.get("/resources/{resource}")
async def resource_view(request: Request, resource: str, s: SignedIn, svc: Service) -> Response:
    """The department's view of ``resource`` and, for applicants, the apply form."""
    person = s.person
    assert person is not None
    if person.department is None:
        raise Refused(403, "“我的视图”属于部门成员 'my view' is for members of a department")
    async with svc.desks.acting(person) as desk:
        res = _resource(desk.state, resource)
        view = desk.explain(resource)
        mine = [a for a in desk.applications() if a.resource == resource]
    return page(
        request,
        "resource.html",
        res=res,
        view=view,
        applications=mine,
        share_labels=SHARE_LABELS,
        may_apply=person.has(Role.APPLICANT) and bool(view.may_apply_for),
    )


@router.post("/resources/{resource}/apply")
async def apply(
    request: Request,
    resource: str,
    s: SignedIn,
    svc: Service,
    _csrf: CsrfChecked,
    purpose: Annotated[str, Form()],
    legal_basis: Annotated[str, Form()],
    fields: Annotated[list[str] | None, Form()] = None,
) -> Response:
    person = need(s, Role.APPLICANT)
    if not purpose.strip() or not legal_basis.strip():
        raise Refused(
            400, "用途和法律依据均为必填 the purpose and the legal basis are both required"
        )
    if not fields:
        raise Refused(400, "请至少选择一个字段 choose at least one field to apply for")
    async with svc.desks.acting(person) as desk:
        # a refusal (CommandRefused) is shown with its reason by the error page
        app_id = await desk.apply(
            resource, fields=fields, purpose=purpose.strip(), legal_basis=legal_basis.strip()
        )
    s.flash.append(f"申请已提交 application {app_id} submitted")
    return redirect(f"/resources/{resource}")
