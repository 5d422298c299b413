"""Direct routes: documented by their endpoint's signature, answered by their handler ahead of
FastAPI's routing, with the app's metrics and error handlers."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from exchange.http import server
from exchange.http.app import create_app
from exchange.http.auth import Caller, Gate, PasswordFiles, principal
from exchange.http.direct import DirectRoute, answered_by
from exchange.http.metrics import HttpMetrics

router = APIRouter(route_class=DirectRoute)


async def lookup(request: Request) -> Response:
    caller = await principal(request)
    name = request.path_params["name"]
    if name == "boom":
        raise RuntimeError("an unexpected failure")
    return JSONResponse(
        {
            "name": name,
            "caller": caller.name,
            "q": request.query_params.get("q"),
            "routed_by_fastapi": "router" in request.scope,  # Starlette's router sets it
        }
    )


@router.get("/things/{name}", summary="a thing by name")
@answered_by(lookup)
async def thing(
    name: str, caller: Caller, q: Annotated[str | None, Query(description="a question")] = None
) -> JSONResponse:
    raise AssertionError("answered by lookup")


@router.get("/plain/{n}")
async def plain(n: int) -> dict[str, int]:  # not marked: FastAPI solves its parameters
    return {"n": n}


def _app(tmp_path: Path) -> object:
    (tmp_path / "hrss.password").write_text("pw\n")
    return create_app(
        service="t",
        title="t",
        version="1",
        description="t",
        routers=[router],
        gate=Gate(PasswordFiles(tmp_path)),
        metrics=HttpMetrics(),
    )


async def test_a_direct_route_is_answered_by_its_handler_through_the_apps_stack(
    tmp_path: Path,
) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(b"hrss:pw").decode()}
    async with server.running(_app(tmp_path)) as url, httpx.AsyncClient(base_url=url) as c:
        r = await c.get("/things/a%20b", params={"q": "x"}, headers=auth)
        assert r.json() == {"name": "a b", "caller": "hrss", "q": "x", "routed_by_fastapi": False}
        refused = await c.get("/things/a")  # the gate's 401, in the bus's error format
        assert refused.status_code == 401
        assert refused.json()["error_code"] == 401
        assert "WWW-Authenticate" in refused.headers
        failed = await c.get("/things/boom", headers=auth)
        assert failed.status_code == 500
        assert failed.json() == {"error_code": 50001, "message": "Error in the backend data store"}
        assert (await c.get("/plain/7")).json() == {"n": 7}
        wrong_method = await c.post("/things/a", headers=auth)  # not a direct route: FastAPI's 405
        assert wrong_method.status_code == 405
        assert wrong_method.json()["error_code"] == 405
        assert (await c.get("/plain/x")).status_code == 422  # FastAPI still validates these
        metrics = (await c.get("/metrics")).text
        assert 'route="/things/{name}",service="t",status="200"' in metrics
        assert 'route="/things/{name}",service="t",status="500"' in metrics
        assert 'gov_exchange_http_auth_failures_total{service="t"} 1.0' in metrics


def test_the_openapi_document_shows_the_endpoints_signature(tmp_path: Path) -> None:
    document = _app(tmp_path).openapi()  # type: ignore[attr-defined]
    operation = document["paths"]["/things/{name}"]["get"]
    assert operation["summary"] == "a thing by name"
    params = {(p["name"], p["in"]) for p in operation["parameters"]}
    assert params == {("name", "path"), ("q", "query")}
