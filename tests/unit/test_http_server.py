"""How the HTTP services are served: httptools with a bounded request head, on uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import sys

import pytest
import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from exchange.cli.common import run
from exchange.http import server


async def _echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(f"{len(request.url.path)} {len(request.headers.get('x-pad', ''))}")


APP = Starlette(routes=[Route("/{rest:path}", _echo)])


async def _ask(url: str, path: str, pad: int = 0) -> bytes:
    """A raw HTTP/1.1 request (a client may send what httpx would refuse); what came back."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    answer = b""
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Pad: {'p' * pad}\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        await writer.drain()
        while chunk := await asyncio.wait_for(reader.read(65536), 10):
            answer += chunk
    except ConnectionError:
        pass  # refused before all was read: the reset may come first
    finally:
        writer.close()
    return answer


def test_services_are_served_by_httptools_with_a_bounded_head() -> None:
    config = server.config(APP, "127.0.0.1", 0)
    config.load()
    assert config.http_protocol_class is server.BoundedHttpToolsProtocol


@pytest.mark.parametrize(
    ("path_len", "pad", "refused"),
    [
        (100, 0, False),
        (server.MAX_HEAD_BYTES - 500, 0, False),  # under the limit, all of it in the path
        (server.MAX_HEAD_BYTES + 1, 0, True),  # the request line alone is over
        (100, server.MAX_HEAD_BYTES, True),  # one header is over
        (1_000_000, 0, True),  # a megabyte: refused before it is all read
    ],
    ids=["small", "just-under", "long-path", "long-header", "megabyte"],
)
async def test_a_request_head_over_16_kib_is_refused_as_h11_refused_it(
    path_len: int, pad: int, refused: bool
) -> None:
    path = "/" + "a" * (path_len - 1)
    async with server.running(APP) as url:
        answer = await _ask(url, path, pad)
        if refused:  # 400 and the connection closed; a reset may swallow the 400
            assert answer == b"" or answer.startswith(b"HTTP/1.1 400 "), answer[:100]
            assert b"a" * 200 not in answer
        else:
            assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
            assert answer.endswith(f"{path_len} {pad}".encode())
        # and the server answers the next request as usual
        assert (await _ask(url, "/after")).startswith(b"HTTP/1.1 200 ")


def test_the_services_event_loop_is_uvloop() -> None:
    async def which() -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    assert isinstance(run(which(), loop_factory=server.event_loop), uvloop.Loop)
    assert not isinstance(run(which()), uvloop.Loop)  # other commands: asyncio's own


_FROZEN_PROBE = """
import asyncio, gc, sys
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from exchange.http import server

async def frozen(request):
    return PlainTextResponse(str(gc.get_freeze_count()))

app = Starlette(routes=[Route("/frozen", frozen)])
asyncio.run(server.serve(app, "127.0.0.1", int(sys.argv[1])))
"""


async def test_a_served_process_leaves_its_start_up_heap_out_of_collections() -> None:
    port = server.free_port()
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", _FROZEN_PROBE, str(port))
    try:
        answer = b""
        for _ in range(200):  # until it listens
            with contextlib.suppress(ConnectionRefusedError):
                answer = await _ask(f"http://127.0.0.1:{port}", "/frozen")
                break
            await asyncio.sleep(0.05)
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert int(answer.rpartition(b"\r\n\r\n")[2]) > 1000  # the modules, the app, ...
    finally:
        proc.terminate()
        await proc.wait()


async def test_a_server_inside_another_program_does_not_freeze_its_heap() -> None:
    before = gc.get_freeze_count()
    async with server.running(APP) as url:
        assert (await _ask(url, "/x")).startswith(b"HTTP/1.1 200 ")
    assert gc.get_freeze_count() == before
