"""The routes: Confluent Schema Registry's REST API, the part serializers and tools use.

Read-only: every write (register, delete, config and mode changes) is refused
with Confluent's ``42205`` (operation not permitted) saying why. Errors carry
Confluent's codes: 40401 subject, 40402 version, 40403 schema not found,
42201 invalid schema, 42202 invalid version. A subject the caller may not see
answers exactly as an unknown one.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from exchange.avro import schema as avro
from exchange.errors import SchemaError
from exchange.http.access_audit import Refused
from exchange.http.auth import Caller, Principal
from exchange.http.errors import MEDIA_TYPE, ApiJSONResponse, ErrorBody, HttpError
from exchange.registry.service import Index, RegistryService, parsing_canonical_form
from exchange.registry.subjects import Subject

MAX_VERSION = 2**31 - 1
READ_ONLY = (
    "this registry is read-only: schemas change only through a signed catalog load "
    "('exchange catalog load'); run serializers with auto.register.schemas=False and "
    "use.latest.version=True"
)


class SchemaString(BaseModel):
    schema_: str = Field(alias="schema", description="the schema, as JSON text")


class RegisteredSchema(BaseModel):
    subject: str
    version: int
    id: int
    schema_: str = Field(alias="schema")


class SubjectVersion(BaseModel):
    subject: str
    version: int


class SchemaRequest(BaseModel):
    """The body of a lookup or compatibility check (Confluent's RegisterSchemaRequest)."""

    model_config = ConfigDict(extra="allow")
    schema_: str = Field(alias="schema", max_length=1_000_000)
    schemaType: str | None = None
    references: list[Any] | None = None


class Compatibility(BaseModel):
    is_compatible: bool
    messages: list[str] | None = None


class CompatibilityLevel(BaseModel):
    compatibilityLevel: str


class ModeBody(BaseModel):
    mode: str


class Health(BaseModel):
    status: str
    catalog_version: int | None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorBody} for c in codes}


router = APIRouter()


def service(request: Request) -> RegistryService:
    svc: RegistryService = request.app.state.registry
    return svc


def index(request: Request) -> Index:
    return service(request).index()


Idx = Annotated[Index, Depends(index)]


def subject_not_found(name: str) -> HttpError:
    return HttpError(404, 40401, f"Subject '{name}' not found.")


def schema_not_found() -> HttpError:
    return HttpError(404, 40403, "Schema not found")


def _subject(idx: Index, caller: Principal, name: str) -> Subject:
    subject = idx.subject(caller, name)
    if subject is None:
        hidden = idx.subjects.get(name)
        if hidden is None:
            raise subject_not_found(name)
        why = f"subject {name} is {_whose(hidden)}: not disclosed to {caller.name}"
        raise _refused(404, 40401, f"Subject '{name}' not found.", caller, hidden, why)
    return subject


def _holders(idx: Index, caller: Principal, sid: int) -> list[tuple[Subject, int]]:
    """The (subject, version) pairs holding ``sid`` that the caller may see; 40403 if none."""
    holders = idx.holders(caller, sid)
    if not holders:
        hidden = idx.by_id.get(sid)
        if not hidden:
            raise schema_not_found()
        names = ", ".join(sorted({s.name for s, _ in hidden}))
        why = f"schema id {sid} is held only by subjects not disclosed to {caller.name}: {names}"
        raise _refused(404, 40403, "Schema not found", caller, hidden[0][0], why)
    return holders


def _whose(subject: Subject) -> str:
    if subject.kind == "view":
        return f"the view of {subject.owner}"
    if subject.kind == "source":
        return f"the source of {subject.owner}"
    return "a control topic's"


def _refused(
    status: int, code: int, message: str, caller: Principal, subject: Subject, why: str
) -> Refused:
    """A 404 that the access log records: the subject exists, the caller may not see it."""
    return Refused(
        status,
        code,
        message,
        actor=caller.name,
        reason=why,
        resource=subject.resource,
        consumer=subject.owner if subject.kind == "view" else None,
        provider=subject.owner if subject.kind == "source" else None,
    )


def _version(subject: Subject, version: str) -> int:
    """The version number ``version`` names in ``subject`` ("latest" and -1: the last)."""
    if version in ("latest", "-1"):
        return len(subject.ids)
    try:
        n = int(version)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_VERSION or version.strip() != version:
        raise HttpError(
            422,
            42202,
            "The specified version '" + version[:50] + "' is not a valid version id. "
            'Allowed values are between [1, 2^31-1] and the string "latest"',
        )
    if n > len(subject.ids):
        raise HttpError(404, 40402, f"Version {n} not found.")
    return n


def _registered(idx: Index, subject: Subject, n: int) -> dict[str, Any]:
    sid = subject.ids[n - 1]
    return {"subject": subject.name, "version": n, "id": sid, "schema": idx.text[sid]}


def _parse(body: SchemaRequest) -> avro.Schema:
    if body.schemaType not in (None, "AVRO"):
        raise HttpError(
            422, 42201, f"Invalid schema: schemaType {body.schemaType[:40]!r}: only AVRO is served"
        )
    if body.references:
        raise HttpError(422, 42201, "Invalid schema: the bus's schemas have no references")
    try:
        schema = json.loads(body.schema_)
        avro.parse(schema, where="the schema given")
    except (ValueError, RecursionError, SchemaError) as exc:
        raise HttpError(422, 42201, f"Invalid schema: {str(exc)[:500]}") from None
    return schema  # type: ignore[no-any-return]


@router.get("/", response_model=dict[str, Any], include_in_schema=False)
async def root() -> ApiJSONResponse:
    return ApiJSONResponse({})


@router.get("/schemas/types", response_model=list[str], tags=["schemas"])
async def schema_types() -> ApiJSONResponse:
    """The schema types served: Avro only."""
    return ApiJSONResponse(["AVRO"])


@router.get(
    "/schemas/ids/{id}",
    response_model=SchemaString,
    responses=_errors(404),
    tags=["schemas"],
)
async def schema_by_id(
    id: int,
    caller: Caller,
    idx: Idx,
    subject: Annotated[str | None, Query(max_length=1000)] = None,
    format: Annotated[str | None, Query(max_length=100)] = None,
) -> Response:
    """The schema of an id on the wire, if a subject the caller may see holds it."""
    _holders(idx, caller, id)
    text = json.dumps(idx.text[id], ensure_ascii=False)
    return Response(('{"schema":' + text + "}").encode(), media_type=MEDIA_TYPE)


@router.get("/schemas/ids/{id}/schema", responses=_errors(404), tags=["schemas"])
async def raw_schema_by_id(id: int, caller: Caller, idx: Idx) -> Response:
    """The schema of an id, as the schema itself."""
    _holders(idx, caller, id)
    return Response(idx.text[id].encode(), media_type=MEDIA_TYPE)


@router.get(
    "/schemas/ids/{id}/versions",
    response_model=list[SubjectVersion],
    responses=_errors(404),
    tags=["schemas"],
)
async def versions_of_id(id: int, caller: Caller, idx: Idx) -> ApiJSONResponse:
    """Every (subject, version) the caller may see that holds the id."""
    holders = _holders(idx, caller, id)
    return ApiJSONResponse([{"subject": s.name, "version": n} for s, n in holders])


@router.get(
    "/schemas/ids/{id}/subjects",
    response_model=list[str],
    responses=_errors(404),
    tags=["schemas"],
)
async def subjects_of_id(id: int, caller: Caller, idx: Idx) -> ApiJSONResponse:
    """Every subject the caller may see that holds the id."""
    holders = _holders(idx, caller, id)
    return ApiJSONResponse(sorted({s.name for s, _ in holders}))


@router.get("/subjects", response_model=list[str], tags=["subjects"])
async def subjects(
    caller: Caller,
    idx: Idx,
    subjectPrefix: Annotated[str | None, Query(max_length=1000)] = None,
    deleted: bool = False,
) -> ApiJSONResponse:
    """The subjects the caller may see (nothing is ever deleted here)."""
    names = [
        name
        for name in sorted(idx.subjects)
        if (not subjectPrefix or name.startswith(subjectPrefix))
        and idx.subject(caller, name) is not None
    ]
    return ApiJSONResponse(names)


@router.get(
    "/subjects/{subject}/versions",
    response_model=list[int],
    responses=_errors(404),
    tags=["subjects"],
)
async def versions(subject: str, caller: Caller, idx: Idx) -> ApiJSONResponse:
    """The versions of a subject: 1 .. n."""
    s = _subject(idx, caller, subject)
    return ApiJSONResponse(list(range(1, len(s.ids) + 1)))


@router.get(
    "/subjects/{subject}/versions/{version}",
    response_model=RegisteredSchema,
    responses=_errors(404, 422),
    tags=["subjects"],
)
async def version(subject: str, version: str, caller: Caller, idx: Idx) -> ApiJSONResponse:
    """One version of a subject: its id and schema (``latest``: the schema in force)."""
    s = _subject(idx, caller, subject)
    return ApiJSONResponse(_registered(idx, s, _version(s, version)))


@router.get(
    "/subjects/{subject}/versions/{version}/schema",
    responses=_errors(404, 422),
    tags=["subjects"],
)
async def version_schema(subject: str, version: str, caller: Caller, idx: Idx) -> Response:
    """One version's schema, as the schema itself."""
    s = _subject(idx, caller, subject)
    sid = s.ids[_version(s, version) - 1]
    return Response(idx.text[sid].encode(), media_type=MEDIA_TYPE)


@router.post(
    "/subjects/{subject}",
    response_model=RegisteredSchema,
    responses=_errors(404, 422),
    tags=["subjects"],
)
async def lookup(subject: str, body: SchemaRequest, caller: Caller, idx: Idx) -> ApiJSONResponse:
    """Which version of a subject a schema is: the same text (its id), or the same
    Parsing Canonical Form (docs and key order aside)."""
    s = _subject(idx, caller, subject)
    schema = _parse(body)
    sid = avro.schema_id(schema)
    n = s.version_of(sid)
    if n is None:
        form = parsing_canonical_form(schema)
        n = next((v for v, known in enumerate(s.ids, 1) if idx.canonical(known) == form), None)
    if n is None:
        raise schema_not_found()
    return ApiJSONResponse(_registered(idx, s, n))


@router.post("/subjects/{subject}/versions", responses=_errors(422), tags=["subjects"])
async def register(subject: str, caller: Caller) -> ApiJSONResponse:
    """Refused: schemas change only through a signed catalog load."""
    raise HttpError(422, 42205, f"Subject '{subject[:200]}' is in read-only mode: {READ_ONLY}")


@router.delete("/subjects/{subject}", responses=_errors(422), tags=["subjects"])
async def delete_subject(subject: str, caller: Caller) -> ApiJSONResponse:
    """Refused: nothing is deleted here."""
    raise HttpError(422, 42205, f"Subject '{subject[:200]}' is in read-only mode: {READ_ONLY}")


@router.delete("/subjects/{subject}/versions/{version}", responses=_errors(422), tags=["subjects"])
async def delete_version(subject: str, version: str, caller: Caller) -> ApiJSONResponse:
    """Refused: nothing is deleted here."""
    raise HttpError(422, 42205, f"Subject '{subject[:200]}' is in read-only mode: {READ_ONLY}")


def _compatibility(
    idx: Index, s: Subject, numbers: list[int], body: SchemaRequest, verbose: bool
) -> ApiJSONResponse:
    schema = _parse(body)
    messages: list[str] = []
    for n in numbers:
        try:
            reasons = avro.check_backward(schema, idx.schemas[s.ids[n - 1]])
        except Exception as exc:  # the Apache Avro parser refuses what fastavro took
            raise HttpError(422, 42201, f"Invalid schema: {str(exc)[:500]}") from None
        messages += [f"version {n}: {r}" for r in reasons]
    out: dict[str, Any] = {"is_compatible": not messages}
    if verbose:
        out["messages"] = messages
    return ApiJSONResponse(out)


@router.post(
    "/compatibility/subjects/{subject}/versions/{version}",
    response_model=Compatibility,
    responses=_errors(404, 422),
    tags=["compatibility"],
)
async def compatible_with_version(
    subject: str,
    version: str,
    body: SchemaRequest,
    caller: Caller,
    idx: Idx,
    verbose: bool = False,
) -> ApiJSONResponse:
    """Whether a schema is BACKWARD compatible with a version: the catalog's own check."""
    s = _subject(idx, caller, subject)
    return _compatibility(idx, s, [_version(s, version)], body, verbose)


@router.post(
    "/compatibility/subjects/{subject}/versions",
    response_model=Compatibility,
    responses=_errors(404, 422),
    tags=["compatibility"],
)
async def compatible_with_all(
    subject: str, body: SchemaRequest, caller: Caller, idx: Idx, verbose: bool = False
) -> ApiJSONResponse:
    """Whether a schema is BACKWARD compatible with every version of a subject."""
    s = _subject(idx, caller, subject)
    return _compatibility(idx, s, list(range(1, len(s.ids) + 1)), body, verbose)


@router.get("/config", response_model=CompatibilityLevel, tags=["config"])
async def config(caller: Caller) -> ApiJSONResponse:
    """The global compatibility level: BACKWARD, the catalog's rule."""
    return ApiJSONResponse({"compatibilityLevel": "BACKWARD"})


@router.get(
    "/config/{subject}",
    response_model=CompatibilityLevel,
    responses=_errors(404),
    tags=["config"],
)
async def subject_config(
    subject: str,
    caller: Caller,
    idx: Idx,
    defaultToGlobal: bool = False,
) -> ApiJSONResponse:
    """A subject's level: BACKWARD for sources, NONE for views (a grant adds fields)."""
    s = _subject(idx, caller, subject)
    return ApiJSONResponse({"compatibilityLevel": s.compatibility})


@router.put("/config", responses=_errors(422), tags=["config"])
@router.put("/config/{subject}", responses=_errors(422), tags=["config"])
async def set_config(caller: Caller, subject: str | None = None) -> ApiJSONResponse:
    """Refused: the catalog decides compatibility."""
    raise HttpError(422, 42205, f"Compatibility cannot be changed: {READ_ONLY}")


@router.get("/mode", response_model=ModeBody, tags=["mode"])
async def mode(caller: Caller) -> ApiJSONResponse:
    """READONLY, always."""
    return ApiJSONResponse({"mode": "READONLY"})


@router.get("/mode/{subject}", response_model=ModeBody, responses=_errors(404), tags=["mode"])
async def subject_mode(subject: str, caller: Caller, idx: Idx) -> ApiJSONResponse:
    """READONLY, always."""
    _subject(idx, caller, subject)
    return ApiJSONResponse({"mode": "READONLY"})


@router.put("/mode", responses=_errors(422), tags=["mode"])
@router.put("/mode/{subject}", responses=_errors(422), tags=["mode"])
async def set_mode(caller: Caller, subject: str | None = None) -> ApiJSONResponse:
    """Refused: the registry is read-only by design."""
    raise HttpError(422, 42205, f"The mode cannot be changed: {READ_ONLY}")


@router.get("/health", response_model=Health, responses={503: {"model": Health}}, tags=["service"])
async def health(request: Request) -> ApiJSONResponse:
    """200 once the control topics are read and followed; 503 while starting or starting over.

    No credentials needed (for load balancers); it tells only the catalog version."""
    svc = service(request)
    if not svc.ready:
        return ApiJSONResponse({"status": "starting", "catalog_version": None}, status_code=503)
    return ApiJSONResponse({"status": "ok", "catalog_version": svc.index().catalog_version})
