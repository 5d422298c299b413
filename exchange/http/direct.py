"""Routes documented like every other route, but answered by a plain handler of the request.

For each request to a route, FastAPI solves its parameters: path, query, headers,
cookies (parsed whether or not the route takes any) and dependencies, each through
pydantic. On the 2-core machine this costs about 0.15 ms of CPU per request
(measured with wrk: 0.46 ms per request for a route that only authenticates its
caller, 0.30 ms answered directly). A route a service answers thousands of times
a second (the gateway's lookup by key) can skip that work:

* the route is declared as usual on a router with ``route_class=DirectRoute``,
  its endpoint's signature is what the OpenAPI document shows;
* :func:`answered_by` names the handler that actually answers, ``handler(request)``:
  it reads the parameters the signature declares itself (``request.path_params``,
  ``request.query_params``, ``request.headers``) and authenticates with
  :func:`exchange.http.auth.principal`, as the ``Caller`` dependency would.

The app's middleware (errors in the bus's format, metrics) and exception
handlers apply to it as to any route.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.routing import APIRoute

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

    def get_route_handler(self) -> Callable[[Request], Any]:
        handler: Handler | None = getattr(self.endpoint, _HANDLER, None)
        return handler if handler is not None else super().get_route_handler()
