"""Helpers for the gateway tests: a gateway served in this process, credentials, requests.

Not a test module. The gateway is the real app on uvicorn on a loopback port; requests
go through httpx over TCP, as a department system's would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from exchange.bus.connection import Connection
from exchange.gateway.app import gateway_app
from exchange.http import server
from exchange.http.auth import Gate, PasswordFiles

MASTER_SECRET = b"g" * 32
PASSWORDS = {
    "police": "pw-police",
    "hrss": "pw-hrss",
    "health": "pw-health",
    "civil_affairs": "pw-civil",
    "market": "pw-market",
    "auditor": "pw-auditor",
}


def write_passwords(directory: Path) -> Path:
    for user, password in PASSWORDS.items():
        (directory / f"{user}.password").write_text(password + "\n")
    return directory


def basic(user: str, password: str | None = None) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password or PASSWORDS[user]}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextlib.asynccontextmanager
async def running_gateway(
    bus: Connection, credentials: Path, store: Path
) -> AsyncIterator[tuple[str, Any]]:
    """(base URL, app) of a gateway serving until the block ends, once it is healthy."""
    app = gateway_app(bus, Gate(PasswordFiles(credentials)), store, MASTER_SECRET, partitions=1)
    async with server.running(app) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            deadline = time.monotonic() + 60
            while (await client.get("/health")).status_code != 200:
                assert time.monotonic() < deadline, (await client.get("/health")).text
                await asyncio.sleep(0.05)
        yield url, app


async def poll(check: Callable[[], Any], *, within: float = 10.0, every: float = 0.02) -> float:
    """Seconds until ``await check()`` is true; fails after ``within``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < within, "condition not met in time"
        await asyncio.sleep(every)
    return time.monotonic() - started
