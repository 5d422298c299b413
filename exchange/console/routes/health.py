"""Router health (路由器运行状况), from each instance's Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from exchange.console import health
from exchange.console.accounts import Role
from exchange.console.routes.common import Refused, Service, SignedIn, page

router = APIRouter()


@router.get("/router-health")
async def router_health(request: Request, s: SignedIn, svc: Service) -> Response:
    person = s.person
    assert person is not None
    if not (person.has(Role.CATALOG_ADMIN) or person.has(Role.AUDITOR)):
        raise Refused(
            403,
            "此页面需要目录管理员或审计员角色 this page needs the catalog "
            "administrator or auditor role",
        )
    instances = await health.scrape(svc.settings.router_metrics)
    return page(request, "health.html", instances=instances, urls=svc.settings.router_metrics)
