"""One error format for every HTTP service: Confluent Schema Registry's.

``{"error_code": <int>, "message": <text>}`` with the HTTP status; the
``error_code`` is the status itself or a five-digit refinement of it
(40401 subject not found, 42201 invalid schema, ...), as Confluent's clients
expect. Unknown routes, wrong methods and malformed requests get the same body.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

#: Confluent's media type: what its clients send and accept
MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


class ApiJSONResponse(JSONResponse):
    media_type = MEDIA_TYPE


class ErrorBody(BaseModel):
    """The body of every 4xx and 5xx answer."""

    error_code: int
    message: str


class HttpError(Exception):
    """An answer other than success: ``status`` on the wire, ``code`` in the body."""

    def __init__(
        self, status: int, code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers


def error_response(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> ApiJSONResponse:
    return ApiJSONResponse(
        {"error_code": code, "message": message}, status_code=status, headers=headers
    )


async def _http_error(request: Request, exc: Exception) -> ApiJSONResponse:
    assert isinstance(exc, HttpError)
    return error_response(exc.status, exc.code, exc.message, exc.headers)


async def _starlette_error(request: Request, exc: Exception) -> ApiJSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = exc.detail if isinstance(exc.detail, str) else "error"
    return error_response(
        exc.status_code, exc.status_code, f"HTTP {exc.status_code} {phrase}", exc.headers
    )


async def _validation_error(request: Request, exc: Exception) -> ApiJSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(_describe(e) for e in exc.errors()[:5])
    # Confluent answers a body it cannot read with 422 and its own code 422
    return error_response(422, 422, f"Unprocessable request: {problems}"[:2000])


def _describe(error: Any) -> str:
    where = ".".join(str(p) for p in error.get("loc", ()))
    return f"{where}: {error.get('msg', 'invalid')}"


async def _unexpected(request: Request, exc: Exception) -> ApiJSONResponse:
    # logged by uvicorn with its traceback; the caller learns nothing of the inside
    return error_response(500, 50001, "Error in the backend data store")


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with an :class:`ErrorBody`."""
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(HttpError, _http_error)
    app.add_exception_handler(StarletteHTTPException, _starlette_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
