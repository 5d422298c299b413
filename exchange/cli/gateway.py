"""``exchange gateway``: requests by key and verifications (接口调用, 核验) over HTTP."""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from exchange.cli.common import BootstrapOption, connection, fail, guarded, run, settings
from exchange.cli.serving import ClientLogLevelOption, LogLevelOption, setup_logging

if TYPE_CHECKING:
    from exchange.bus.connection import Connection
    from exchange.http.auth import Authenticator


def gateway(
    bootstrap_servers: BootstrapOption = None,
    port: Annotated[
        int,
        typer.Option(min=1, max=65535, envvar="EXCHANGE_GATEWAY_PORT", help="Port to listen on."),
    ] = 8082,
    host: Annotated[
        str,
        typer.Option(
            envvar="EXCHANGE_GATEWAY_HOST",
            help="Address to listen on: 127.0.0.1 (this machine only) by default; 0.0.0.0 for "
            "every interface, behind TLS termination (credentials travel in HTTP basic).",
        ),
    ] = "127.0.0.1",
    credentials_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="EXCHANGE_GATEWAY_CREDENTIALS_DIR",
            help="Check passwords against the files 'exchange acls --apply' wrote "
            "(<dir>/<user>.password) instead of a login to the broker: for a broker without "
            "users (the embedded one). Default: a SCRAM login to the broker as the user.",
        ),
    ] = None,
    store: Annotated[
        Path | None,
        typer.Option(
            envvar="EXCHANGE_GATEWAY_STORE",
            help="The latest-state store (an SQLite file, made if missing; rebuilt from the "
            "source topics if it is damaged). Default: <state dir>/gateway/<bus>.sqlite.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            envvar="EXCHANGE_GATEWAY_WORKERS",
            help="Worker processes answering requests (one Python process uses at most one "
            "core). With more than one, a supervisor keeps the store and restarts a worker "
            "that dies; quotas are counted across all workers. Default: one per core.",
            show_default=False,
        ),
    ] = None,
    log_level: LogLevelOption = None,
    client_log_level: ClientLogLevelOption = None,
) -> None:
    """Serve requests by key (接口调用) and verifications (核验), each caller its own view.

    GET /v1/resources/<resource>/records/<key> and POST /v1/resources/<resource>/verify, with
    a purpose of use (X-Purpose or ?purpose=); GET /v1/openapi.json describes what the caller
    may ask. Every request is audited before it is answered. /metrics and /health beside them.
    Stops cleanly on Ctrl-C or SIGTERM.
    """
    setup_logging(log_level, client_log_level)
    bus = guarded(connection)(bootstrap_servers)
    s = settings()

    from exchange.gateway.app import gateway_app
    from exchange.http import auth, server
    from exchange.router import mask_secret

    # the same master secret as the routers: a hash mask answers what the stream delivers
    configured = guarded(s.mask_secret_value)()  # EXCHANGE_MASK_SECRET_FILE or _SECRET
    secret = guarded(mask_secret.resolve)(configured, bus, s.state_dir)
    checker = _checker(bus, credentials_dir)  # checked here, made again in each worker
    path = store or s.state_dir / "gateway" / (
        re.sub(r"[^A-Za-z0-9.-]", "_", bus.bootstrap) + ".sqlite"
    )
    from exchange.gateway import workers as pool

    n = workers or pool.default_workers()
    shown = f"[{host}]" if ":" in host else host
    typer.echo(
        f"gateway on http://{shown}:{port} ({n} worker{'s' if n > 1 else ''}) following {bus}; "
        f"store {path}; Ctrl-C stops it"
    )
    if n > 1:
        spec = pool.WorkerSpec(
            bus,
            host,
            port,
            path,
            secret.value,
            credentials_dir,
            s.partitions,
            metrics_dir=Path(),  # the supervisor's folder, made below
            setup=functools.partial(_worker_setup, log_level, client_log_level),
        )
        with pool.metrics_folder() as folder:  # GatewayStopped: its reason, exit status 2
            run(pool.Supervisor(dataclasses.replace(spec, metrics_dir=folder), n).run())
        return
    app = gateway_app(
        bus,
        auth.Gate(checker),
        path,
        secret.value,
        partitions=s.partitions,
        quota_path=pool.quota_path(path),
    )
    run(server.serve(app, host, port), loop_factory=server.event_loop)


def _checker(bus: Connection, credentials_dir: Path | None) -> Authenticator:
    from exchange.http import auth

    if credentials_dir is not None:
        if not credentials_dir.is_dir():
            raise fail(f"--credentials-dir {credentials_dir}: not a directory")
        return auth.PasswordFiles(credentials_dir)
    if bus.sasl:
        return auth.CachedAuthenticator(auth.BrokerLogin(bus))
    raise fail(
        f"the broker at {bus.bootstrap} has no users to check passwords against: give "
        "--credentials-dir DIR (the files 'exchange acls --apply' writes)"
    )


def _worker_setup(log_level: str | None, client_log_level: str | None) -> None:
    """Run first in each worker process: logging and the audit head signer, as here."""
    from exchange.audit import heads

    setup_logging(log_level, client_log_level)
    heads.install(heads.from_settings(settings()))
