"""``exchange router``: run the permission manager and router."""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from exchange import heap
from exchange.cli.common import BootstrapOption, connection, guarded, run, settings
from exchange.cli.serving import (
    ClientLogLevelOption,
    LogLevelOption,
    MetricsHostOption,
    MetricsPortOption,
    serve_metrics,
    setup_logging,
)
from exchange.metrics import RouterMetrics
from exchange.router import mask_secret
from exchange.router.loop import Router


def router(
    bootstrap_servers: BootstrapOption = None,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = None,
    log_level: LogLevelOption = None,
    client_log_level: ClientLogLevelOption = None,
    group: Annotated[
        str | None, typer.Option(help="Consumer group shared by all router instances.")
    ] = None,
    session_timeout_ms: Annotated[
        int | None,
        typer.Option(
            min=1_000,
            max=300_000,
            help="Group session timeout: a router silent this long loses its partitions to "
            "the others. Default 10,000 (EXCHANGE_ROUTER_SESSION_TIMEOUT_MS); real Kafka "
            "refuses less than 6,000, and the embedded broker holds each join half of it.",
        ),
    ] = None,
) -> None:
    """Route every source record to every entitled consumer, as its own view.

    Follows catalog and grant changes live. Run several instances with the
    same --group to share the work. Stops cleanly on Ctrl-C or SIGTERM.

    Needs EXCHANGE_MASK_SECRET or EXCHANGE_MASK_SECRET_FILE (at least 32 random
    characters, the same on every router of the bus) except on the embedded development broker, where a random
    one is made per bus.
    """
    setup_logging(log_level, client_log_level)
    s = settings()
    bus = guarded(connection)(bootstrap_servers)
    configured = guarded(s.mask_secret_value)()
    secret = guarded(mask_secret.resolve)(configured, bus, s.state_dir)
    metrics = RouterMetrics()
    serve_metrics(metrics.registry, metrics_port, metrics_host)

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        r = Router(
            bus,
            group=group or s.router_group,
            master_secret=secret.value,
            metrics=metrics,
            session_timeout_ms=session_timeout_ms or s.router_session_timeout_ms,
            trace_key=(
                s.audit_trace_key.get_secret_value().encode() if s.audit_trace_key else None
            ),
            backfill=s.router_backfill,
            backfill_chunk=s.router_backfill_chunk,
            quality_interval_s=s.router_quality_check_s,
            # views made after start-up (grants approved while it runs): frozen once settled
            refreezer=heap.Refreezer(),
        )
        if s.audit_trace_key is None:
            typer.secho(
                "note: EXCHANGE_AUDIT_TRACE_KEY is not set: the record-key hashes of delivery "
                "entries are unkeyed, so a reader of gov.audit can test a guessed key",
                fg=typer.colors.YELLOW,
                err=True,
            )
        if secret.origin != "EXCHANGE_MASK_SECRET":
            typer.secho(f"note: {secret.origin}", fg=typer.colors.YELLOW, err=True)
        await r.start()
        heap.freeze()  # catalog, grants and views: out of every later full collection
        typer.echo(
            f"router {r.instance} running on {bus} (group {r.group}; mask secret fingerprint "
            f"{secret.fingerprint}); Ctrl-C stops it"
        )
        try:
            await r.run(stop)
        finally:
            await r.stop()
        typer.echo(f"router stopped after routing {r.routed} records")

    run(go())
