"""Serving an app with uvicorn: from the command line, and in the background for tests."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import uvicorn


def config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    # uvicorn's own log config would replace the bus's logging set-up: keep ours
    return uvicorn.Config(app, host=host, port=port, log_config=None, access_log=False, **options)


async def serve(app: Any, host: str, port: int, **options: Any) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (uvicorn handles both and shuts down cleanly)."""
    await uvicorn.Server(config(app, host, port, **options)).serve()


class _QuietServer(uvicorn.Server):
    """A server that leaves the process's signal handlers alone (it runs inside another program)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def running(app: Any, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` in this event loop on a free port (given none); yields its base URL."""
    port = port or free_port(host)
    server = _QuietServer(config(app, host, port))
    task = asyncio.create_task(server.serve(), name=f"http-{port}")
    try:
        while not server.started:
            if task.done():
                task.result()  # raises why it did not start
                raise RuntimeError(f"the HTTP server on {host}:{port} stopped at start")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
