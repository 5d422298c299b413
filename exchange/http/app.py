"""The app factory every HTTP service of the bus starts from."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from fastapi import APIRouter, FastAPI

from exchange.http import errors
from exchange.http.auth import Gate
from exchange.http.metrics import HttpMetrics, MetricsMiddleware, metrics_endpoint


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
) -> FastAPI:
    """A FastAPI app with the bus's error format, authentication gate, metrics and OpenAPI.

    ``/openapi.json`` is the API's description; ``/metrics`` is Prometheus'
    (unauthenticated, like the router's: expose it to Prometheus only). The
    interactive pages (``/docs``) are off: they load their scripts from a CDN.
    """
    app = FastAPI(
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
    )
    app.state.gate = gate
    app.state.metrics = metrics
    errors.install(app)
    for router in routers:
        app.include_router(router)
    app.add_route(
        "/metrics",
        metrics_endpoint(metrics.registry, metrics.multiprocess_dir),
        include_in_schema=False,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics, service=service)
    return app
