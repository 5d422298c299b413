"""The whole path of one application (申请全程): applied → reviewed → answered → contested → decided.

Shown to the people of the departments it concerns (the consumer, the
provider) and of the data-sharing authority (主管部门): every step with its
date, actor, outcome and reason, and every stage with its time limit, due
date and whether it was (or is) overdue.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from exchange.console.routes.common import Refused, Service, SignedIn, page
from exchange.errors import UnknownResource
from exchange.sharing.records import now

router = APIRouter()


@router.get("/applications/{app_id}/path")
async def application_path(request: Request, app_id: str, s: SignedIn, svc: Service) -> Response:
    person = s.person
    assert person is not None
    state = await svc.state()
    app = state.book.applications.get(app_id)
    res = state.catalog.resources.get(app.resource) if app else None
    if app is None or res is None:
        raise UnknownResource(f"申请不存在 no application {app_id!r}")
    bureau = state.catalog.authority()
    parties = {app.consumer, res.provider, *([bureau.id] if bureau else [])}
    if person.department not in parties:
        raise Refused(
            403,
            f"只有相关部门可以查看 only {', '.join(sorted(parties))} may see the path of {app_id}",
        )
    return page(request, "path.html", app=app, res=res, windows=app.windows(), at=now())
