"""Serving an app with uvicorn: from the command line, and in the background for tests.

uvicorn runs with its fast parts (``uvicorn[standard]``): the HTTP/1.1 parser is
httptools (llhttp, Node.js's parser, in C) rather than the pure-Python h11, and the
command-line services run on uvloop's event loop (libuv) rather than asyncio's
own (:func:`event_loop`; pass it to :func:`exchange.cli.common.run`). A request
head is limited to :data:`MAX_HEAD_BYTES` as h11 limits it (httptools has no limit
of its own).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httptools
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from exchange import heap

#: the longest request head (request line and headers) read: h11's default, 16 KiB
MAX_HEAD_BYTES = 16 * 1024


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request head over :data:`MAX_HEAD_BYTES`.

    The parser hands the request line and headers over piece by piece as they
    arrive; once they add up to more than the limit, the request is refused as
    h11 refuses it: 400 and the connection closed, before the rest is read.
    """

    _head_bytes = 0

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def _count(self, n: int) -> None:
        self._head_bytes += n
        if self._head_bytes > MAX_HEAD_BYTES:
            raise httptools.HttpParserError(f"request head over {MAX_HEAD_BYTES} bytes")

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)


def event_loop() -> asyncio.AbstractEventLoop:
    """A new uvloop event loop: what the HTTP services run on."""
    return uvloop.new_event_loop()


def config(app: Any, host: str, port: int, **options: Any) -> uvicorn.Config:
    # uvicorn's own log config would replace the bus's logging set-up: keep ours
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        http=BoundedHttpToolsProtocol,
        **options,
    )


class Server(uvicorn.Server):
    """uvicorn's server; once the app has started, what it holds is left out of garbage collection.

    A service starts by loading what it serves from (the catalog, the grant book, compiled
    views: about 100,000 objects in the gateway), then creates short-lived objects per
    request. Python's full collections walked the whole start-up heap: in the gateway
    under wrk, a pause of up to 125 ms every few seconds, which was its p99 latency.
    ``gc.freeze()`` after start-up moves those objects to a generation no collection
    scans (what the Python documentation advises for long-lived start-up state); objects
    made later are collected as usual. The cost: a cycle among start-up objects that
    becomes garbage later (a replaced catalog's) is not freed; one per catalog change.
    """

    #: False where the server runs inside another program (:func:`running`): its heap is not ours
    freeze_heap = True

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.freeze_heap:
            heap.freeze()


async def serve(
    app: Any, host: str, port: int, *, sock: socket.socket | None = None, **options: Any
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM (uvicorn handles both and shuts down cleanly);
    on ``sock`` if given (then ``host`` and ``port`` only name it)."""
    await Server(config(app, host, port, **options)).serve(sockets=[sock] if sock else None)


def reuse_port_socket(
    host: str, port: int, backlog: int = 2048, *, listen: bool = True
) -> socket.socket:
    """A listening TCP socket on ``host:port`` with ``SO_REUSEPORT``: several processes each
    bind one on the same port, and the kernel spreads new connections across them.
    ``listen=False``: bound only; it takes no connections until listened on (uvicorn does,
    once its app has started)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if listen:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _QuietServer(Server):
    """A server that leaves the process's signal handlers and its heap alone (it runs inside
    another program)."""

    freeze_heap = False

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
