"""Routes documented like every other route, but answered by a plain handler of the request,
ahead of FastAPI's routing and middleware.

For each request, FastAPI and Starlette pass it through their middleware (server
errors, the app's metrics, exceptions), match it against every route in turn
(through each included router) and solve the route's parameters: path, query,
headers, cookies and dependencies, each through pydantic. On the 2-core machine
the HTTP stack alone (uvicorn, that path, an authenticated empty answer) cost
about 0.30 ms of CPU per request. A route a service answers thousands of times
a second (the gateway's lookup by key) can skip all that:

* the route is declared as usual on a router with ``route_class=DirectRoute``;
  its endpoint's signature is what the OpenAPI document shows;
* :func:`answered_by` names the handler that actually answers, ``handler(request)``:
  it reads the parameters the signature declares itself (``request.path_params``,
  ``request.query_params``, ``request.headers``) and authenticates with
  :func:`exchange.http.auth.principal`, as the ``Caller`` dependency would;
* the app (:class:`~exchange.http.app.ServiceApp`) matches a request against its
  direct routes first (:class:`DirectRoutes`: the route's own path pattern, its
  methods) and hands a match to the handler straight away. What the skipped
  layers did for it is done here: the request counted and timed in the app's
  metrics (same names, same labels), an exception answered by the app's own
  exception handlers (the bus's error format, the access log's refusals), an
  unexpected one logged and answered 500.

A request that matches no direct route goes through FastAPI as before, and a
direct route reached through FastAPI's router (an app built without the
dispatch) is answered by the same handler.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette._utils import get_route_path
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from exchange.http.errors import error_response
from exchange.http.metrics import HttpMetrics

log = logging.getLogger(__name__)

Handler = Callable[[Request], Awaitable[Response]]
Endpoint = TypeVar("Endpoint", bound=Callable[..., Any])
_HANDLER = "__direct_handler__"


def answered_by(handler: Handler) -> Callable[[Endpoint], Endpoint]:
    """Mark a documented endpoint as answered by ``handler(request)`` (see :class:`DirectRoute`)."""

    def mark(endpoint: Endpoint) -> Endpoint:
        setattr(endpoint, _HANDLER, handler)
        return endpoint

    return mark


class DirectRoute(APIRoute):
    """A route whose endpoint, if marked with :func:`answered_by`, is answered by its handler
    (FastAPI solves no parameters); any other endpoint is served as by :class:`APIRoute`."""

    @property
    def handler(self) -> Handler | None:
        """The handler that answers this route (None: FastAPI serves it as usual)."""
        return getattr(self.endpoint, _HANDLER, None)

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler = self.handler
        return handler if handler is not None else super().get_route_handler()


class DirectRoutes:
    """The direct routes of an app, matched and answered ahead of FastAPI (see the module).

    ``routes`` are matched in order, by their own path pattern and methods; the first
    that matches answers. Give only routes no earlier route of the app shadows.
    """

    def __init__(self, routes: Iterable[DirectRoute], metrics: HttpMetrics, service: str) -> None:
        self.routes = [
            (r, r.handler, frozenset(r.methods or ())) for r in routes if r.handler is not None
        ]
        self.metrics = metrics
        self.service = service
        self._labels: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def __bool__(self) -> bool:
        return bool(self.routes)

    def match(self, scope: Scope) -> tuple[DirectRoute, Handler, dict[str, Any]] | None:
        """The route, handler and path parameters of an HTTP request (None: no direct route)."""
        method = scope["method"]
        path = get_route_path(scope)
        for route, handler, methods in self.routes:
            if method not in methods:
                continue
            m = route.path_regex.match(path)
            if m is None:
                continue
            convertors = route.param_convertors
            params = {k: convertors[k].convert(v) for k, v in m.groupdict().items()}
            return route, handler, params
        return None

    async def answer(
        self,
        app: Any,
        found: tuple[DirectRoute, Handler, dict[str, Any]],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Answer a request ``match`` found, as the app's middleware and route would have."""
        started = time.perf_counter()
        route, handler, params = found
        scope["app"] = app
        scope["route"] = route
        scope["path_params"] = params
        request = Request(scope, receive)
        try:
            response = await handler(request)
        except Exception as exc:
            response = await _handled(app.exception_handlers, request, exc)
        status = response.status_code
        try:
            await response(scope, receive, send)
        finally:
            self._count(route.path, scope["method"], status, time.perf_counter() - started)

    def _count(self, template: str, method: str, status: int, seconds: float) -> None:
        """The request in the app's metrics, as :class:`~exchange.http.metrics.MetricsMiddleware`
        counts it (children of the labels looked up once)."""
        key = (template, method, status)
        children = self._labels.get(key)
        if children is None:
            m = self.metrics
            children = (
                m.requests.labels(self.service, template, method, str(status)),
                m.seconds.labels(self.service, template),
            )
            if len(self._labels) < 10_000:  # bounded: templates, methods and statuses
                self._labels[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if status == 401:
            self.metrics.auth_failures.labels(self.service).inc()


async def _handled(handlers: Mapping[Any, Any], request: Request, exc: Exception) -> Response:
    """The answer the app's exception handlers give ``exc`` (as Starlette picks them)."""
    handler = None
    if isinstance(exc, HTTPException):
        handler = handlers.get(exc.status_code)
    if handler is None:
        handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
    if handler is None or handler is handlers.get(Exception):
        # what Starlette's ServerErrorMiddleware would have let uvicorn log
        log.error("exception in %s %s", request.method, request.url.path, exc_info=exc)
    if handler is None:
        return error_response(500, 50001, "Error in the backend data store")
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        answer = await answer
    assert isinstance(answer, Response)
    return answer
