"""``exchange registry``: the Schema Registry–compatible API over the bus's schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.common import BootstrapOption, connection, fail, guarded, run, settings
from exchange.cli.serving import ClientLogLevelOption, LogLevelOption, setup_logging


class _NoPasswords:
    """No way to check a password: only anonymous requests (if allowed) get in."""

    async def check(self, user: str, password: str) -> bool:
        return False


def registry(
    bootstrap_servers: BootstrapOption = None,
    port: Annotated[
        int,
        typer.Option(min=1, max=65535, envvar="EXCHANGE_REGISTRY_PORT", help="Port to listen on."),
    ] = 8081,
    host: Annotated[
        str,
        typer.Option(
            envvar="EXCHANGE_REGISTRY_HOST",
            help="Address to listen on: 127.0.0.1 (this machine only) by default; 0.0.0.0 for "
            "every interface, behind TLS termination (credentials travel in HTTP basic).",
        ),
    ] = "127.0.0.1",
    credentials_dir: Annotated[
        Path | None,
        typer.Option(
            envvar="EXCHANGE_REGISTRY_CREDENTIALS_DIR",
            help="Check passwords against the files 'exchange acls --apply' wrote "
            "(<dir>/<user>.password) instead of a login to the broker: for a broker without "
            "users (the embedded one). Default: a SCRAM login to the broker as the user.",
        ),
    ] = None,
    anonymous: Annotated[
        str | None,
        typer.Option(
            envvar="EXCHANGE_REGISTRY_ANONYMOUS",
            help="Let requests without credentials in, seeing what this principal sees "
            "(a department, or auditor for everything). Default: credentials required.",
        ),
    ] = None,
    log_level: LogLevelOption = None,
    client_log_level: ClientLogLevelOption = None,
) -> None:
    """Serve a read-only Confluent Schema Registry API: any Kafka client decodes the bus.

    Follows the catalog, schemas and grants live. Subjects gov.src.<provider>.<resource>-value
    and gov.dlv.<consumer>.<resource>-value; /metrics, /health and /openapi.json beside them.
    Run several instances behind a load balancer if needed: they hold no state of their own.
    Refused requests (wrong credentials, a hidden subject or schema id) are written to the
    access log, gov.audit; a client with EXCHANGE_HTTP_LOGIN_FAILURES failed logins within
    EXCHANGE_HTTP_LOGIN_WINDOW_S seconds is answered 429 for EXCHANGE_HTTP_LOGIN_BLOCK_S.
    Stops cleanly on Ctrl-C or SIGTERM.
    """
    setup_logging(log_level, client_log_level)
    bus = guarded(connection)(bootstrap_servers)

    from exchange.http import auth, server
    from exchange.http.throttle import LoginThrottle
    from exchange.registry.app import registry_app

    checker: auth.Authenticator
    if credentials_dir is not None:
        if not credentials_dir.is_dir():
            raise fail(f"--credentials-dir {credentials_dir}: not a directory")
        checker = auth.PasswordFiles(credentials_dir)
    elif bus.sasl:
        checker = auth.CachedAuthenticator(auth.BrokerLogin(bus))
    elif anonymous is not None:
        checker = _NoPasswords()
    else:
        raise fail(
            f"the broker at {bus.bootstrap} has no users to check passwords against: give "
            "--credentials-dir DIR (the files 'exchange acls --apply' writes), or --anonymous "
            "PRINCIPAL to let requests in without credentials"
        )
    opts = settings()
    throttle = LoginThrottle(
        max_failures=opts.http_login_failures,
        window_s=opts.http_login_window_s,
        block_s=opts.http_login_block_s,
    )
    app = registry_app(bus, auth.Gate(checker, anonymous=anonymous, throttle=throttle))
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"schema registry on http://{shown}:{port} following {bus}; Ctrl-C stops it")
    run(server.serve(app, host, port), loop_factory=server.event_loop)
