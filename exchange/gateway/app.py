"""The gateway's ASGI app: the shared HTTP stack, the routes, the service in its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from exchange.bus.connection import Connection
from exchange.gateway import api
from exchange.gateway.service import GatewayMetrics, GatewayService
from exchange.http.app import create_app
from exchange.http.auth import Gate
from exchange.http.metrics import HttpMetrics
from exchange.http.signed import SignedRequests

DESCRIPTION = """\
Requests by key (接口调用) and verifications (核验) between departments. A caller
authenticates with its department's bus credentials (HTTP basic), states a purpose of
use (用途), and gets its own view of the latest record: the fields, masks and row filter
of its grant, as the stream would deliver them. Every request is audited before it is
answered. `GET /v1/openapi.json` describes, per caller, the resources it may ask.
"""


def gateway_app(
    bus: Connection,
    gate: Gate,
    store_path: Path,
    master_secret: bytes,
    *,
    metrics: HttpMetrics | None = None,
    partitions: int | None = None,
    materialise: bool = True,
    quota_path: Path | None = None,
) -> FastAPI:
    """The app; its service follows the control and source topics of ``bus`` while served.

    ``materialise=False``: another process keeps the store at ``store_path`` up to date
    (a worker of :mod:`exchange.gateway.workers`). ``quota_path``: the quota table shared
    with the other workers (None: quotas counted in this process alone).
    """
    metrics = metrics or HttpMetrics()
    svc = GatewayService(
        bus,
        store_path,
        master_secret,
        GatewayMetrics(metrics.registry),
        partitions=partitions,
        materialise=materialise,
        quota_path=quota_path,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with svc:
            yield

    app = create_app(
        service="gateway",
        title="gov-exchange query gateway",
        version="1",
        description=DESCRIPTION,
        routers=[api.router],
        gate=gate,
        metrics=metrics,
        lifespan=lifespan,
    )
    app.state.gateway = svc
    metrics.on_scrape.append(svc.store_gauges)
    if gate.signed is None:  # requests signed with the keys of the catalog in force
        gate.signed = SignedRequests(svc.public_key)
    return app
