"""The gateway's routes: a record by key, a verification (核验), the caller's OpenAPI, health.

Every request to a resource is audited (one entry, on disk in the gateway's audit
journal) before it is answered, whatever the answer: the record, not found, denied,
over quota, or a request refused for what it carried. A record outside the caller's
row filter is answered exactly like a key that does not exist.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.types import Scope

from exchange.audit.entry import Action, Decision
from exchange.avro.jsoncodec import answer_json
from exchange.errors import DecodeError
from exchange.gateway import checks
from exchange.gateway.access import Access, Refused
from exchange.gateway.openapi import caller_document
from exchange.gateway.quota import OverQuota
from exchange.gateway.request_audit import RequestFacts
from exchange.gateway.service import GatewayService
from exchange.http.auth import Caller, principal
from exchange.http.direct import DirectRoute, answered_by
from exchange.http.errors import ErrorBody, HttpError

#: the lookup by key is answered without FastAPI's parameter solving (:mod:`exchange.http.direct`)
router = APIRouter(route_class=DirectRoute)

NOT_FOUND = "no record with this key"
PurposeHeader = Annotated[
    str | None,
    Header(
        alias="X-Purpose",
        description="purpose of use (用途), percent-encoded UTF-8; or ?purpose=",
    ),
]
PurposeQuery = Annotated[
    str | None, Query(alias="purpose", max_length=2000, description="purpose of use (用途)")
]
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a key, purpose or resource name refused"},
    403: {"model": ErrorBody, "description": "no grant allows it (or it was revoked or expired)"},
    404: {"model": ErrorBody, "description": "no such record in the caller's view"},
    429: {"model": ErrorBody, "description": "over the grant's quota; see Retry-After"},
    503: {"model": ErrorBody, "description": "not ready, or the access log cannot be written"},
}


class RecordJSONResponse(JSONResponse):
    """A JSON answer with Avro values in it (dates, decimals, bytes), written in one pass:
    the bytes of ``JSONResponse(to_jsonable(content))`` (:func:`~exchange.avro.jsoncodec.answer_json`)."""

    def render(self, content: Any) -> bytes:
        return answer_json(content)


class RecordAnswer(BaseModel):
    resource: str
    record: dict[str, Any] = Field(description="the caller's view of the latest record")
    masked: dict[str, str] = Field(description="field -> the mask rule applied to it")
    grant_id: str | None


class VerifyRequest(BaseModel):
    values: dict[str, str | int | float | bool | None] = Field(
        description="field -> value to compare; must include the resource's key field",
        max_length=64,
    )


class VerifyAnswer(BaseModel):
    resource: str
    match: bool


def _service(request: Request) -> GatewayService:
    svc: GatewayService = request.app.state.gateway
    why = svc.ready
    if why is not None:
        raise HttpError(503, 50301, f"the gateway is not ready: {why}")
    return svc


async def _answer(
    request: Request,
    facts: RequestFacts,
    purpose: tuple[str | None, str | None],
    decide: Callable[[GatewayService], Awaitable[Response]],
) -> Response:
    """Run ``decide``, audit what it did (journaled), then answer; refusals too."""
    started = time.perf_counter()
    svc = _service(request)
    headers: dict[str, str] | None = None
    try:
        checks.check_path_bytes(request.scope.get("raw_path") or b"")
        checks.check_resource(facts.resource)
        facts.purpose = checks.purpose_of(*purpose)
        response = await decide(svc)
    except checks.BadRequest as exc:
        facts.status, facts.reason = 400, exc.message
        response = _error(400, exc.code, exc.message)
    except Refused as exc:
        facts.status, facts.reason = exc.status, str(exc)
        facts.decision = Decision.NOT_FOUND if exc.status == 404 else Decision.DENIED
        response = _error(exc.status, exc.code, str(exc))
    except OverQuota as exc:
        facts.status, facts.reason = 429, exc.message
        facts.decision = Decision.QUOTA_EXCEEDED
        headers = {"Retry-After": str(exc.retry_after)}
        response = _error(429, 42901, exc.message, headers)
    facts.status = facts.status or response.status_code
    assert svc.audit is not None
    try:
        await svc.audit.record(facts)
    except Exception as exc:
        # no answer leaves without its audit entry
        raise HttpError(
            503, 50302, "the answer is withheld: the access log could not record it"
        ) from exc
    kind = "verify" if facts.action is Action.RECORD_VERIFIED else "query"
    svc.metrics.answered(
        kind,
        _label(svc, facts.resource),
        facts.caller,
        facts.decision,
        time.perf_counter() - started,
    )
    return response


def _label(svc: GatewayService, resource: str) -> str:
    """A resource of the catalog, or ``(other)``: labels stay bounded."""
    snap = svc.state.snapshot
    return resource if snap is not None and resource in svc.state.catalog.resources else "(other)"


def _error(
    status: int, code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status, headers=headers)


def _lookup(svc: GatewayService, access: Access, key: bytes) -> Mapping[str, Any] | None:
    """The latest record with ``key`` if the caller's row filter lets it through."""
    assert svc.store is not None
    framed = svc.store.get(access.topic, key)
    if framed is None:
        return None
    try:
        record = access.read(framed)
    except DecodeError:
        return None  # the router dead-letters it; here it is no answer at all
    return record if access.visible(record) else None


async def answer_record(request: Request) -> Response:
    """``GET /v1/resources/{resource}/records/{key}``: the caller's view of the record.

    Answered directly (:class:`~exchange.http.direct.DirectRoute`): it is the route
    asked thousands of times a second, and reads what :func:`get_record` declares.
    """
    caller = await principal(request)
    resource: str = request.path_params["resource"]
    key: str = request.path_params["key"]
    facts = RequestFacts(Action.RECORD_QUERIED, caller.name, resource)

    async def decide(svc: GatewayService) -> Response:
        raw = checks.check_key(key)
        facts.key = raw
        access = svc.access.access(caller.name, resource)
        facts.provider, facts.grant_id = access.resource.provider, _grant_id(access)
        why = access.may_query()
        if why is not None:
            raise Refused(403, 40303, why)
        svc.quotas.take(access.grant)
        record = _lookup(svc, access, raw)
        if record is None:
            raise Refused(404, 40401, NOT_FOUND)
        facts.decision, facts.fields = Decision.ANSWERED, access.fields
        return RecordJSONResponse(
            {
                "resource": access.resource.id,
                "record": access.render(record),
                "masked": access.masks,
                "grant_id": facts.grant_id,
            }
        )

    return await _answer(request, facts, purpose_given(request.scope), decide)


def purpose_given(scope: Scope) -> tuple[str | None, str | None]:
    """(``X-Purpose``, ``?purpose=``) of a request, as ``request.headers.get`` and
    ``request.query_params.get`` read them (the first such header, the last such parameter),
    in one pass over the raw headers. The lookup answers thousands of times a second, and
    Starlette's headers find an absent one by raising and catching a KeyError: with the
    query parsed into a multi-dict besides, 6% of its CPU (py-spy, the bench's paced run)."""
    header = None
    for name, value in scope["headers"]:
        if name == b"x-purpose":
            header = value.decode("latin-1")
            break
    query = None
    if raw := scope.get("query_string"):
        for name, value in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            if name == "purpose":
                query = value
    return header, query


@router.get(
    "/v1/resources/{resource}/records/{key:path}",
    response_model=RecordAnswer,
    responses=_ERRORS,
    summary="The caller's view of the latest record with this key (接口调用)",
)
@answered_by(answer_record)
async def get_record(
    resource: str,
    key: str,
    caller: Caller,
    x_purpose: PurposeHeader = None,
    purpose: PurposeQuery = None,
) -> RecordAnswer:
    """Documents the route :func:`answer_record` answers (its parameters, answers, errors)."""
    raise AssertionError("answered by answer_record")


@router.post(
    "/v1/resources/{resource}/verify",
    response_model=VerifyAnswer,
    responses=_ERRORS,
    summary="Whether a record matches these values (核验); answers match or no match only",
)
async def verify(
    resource: str,
    request: Request,
    caller: Caller,
    body: Annotated[VerifyRequest, Body()],
    x_purpose: PurposeHeader = None,
    purpose: PurposeQuery = None,
) -> Response:
    facts = RequestFacts(Action.RECORD_VERIFIED, caller.name, resource)

    async def decide(svc: GatewayService) -> Response:
        access = svc.access.access(caller.name, resource)
        res = access.resource
        facts.provider, facts.grant_id = res.provider, _grant_id(access)
        values = body.values
        facts.fields = sorted(values)
        if res.key not in values or values[res.key] is None:
            raise checks.BadRequest(
                40005, f"a verification of {res.id!r} needs its key field {res.key!r}"
            )
        unknown = sorted(set(values) - set(res.field_names()))
        if unknown:
            raise checks.BadRequest(40006, f"not fields of {res.id!r}: {', '.join(unknown)}")
        refused = sorted(set(values) - access.comparable)
        if refused:
            raise Refused(
                403, 40304, f"{caller.name!r} may not verify these fields: {', '.join(refused)}"
            )
        raw = checks.check_key(str(values[res.key]))
        facts.key = raw
        svc.quotas.take(access.grant)
        record = _lookup(svc, access, raw)
        match = record is not None and all(
            checks.comparable_value(record.get(name)) == value for name, value in values.items()
        )
        facts.decision = Decision.MATCHED if match else Decision.NOT_MATCHED
        return JSONResponse({"resource": res.id, "match": match})

    return await _answer(request, facts, (x_purpose, purpose), decide)


def _grant_id(access: Access) -> str | None:
    return access.grant.id if access.grant is not None else None


@router.api_route(
    "/v1/resources/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
    include_in_schema=False,
)
async def elsewhere(rest: str, caller: Caller) -> JSONResponse:
    """Any other path under /v1/resources: say what is wrong with it (traversal, a slash)."""
    resource = rest.split("/", 1)[0]
    try:
        checks.check_resource(resource)
    except checks.BadRequest as exc:
        return _error(400, exc.code, exc.message)
    return _error(
        404,
        40403,
        "no such route: GET /v1/resources/<resource>/records/<key> or "
        "POST /v1/resources/<resource>/verify",
    )


@router.get(
    "/v1/openapi.json",
    summary="An OpenAPI document of what the caller may ask: one path per resource",
    responses={503: {"model": ErrorBody, "description": "not ready"}},
)
async def openapi_for_caller(request: Request, caller: Caller) -> JSONResponse:
    svc = _service(request)
    return JSONResponse(caller_document(svc.access, caller.name, str(request.base_url)))


@router.get("/health", summary="200 when the gateway answers; 503 with the reason if not")
async def health(request: Request) -> JSONResponse:
    svc: GatewayService = request.app.state.gateway
    why = svc.ready
    store = svc.store
    body: dict[str, Any] = {
        "status": "ok" if why is None else "starting",
        "reason": why,
        "records": store.count() if store is not None and why is None else None,
        "pid": os.getpid(),  # which worker process answered (exchange gateway --workers N)
    }
    return JSONResponse(body, 200 if why is None else 503)
