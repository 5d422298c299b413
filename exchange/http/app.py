"""The app factory every HTTP service of the bus starts from."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import Receive, Scope, Send

from exchange.http import errors
from exchange.http.auth import Gate
from exchange.http.direct import DirectRoute, DirectRoutes
from exchange.http.metrics import HttpMetrics, MetricsMiddleware, metrics_endpoint

#: FastAPI's own OpenTelemetry spans, metrics and logs, off: the bus exports its metrics to
#: Prometheus (:mod:`.metrics`), and looking for a configured provider costs every request
TELEMETRY_OFF: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}


class ServiceApp(FastAPI):
    """A FastAPI app that answers its direct routes (:mod:`.direct`) ahead of FastAPI's
    middleware and routing; every other request (and the lifespan) goes through FastAPI."""

    direct: DirectRoutes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        direct = self.direct
        if direct is not None and scope["type"] == "http":
            found = direct.match(scope)
            if found is not None:
                await direct.answer(self, found, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    *,
    service: str,
    title: str,
    version: str,
    description: str,
    routers: list[APIRouter],
    gate: Gate,
    metrics: HttpMetrics,
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
) -> ServiceApp:
    """A FastAPI app with the bus's error format, authentication gate, metrics and OpenAPI.

    ``/openapi.json`` is the API's description; ``/metrics`` is Prometheus'
    (unauthenticated, like the router's: expose it to Prometheus only). The
    interactive pages (``/docs``) are off: they load their scripts from a CDN.
    Routes of ``routers`` answered directly (:class:`~exchange.http.direct.DirectRoute`
    with a handler) are matched first, in the order given.
    """
    app = ServiceApp(
        title=title,
        version=version,
        description=description,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        default_response_class=errors.ApiJSONResponse,
        responses={
            401: {"model": errors.ErrorBody, "description": "missing or wrong credentials"},
            422: {"model": errors.ErrorBody, "description": "a request that cannot be read"},
            429: {
                "model": errors.ErrorBody,
                "description": "too many failed logins from this client: wait Retry-After seconds",
            },
        },
        telemetry=TELEMETRY_OFF,
    )
    app.state.gate = gate
    app.state.metrics = metrics
    errors.install(app)
    for router in routers:
        app.include_router(router)
    app.add_route(
        "/metrics",
        metrics_endpoint(metrics.registry, metrics.multiprocess_dir, metrics.on_scrape),
        include_in_schema=False,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, service=service)
    direct = DirectRoutes(
        (r for router in routers for r in router.routes if isinstance(r, DirectRoute)),
        metrics,
        service,
    )
    app.direct = direct or None
    return app
