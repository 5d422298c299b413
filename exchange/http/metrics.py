"""Request metrics of an HTTP service, and its ``/metrics`` endpoint.

Labels are bounded: the route's template (``/schemas/ids/{id}``), never the
path asked for, so a caller cannot grow the label set.

A service served by several worker processes (the gateway's ``--workers``) runs
prometheus_client in its multiprocess mode: every process writes its values to
files in one folder (``PROMETHEUS_MULTIPROC_DIR``, set before the workers start,
since prometheus_client reads it when imported), and ``/metrics``, whichever
worker answers it, adds up the counters and histograms of all of them, dead
workers' included (totals never go backwards when a worker is restarted).
Gauges are reported per process (a ``pid`` label).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HttpMetrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        prefix: str = "gov_exchange",
        *,
        multiprocess_dir: Path | None = None,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        #: the folder every worker of the service writes its values to (None: one process)
        self.multiprocess_dir = multiprocess_dir
        #: run before each scrape of ``/metrics``: gauges read from where they live (a store)
        self.on_scrape: list[Callable[[], Awaitable[None]]] = []
        r = self.registry
        self.requests = Counter(
            f"{prefix}_http_requests",
            "HTTP requests answered, per service, route template, method and status",
            ["service", "route", "method", "status"],
            registry=r,
        )
        self.seconds = Histogram(
            f"{prefix}_http_request_seconds",
            "Time to answer an HTTP request, per service and route template",
            ["service", "route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=r,
        )
        self.auth_failures = Counter(
            f"{prefix}_http_auth_failures",
            "Requests refused for missing or wrong credentials, per service",
            ["service"],
            registry=r,
        )


class MetricsMiddleware:
    """Counts and times every request (plain ASGI: no per-request task, unlike BaseHTTPMiddleware)."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, service: str) -> None:
        self.app, self.metrics, self.service = app, metrics, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "(unrouted)"
            self.metrics.requests.labels(
                self.service, template, scope.get("method", ""), str(status)
            ).inc()
            self.metrics.seconds.labels(self.service, template).observe(
                time.perf_counter() - started
            )
            if status == 401:
                self.metrics.auth_failures.labels(self.service).inc()


def metrics_endpoint(
    registry: CollectorRegistry,
    multiprocess_dir: Path | None = None,
    on_scrape: Sequence[Callable[[], Awaitable[None]]] = (),
) -> Any:
    """A route handler serving ``registry`` in Prometheus' text format; with
    ``multiprocess_dir``, what every worker process wrote there, added up. Each of
    ``on_scrape`` (read at every scrape: it may grow after) is awaited first."""

    async def metrics(request: Request) -> Response:
        for refresh in on_scrape:
            await refresh()
        if multiprocess_dir is None:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
        combined = CollectorRegistry()
        multiprocess.MultiProcessCollector(combined, path=str(multiprocess_dir))  # type: ignore[no-untyped-call]
        return Response(generate_latest(combined), media_type=CONTENT_TYPE_LATEST)

    return metrics
