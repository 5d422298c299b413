"""The console's ASGI app: the shared HTTP stack, its pages, static files, security headers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from exchange.bus.connection import Connection
from exchange.console.accounts import AccountBook
from exchange.console.routes import (
    approvals,
    audit,
    catalog,
    common,
    grants,
    health,
    login,
    paths,
)
from exchange.console.service import ConsoleService, ConsoleSettings
from exchange.http.app import create_app
from exchange.http.auth import Gate
from exchange.http.metrics import HttpMetrics
from exchange.metrics import AuditMetrics

STATIC = Path(__file__).parent / "static"
#: scripts and styles from the console itself only (htmx and Chart.js are vendored)
HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]


class _NoBasicAuth:
    """People log in with a session, never HTTP basic: the API stack's gate lets no one in."""

    async def check(self, user: str, password: str) -> bool:
        return False


class SecurityHeaders:
    """Adds :data:`HEADERS` to every answer (plain ASGI, like the metrics middleware)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in have]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, sending if scope["type"] == "http" else send)


def console_app(
    bus: Connection,
    connect: Callable[[str], Connection],
    settings: ConsoleSettings,
    accounts: AccountBook,
    metrics: HttpMetrics | None = None,
) -> FastAPI:
    """The app; ``bus`` reads the control topics, ``connect`` gives each principal's connection."""
    metrics = metrics or HttpMetrics()
    # the departments' audit chains: entries written, unsigned tail (GovExchangeAuditTailUnsigned)
    svc = ConsoleService(bus, connect, settings, accounts, AuditMetrics(metrics.registry))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with svc:
            yield

    app = create_app(
        service="console",
        title="gov-exchange console 政务数据共享交换管理控制台",
        version="1",
        description="The web console of the sharing workflow: server-rendered pages.",
        routers=[
            login.router,
            catalog.router,
            paths.router,
            approvals.router,
            grants.router,
            audit.router,
            health.router,
        ],
        gate=Gate(_NoBasicAuth()),
        metrics=metrics,
        lifespan=lifespan,
    )
    common.install(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(SecurityHeaders)
    app.state.console = svc
    return app
