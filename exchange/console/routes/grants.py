"""Grants (授权) of the person's department, given or held, with revoke for the provider's approvers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

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
from exchange.sharing.records import now

router = APIRouter()


@router.get("/grants")
async def grants(request: Request, s: SignedIn, svc: Service) -> Response:
    person = s.person
    assert person is not None
    if person.department is None:
        raise Refused(403, "授权属于部门 grants belong to a department; you are in none")
    async with svc.desks.acting(person) as desk:
        catalog = desk.state.catalog
        rows = [
            (g, catalog.resources[g.resource].provider if g.resource in catalog.resources else "?")
            for g in desk.grants()
        ]
    return page(request, "grants.html", rows=rows, at=now())


@router.post("/grants/{grant_id}/revoke")
async def revoke(
    request: Request,
    grant_id: str,
    s: SignedIn,
    svc: Service,
    _csrf: CsrfChecked,
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Revoke through the same call as ``exchange revoke``: only the provider may."""
    person = need(s, Role.APPROVER)
    if not reason.strip():
        raise Refused(400, "撤销须说明理由 a revocation needs a reason")
    async with svc.desks.acting(person) as desk:
        await desk.revoke(grant_id, reason=reason.strip())
    s.flash.append(f"已撤销 revoked {grant_id}")
    return redirect("/grants")
