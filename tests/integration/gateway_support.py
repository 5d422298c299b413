"""Helpers for the gateway tests: a gateway served in this process, credentials, requests.

Not a test module. The gateway is the real app on uvicorn on a loopback port (in this
process, or ``exchange gateway --workers N`` in processes of its own); requests go
through httpx over TCP, as a department system's would.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
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


@contextlib.contextmanager
def gateway_process(
    bus: Connection,
    credentials: Path,
    store: Path,
    state: Path,
    *,
    workers: int = 2,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """(base URL, process) of ``exchange gateway --workers N`` started as an operator starts
    it (``env`` added to its environment), once healthy; stopped (SIGTERM) when the block
    ends."""
    port = server.free_port()
    env = {
        **os.environ,
        **bus.environment(),
        "EXCHANGE_MASK_SECRET": MASTER_SECRET.decode(),
        "EXCHANGE_STATE_DIR": str(state),
        **(env or {}),
    }
    command = [sys.executable, "-m", "exchange", "gateway", "--port", str(port)]
    command += ["--credentials-dir", str(credentials), "--store", str(store)]
    command += ["--workers", str(workers), "--log-level", "WARNING"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while len(worker_pids(proc.pid)) < workers or not _healthy(url):
            if proc.poll() is not None:
                _out, err = proc.communicate()
                raise AssertionError(f"the gateway exited with {proc.returncode}: {err.decode()}")
            if time.monotonic() > deadline:
                proc.terminate()
                _out, err = proc.communicate(timeout=60)
                raise AssertionError(
                    f"the gateway did not become healthy in 90 s ({_health(url)}): {err.decode()}"
                )
            time.sleep(0.1)
        yield url, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=60)
        for pipe in (proc.stdout, proc.stderr):  # a test that killed it leaves them open
            if pipe is not None:
                pipe.close()


def _health(url: str) -> str:
    try:
        return httpx.get(f"{url}/health", timeout=2).text
    except httpx.HTTPError as exc:
        return f"/health: {exc!r}"


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def worker_pids(pid: int) -> list[int]:
    """The worker processes of the gateway supervisor ``pid``: its children that multiprocessing
    spawned (not its resource tracker), from /proc."""
    try:
        children = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []
    found = []
    for child in children:
        with contextlib.suppress(OSError):
            if b"--multiprocessing-fork" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
    return found


def broker_pids(bus: Connection) -> list[int]:
    """The processes listening on the bus's bootstrap ports (the embedded broker, or every
    node of a Kafka cluster), found in /proc: for a test that freezes the broker."""
    ports = {int(address.rpartition(":")[2]) for address in bus.bootstrap.split(",")}
    sockets = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                listening = fields[3] == "0A"
                if listening and int(fields[1].rpartition(":")[2], 16) in ports:
                    sockets.add(f"socket:[{fields[9]}]")
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) in sockets for fd in (proc / "fd").iterdir()):
                pids.add(int(proc.name))
    return sorted(pids)
