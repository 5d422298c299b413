"""``exchange broker``: the embedded Kafka-protocol broker for development and demos."""

from __future__ import annotations

from typing import Annotated

import typer

from exchange.cli.common import guarded, settings
from exchange.dev import broker

app = typer.Typer(
    help="Start, stop or inspect the embedded Kafka-protocol broker (Tansu, memory only: "
    "for development, demos and tests; production uses a real Kafka cluster).",
    no_args_is_help=True,
)


@app.command()
@guarded
def start(
    port: Annotated[
        int | None, typer.Option(help="Port on 127.0.0.1 (default: a free one).")
    ] = None,
) -> None:
    """Start the embedded broker and print its bootstrap address."""
    info, started = broker.start(settings().state_dir, port)
    if started:
        typer.echo(f"embedded broker started (pid {info.pid}), bootstrap servers: {info.bootstrap}")
    else:
        typer.echo(
            f"embedded broker already running (pid {info.pid}), bootstrap servers: {info.bootstrap}"
        )


@app.command()
def stop() -> None:
    """Stop the embedded broker started by 'exchange broker start' (its data is lost)."""
    info = broker.stop(settings().state_dir)
    if info is None:
        typer.echo("no embedded broker is running")
    else:
        typer.echo(f"embedded broker stopped (pid {info.pid}, {info.bootstrap})")


@app.command()
def status() -> None:
    """Say whether the embedded broker runs, and where. Exit code 1 if it does not."""
    info = broker.status(settings().state_dir)
    if info is None:
        typer.echo("no embedded broker is running; start one with 'exchange broker start'")
        raise typer.Exit(1)
    typer.echo(f"running (pid {info.pid}), bootstrap servers: {info.bootstrap}, log: {info.log}")
