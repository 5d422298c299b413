"""An OpenAPI document per caller, generated from the catalog and the caller's grants.

One path per resource the caller may ask by key, whose answer schema lists
exactly the fields of its view (masked fields as text), and one per resource
it may verify (核验), listing the fields it may compare. A resource the caller
may not use does not appear, so the document discloses nothing the caller
could not learn by asking.
"""

from __future__ import annotations

from typing import Any

from exchange.catalog.model import FieldInfo
from exchange.gateway.access import Access, AccessTable, Refused
from exchange.gateway.checks import MAX_KEY_CHARS, MAX_PURPOSE_CHARS

_ERROR = {
    "type": "object",
    "properties": {"error_code": {"type": "integer"}, "message": {"type": "string"}},
    "required": ["error_code", "message"],
}


def json_type(avro_type: Any) -> dict[str, Any]:
    """JSON Schema of a value of ``avro_type`` as the gateway writes it."""
    if isinstance(avro_type, list):
        options = [json_type(t) for t in avro_type if t != "null"]
        one: dict[str, Any] = options[0] if len(options) == 1 else {"anyOf": options}
        return {"anyOf": [one, {"type": "null"}]} if "null" in avro_type else one
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "date":
            return {"type": "string", "format": "date"}
        if logical in ("timestamp-millis", "timestamp-micros"):
            return {"type": "string", "format": "date-time"}
        if logical == "decimal":
            return {"type": "string"}
        if avro_type.get("type") == "enum":
            return {"type": "string", "enum": list(avro_type.get("symbols", []))}
        if avro_type.get("type") == "array":
            return {"type": "array", "items": json_type(avro_type.get("items"))}
        if avro_type.get("type") == "map":
            return {"type": "object", "additionalProperties": json_type(avro_type.get("values"))}
        return json_type(avro_type.get("type"))
    return {
        "string": {"type": "string"},
        "int": {"type": "integer"},
        "long": {"type": "integer"},
        "float": {"type": "number"},
        "double": {"type": "number"},
        "boolean": {"type": "boolean"},
        "bytes": {"type": "string", "format": "byte"},
    }.get(str(avro_type), {})


def _field_schema(info: FieldInfo, masked: str | None) -> dict[str, Any]:
    schema = {"type": "string"} if masked else json_type(info.avro_type)
    if masked and info.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "description": info.doc + (f" [masked: {masked}]" if masked else "")}


def _purpose() -> dict[str, Any]:
    return {
        "name": "purpose",
        "in": "query",
        "required": True,
        "description": "purpose of use (用途); or the X-Purpose header, percent-encoded UTF-8",
        "schema": {"type": "string", "minLength": 1, "maxLength": MAX_PURPOSE_CHARS},
    }


def _responses(ok: dict[str, Any]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": _ERROR}}}
    out: dict[str, Any] = {
        "200": {"description": "the answer", "content": {"application/json": {"schema": ok}}}
    }
    for status, why in (
        ("400", "a key or purpose refused"),
        ("401", "missing or wrong credentials"),
        ("403", "no grant allows it (any more)"),
        ("404", "no such record in the caller's view"),
        ("422", "a body that cannot be read"),
        ("429", "over the grant's quota; see Retry-After"),
    ):
        out[status] = {"description": why, **error}
    return out


def _query_path(access: Access) -> dict[str, Any]:
    res = access.resource
    props = {name: _field_schema(res.field(name), access.masks.get(name)) for name in access.fields}
    record = {"type": "object", "properties": props, "additionalProperties": False}
    answer = {
        "type": "object",
        "properties": {
            "resource": {"type": "string"},
            "record": record,
            "masked": {"type": "object", "additionalProperties": {"type": "string"}},
            "grant_id": {"type": ["string", "null"]},
        },
        "required": ["resource", "record", "masked", "grant_id"],
    }
    return {
        "get": {
            "operationId": f"get_{res.id}",
            "summary": f"{res.name_zh} {res.name_en}: the latest record by {res.key}",
            "parameters": [
                {
                    "name": "key",
                    "in": "path",
                    "required": True,
                    "description": f"the value of {res.key}",
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS},
                },
                _purpose(),
            ],
            "responses": _responses(answer),
        }
    }


def _verify_path(access: Access) -> dict[str, Any]:
    res = access.resource
    values = {
        name: json_type(res.field(name).avro_type)
        for name in res.field_names()
        if name in access.comparable
    }
    body = {
        "type": "object",
        "properties": {
            "values": {
                "type": "object",
                "properties": values,
                "required": [res.key],
                "additionalProperties": False,
            }
        },
        "required": ["values"],
    }
    answer = {
        "type": "object",
        "properties": {"resource": {"type": "string"}, "match": {"type": "boolean"}},
        "required": ["resource", "match"],
    }
    return {
        "post": {
            "operationId": f"verify_{res.id}",
            "summary": f"{res.name_zh} {res.name_en}: do these values match a record? (核验)",
            "parameters": [_purpose()],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body}},
            },
            "responses": _responses(answer),
        }
    }


def caller_document(table: AccessTable, caller: str, base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of what ``caller`` may ask now."""
    paths: dict[str, Any] = {}
    state = table.state
    resources = sorted(state.catalog.resources) if state.snapshot is not None else []
    for rid in resources:
        try:
            access = table.access(caller, rid)
        except Refused:
            continue
        if access.fields:
            paths[f"/v1/resources/{rid}/records/{{key}}"] = _query_path(access)
        if access.resource.key in access.comparable:
            paths[f"/v1/resources/{rid}/verify"] = _verify_path(access)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"gov-exchange gateway: what {caller} may ask",
            "version": str(state.snapshot.version) if state.snapshot is not None else "0",
            "description": "Requests by key (接口调用) and verifications (核验), generated from "
            "the catalog in force and the caller's grants. Every request is audited; a "
            "purpose of use (用途) is required.",
        },
        "servers": [{"url": base_url.rstrip("/")}],
        "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
        "security": [{"basic": []}],
        "paths": paths,
    }
