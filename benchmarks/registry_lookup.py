"""Lookups per second of ``GET /schemas/ids/{id}``, beside a plain dictionary behind the same stack.

Starts an embedded broker (or uses EXCHANGE_BOOTSTRAP_SERVERS), loads the sample
catalog and starts, each in its own process: ``exchange registry`` (the real
service, following the control topics) and a baseline app made by the same
factory (:func:`exchange.http.app.create_app`: same uvicorn, middleware, metrics,
error handling and HTTP basic check) whose one route answers from a dict. A load
generator in this process (raw HTTP/1.1 keep-alive, several connections) asks
each in turn for the catalog's schema ids, as the auditor; best of ``--rounds``.
A third load asks the registry the same with a wrong password: every answer is a
401 whose ``ACCESS_DENIED`` entry is queued for ``gov.audit`` (the throttle is
set out of reach for this run), so the figure shows what auditing refusals
costs; the entries written and dropped are read from the registry's /metrics.

    python benchmarks/registry_lookup.py [--seconds 5] [--connections 8] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from exchange.catalog.loader import load_catalog
from exchange.control import catalog_store
from exchange.dev.broker import given_or_embedded
from exchange.http.app import create_app
from exchange.http.auth import Caller, Gate, PasswordFiles
from exchange.http.errors import MEDIA_TYPE, HttpError
from exchange.http.metrics import HttpMetrics
from exchange.http.server import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = secrets.token_urlsafe(16)


def baseline_app(credentials: str, ids: dict[int, str]) -> Any:
    router = APIRouter()

    @router.get("/schemas/ids/{id}")
    async def schema_by_id(id: int, caller: Caller) -> Response:
        text = ids.get(id)
        if text is None:
            raise HttpError(404, 40403, "Schema not found")
        return Response(('{"schema":' + json.dumps(text) + "}").encode(), media_type=MEDIA_TYPE)

    return create_app(
        service="baseline",
        title="baseline",
        version="1",
        description="a dict",
        routers=[router],
        gate=Gate(PasswordFiles(Path(credentials))),
        metrics=HttpMetrics(),
    )


def serve_baseline(port: int, credentials: str, ids_file: str) -> None:
    from exchange.http.server import serve

    ids = {int(k): v for k, v in json.loads(Path(ids_file).read_text()).items()}
    asyncio.run(serve(baseline_app(credentials, ids), "127.0.0.1", port))


async def wait_up(port: int, within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /health HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            await writer.drain()
            answer = await reader.read()
            writer.close()
            if b" 200 " in answer.split(b"\r\n", 1)[0] or b" 404 " in answer[:20]:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"nothing answered on port {port}")


async def load(
    port: int, ids: list[int], seconds: float, connections: int, password: str, expect: bytes
) -> tuple[int, int]:
    """(answers with status ``expect``, others) in ``seconds`` over ``connections`` connections."""
    token = base64.b64encode(f"auditor:{password}".encode()).decode()
    requests = [
        f"GET /schemas/ids/{sid} HTTP/1.1\r\nHost: bench\r\nAuthorization: Basic {token}\r\n"
        "\r\n".encode()
        for sid in ids
    ]
    stop = time.monotonic() + seconds
    counts = [0, 0]

    async def one(n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = n
        while time.monotonic() < stop:
            writer.write(requests[i % len(requests)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            counts[0 if head.startswith(b"HTTP/1.1 " + expect) else 1] += 1
        writer.close()

    await asyncio.gather(*(one(n) for n in range(connections)))
    return counts[0], counts[1]


async def measure(
    ports: dict[str, int], ids: list[int], seconds: float, connections: int, rounds: int
) -> dict[str, float]:
    for port in ports.values():
        await wait_up(port)
    targets = [(name, port, PASSWORD, b"200") for name, port in ports.items()]
    targets.append(("refused", ports["registry"], "wrong-" + PASSWORD, b"401"))
    best = {name: 0.0 for name, *_ in targets}
    for _ in range(rounds):
        for name, port, password, expect in targets:
            ok, failed = await load(port, ids, seconds, connections, password, expect)
            assert failed == 0, f"{name}: {failed} lookups not answered {expect.decode()}"
            best[name] = max(best[name], ok / seconds)
    return best


async def audited(port: int, within: float = 30.0) -> dict[str, float]:
    """The registry's counts of refusals written to (and dropped from) the access log, once
    everything queued is written (the counts stop moving)."""
    last: dict[str, float] = {}
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        text = (await reader.read()).decode()
        writer.close()
        now = {
            name: float(line.split()[-1])
            for line in text.splitlines()
            for name in ("refusals_audited_total", "refusals_not_audited_total")
            if line.startswith(f"gov_exchange_http_{name} ")
        }
        if now == last:
            return now
        last = now
        await asyncio.sleep(1.0)
    return last


def main() -> None:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    bus, broker = given_or_embedded(os.environ.get("EXCHANGE_BOOTSTRAP_SERVERS"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        catalog = load_catalog(ROOT / "schemas")
        asyncio.run(
            catalog_store.load(bus, catalog, actor="bench", unsigned_override="benchmark catalog")
        )
        ids = {
            r.schema_id: json.dumps(r.schema_, sort_keys=True) for r in catalog.resources.values()
        }
        tmp = Path(tempfile.mkdtemp(prefix="registry-bench-"))
        (tmp / "auditor.password").write_text(PASSWORD + "\n")
        (tmp / "ids.json").write_text(json.dumps(ids))
        ports = {"baseline": free_port(), "registry": free_port()}
        env = {**os.environ, **bus.environment(), "EXCHANGE_LOG_LEVEL": "WARNING"}
        env["EXCHANGE_HTTP_LOGIN_FAILURES"] = str(10**9)  # the refused load is never throttled
        serve_registry = [sys.executable, "-m", "exchange", "registry"]
        serve_registry += ["--bootstrap-servers", bus.bootstrap, "--port", str(ports["registry"])]
        serve_registry += ["--credentials-dir", str(tmp)]
        procs.append(subprocess.Popen(serve_registry, env=env))
        serve_base = [sys.executable, __file__, "--serve-baseline", str(ports["baseline"])]
        serve_base += [str(tmp), str(tmp / "ids.json")]
        procs.append(subprocess.Popen(serve_base, env=env))
        best = asyncio.run(measure(ports, list(ids), args.seconds, args.connections, args.rounds))
        ratio = best["registry"] / best["baseline"]
        print(f"GET /schemas/ids/{{id}}: {best['registry']:,.0f} lookups/s")
        print(f"baseline (dict, same stack): {best['baseline']:,.0f} lookups/s")
        print(f"ratio: {ratio:.2f} ({args.connections} connections, best of {args.rounds})")
        log = asyncio.run(audited(ports["registry"]))
        print(
            f"refused (wrong password, each audited): {best['refused']:,.0f} lookups/s, "
            f"{best['refused'] / best['registry']:.2f} of the allowed; "
            f"{log.get('refusals_audited_total', 0):,.0f} ACCESS_DENIED entries written, "
            f"{log.get('refusals_not_audited_total', 0):,.0f} dropped"
        )
        if args.json:
            args.json.write_text(json.dumps({**best, "ratio": ratio, "audit": log}))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--serve-baseline":
        serve_baseline(int(sys.argv[2]), sys.argv[3], sys.argv[4])
    else:
        main()
