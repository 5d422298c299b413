"""``exchange gateway``: requests by key and verifications (接口调用, 核验) over HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import BootstrapOption, connection, fail, guarded, run, settings
from exchange.cli.serving import ClientLogLevelOption, LogLevelOption, setup_logging


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
    checker: auth.Authenticator
    if credentials_dir is not None:
        if not credentials_dir.is_dir():
            raise fail(f"--credentials-dir {credentials_dir}: not a directory")
        checker = auth.PasswordFiles(credentials_dir)
    elif bus.sasl:
        checker = auth.CachedAuthenticator(auth.BrokerLogin(bus))
    else:
        raise fail(
            f"the broker at {bus.bootstrap} has no users to check passwords against: give "
            "--credentials-dir DIR (the files 'exchange acls --apply' writes)"
        )
    path = store or s.state_dir / "gateway" / (
        re.sub(r"[^A-Za-z0-9.-]", "_", bus.bootstrap) + ".sqlite"
    )
    app = gateway_app(bus, auth.Gate(checker), path, secret.value, partitions=s.partitions)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"gateway on http://{shown}:{port} following {bus}; store {path}; Ctrl-C stops it")
    run(server.serve(app, host, port), loop_factory=server.event_loop)
