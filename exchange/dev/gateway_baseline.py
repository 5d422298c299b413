"""The gateway benchmark's baseline: the same store behind the same HTTP stack, no policy, no audit.

``python -m exchange.dev.gateway_baseline --store FILE --port P --credentials-dir DIR
--catalog DIR [--reuse-port]`` serves ``GET /v1/resources/<resource>/records/<key>``: authenticated
like the gateway (HTTP basic against the password files), the record read from the
same SQLite store, decoded and answered whole as JSON. What the gateway adds to this
(policy, masks, row filter, quota, the purpose check and an acknowledged audit entry
per request) is what the benchmark's ratio measures. With ``--reuse-port`` several
baseline processes listen on one port (``SO_REUSEPORT``, as the gateway's workers do),
so a gateway of N workers is compared with a baseline of N processes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from exchange.avro import schema as avro
from exchange.avro import wire
from exchange.bus import topics
from exchange.catalog.loader import load_catalog
from exchange.gateway.api import RecordJSONResponse
from exchange.gateway.store import LatestStore
from exchange.http import server
from exchange.http.app import create_app
from exchange.http.auth import Caller, Gate, PasswordFiles, principal
from exchange.http.direct import DirectRoute, answered_by
from exchange.http.metrics import HttpMetrics


def baseline_app(store_path: Path | None, credentials: Path, catalog_dir: Path) -> object:
    """The baseline; with no ``store_path``, the stack alone (authenticated, answers ``{}``)."""
    catalog = load_catalog(catalog_dir)
    store = LatestStore(store_path, reader=True) if store_path is not None else None
    parsed = {r.id: avro.parse(r.schema_) for r in catalog.resources.values()}
    source = {r.id: topics.source(r.provider, r.id) for r in catalog.resources.values()}
    router = APIRouter(route_class=DirectRoute)  # answered as the gateway's lookup is

    async def record(request: Request) -> Response:
        await principal(request)
        resource, key = request.path_params["resource"], request.path_params["key"]
        if store is None:  # the HTTP stack and authentication alone
            return JSONResponse({"resource": resource, "record": {}})
        framed = store.get(source[resource], key.encode()) if resource in source else None
        if framed is None:
            return JSONResponse({"error_code": 40401, "message": "not found"}, 404)
        _sid, body = wire.unframe(framed)
        # the gateway's JSON answer (RecordJSONResponse: to_jsonable's conversions in one pass)
        return RecordJSONResponse(
            {"resource": resource, "record": wire.decode(parsed[resource], body)}
        )

    @router.get("/v1/resources/{resource}/records/{key}")
    @answered_by(record)
    async def record_route(resource: str, key: str, caller: Caller) -> JSONResponse:
        raise AssertionError("answered by record")

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "pid": os.getpid()})

    router.add_api_route("/health", health, methods=["GET"], include_in_schema=False)
    return create_app(
        service="baseline",
        title="gateway baseline",
        version="1",
        description="the store behind the HTTP stack, without policy or audit",
        routers=[router],
        gate=Gate(PasswordFiles(credentials)),
        metrics=HttpMetrics(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--store", type=Path, help="the gateway's store; without it, the HTTP stack alone"
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--credentials-dir", type=Path, required=True)
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT: run several on one port, as the gateway's workers",
    )
    args = parser.parse_args()
    app = baseline_app(args.store, args.credentials_dir, args.catalog)
    host = "127.0.0.1"
    # listened on once started (by uvicorn), as the gateway's workers
    sock = server.reuse_port_socket(host, args.port, listen=False) if args.reuse_port else None
    with asyncio.Runner(loop_factory=server.event_loop) as runner:  # as the gateway's
        runner.run(server.serve(app, host, args.port, sock=sock))


if __name__ == "__main__":
    main()
