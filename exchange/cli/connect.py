"""``exchange connect``: run or check the connectors of a config file (databases, files)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from connectors.config import Loaded, load
from connectors.errors import ConnectorConfigErrors
from exchange.cli.common import BootstrapOption, connection, fail, guarded, run
from exchange.cli.serving import (
    ClientLogLevelOption,
    LogLevelOption,
    MetricsHostOption,
    MetricsPortOption,
    serve_metrics,
    setup_logging,
)
from exchange.errors import ExchangeError

if TYPE_CHECKING:
    from connectors.display import StatusLine

app = typer.Typer(
    help="Connectors: department databases (PostgreSQL, MySQL/MariaDB) and files "
    "(JSON Lines, CSV) in and out of the bus, from a YAML config file "
    "(examples in deploy/connectors/).",
    no_args_is_help=True,
)

ConfigArg = Annotated[Path, typer.Argument(help="Connector config file (YAML).")]
OnlyOption = Annotated[
    list[str] | None,
    typer.Option("--only", help="Only the connector of this name (repeatable)."),
]


def _load(config: Path) -> Loaded:
    try:
        return load(config)
    except ConnectorConfigErrors as exc:
        raise fail(str(exc)) from None


@app.command()
def check(
    config: ConfigArg,
    bootstrap_servers: BootstrapOption = None,
    only: OnlyOption = None,
) -> None:
    """Check a config file against the catalog in force and the databases; moves no data.

    Checks every connector: the resource and the department's right to it,
    every column of the mapping (exists, type fits the Avro field, no NULL
    where the field is not nullable), the incremental columns and the saved
    position, the sink table, the files. Exit code 2 on any problem.
    """
    from connectors import runner

    loaded = _load(config)
    bus = guarded(connection)(bootstrap_servers)

    async def go() -> tuple[list[str], list[ExchangeError]]:
        connectors = await runner.build(loaded, bus, environ=os.environ, only=only)
        return await runner.check(connectors)

    lines, errors = run(go())
    for line in lines:
        typer.echo(line)
    if errors:
        for exc in errors:
            typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    typer.echo(f"config OK: {len(only or loaded.connectors)} connector(s)")


def _output() -> tuple[StatusLine | None, Callable[[str], None]]:
    """A status line when stdout is a terminal, and how other lines are printed."""
    from connectors.display import StatusLine

    if not sys.stdout.isatty():
        return None, typer.echo
    live = StatusLine(sys.stdout)
    return live, live.echo


@app.command("run")
def run_connectors(
    config: ConfigArg,
    bootstrap_servers: BootstrapOption = None,
    metrics_port: MetricsPortOption = None,
    metrics_host: MetricsHostOption = None,
    until_idle: Annotated[
        float | None,
        typer.Option(
            help="Stop each connector after this many seconds without anything to move "
            "(default: run until Ctrl-C or SIGTERM)."
        ),
    ] = None,
    progress_every: Annotated[
        float,
        typer.Option(
            help="Seconds between progress lines when the output is not a terminal.", min=0.1
        ),
    ] = 5.0,
    only: OnlyOption = None,
    log_level: LogLevelOption = None,
    client_log_level: ClientLogLevelOption = None,
) -> None:
    """Run the connectors of a config file until Ctrl-C or SIGTERM.

    Each connector is checked first (as 'exchange connect check' does); then
    sources publish new rows, sinks write delivered records, files are
    imported or exported. In a terminal, a status line at the bottom shows
    each connector's progress: for a first load (全量初始化, a source that
    has no saved position yet) the rows done of the estimated total, the
    rate and the time left. Otherwise (a log file, the journal) a progress
    line (rows read, published, written, last checkpoint, and the same
    first-load figures) is printed every --progress-every seconds. On Ctrl-C or
    SIGTERM each connector finishes the batch it is moving and saves its
    position; after a crash it resumes from the last saved one.
    """
    from connectors import runner
    from connectors.base import ConnectorMetrics

    setup_logging(log_level, client_log_level)
    loaded = _load(config)
    bus = guarded(connection)(bootstrap_servers)
    metrics = ConnectorMetrics()
    server = serve_metrics(metrics.registry, metrics_port, metrics_host)

    live, echo = _output()

    async def go() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        connectors = await runner.build(
            loaded,
            bus,
            environ=os.environ,
            metrics=metrics,
            only=only,
        )
        await runner.run_all(
            connectors,
            stop=stop,
            echo=echo,
            idle_exit_s=until_idle,
            progress_every_s=progress_every,
            status=live.show if live is not None else None,
        )

    try:
        run(go())
    finally:
        if live is not None:
            live.clear()
        if server is not None:
            server.shutdown()
            server.server_close()
    typer.echo("connectors stopped")
