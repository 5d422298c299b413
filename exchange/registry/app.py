"""The registry's ASGI app: the shared stack, the routes, the control follower."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from exchange.bus.connection import Connection
from exchange.http import access_audit
from exchange.http.access_audit import AccessAudit, AccessAuditMetrics
from exchange.http.app import create_app
from exchange.http.auth import Gate
from exchange.http.metrics import HttpMetrics
from exchange.registry import api
from exchange.registry.service import RegistryMetrics, RegistryService

DESCRIPTION = """\
A read-only Confluent Schema Registry over the bus's own schemas: every id on the
wire resolves here. Subjects follow the TopicNameStrategy:
`gov.src.<provider>.<resource>-value` (the catalog's versions of a resource),
`gov.dlv.<consumer>.<resource>-value` (a consumer's view). HTTP basic
authentication with the department's bus credentials; a department sees its own
views and the sources it provides or may discover.
"""


def registry_app(bus: Connection, gate: Gate, metrics: HttpMetrics | None = None) -> FastAPI:
    """The app; it follows the control topics of ``bus`` while it is served, and writes the
    requests it refuses to ``gov.audit`` (so its Kafka user needs Write there, as
    ``gov-router`` has)."""
    metrics = metrics or HttpMetrics()
    svc = RegistryService(bus, RegistryMetrics(metrics.registry))
    audit = AccessAudit(bus, service="registry", metrics=AccessAuditMetrics(metrics.registry))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with audit, svc:
            yield

    app = create_app(
        service="registry",
        title="gov-exchange schema registry",
        version="1",
        description=DESCRIPTION,
        routers=[api.router],
        gate=gate,
        metrics=metrics,
        lifespan=lifespan,
    )
    app.state.registry = svc
    access_audit.install(app, audit)
    return app
