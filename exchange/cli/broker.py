"""``exchange broker``: start, stop or inspect the development broker of either engine.

``embedded`` (the default) is Tansu from a PyPI wheel: it starts in well under a
second and keeps everything in memory. ``kafka`` is Apache Kafka in KRaft mode
(``exchange/dev/kafka.py``): durable, with SASL users and ACLs enforced. The
state directory remembers the Kafka cluster's data directory (``kafka.json``),
so ``stop`` and ``start`` resume the same cluster.
"""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from exchange.cli.common import fail, guarded, settings
from exchange.dev import broker, engines

if TYPE_CHECKING:
    from exchange.dev.kafka import KafkaCluster

app = typer.Typer(
    help="Start, stop or inspect the development broker: the embedded one (Tansu, memory "
    "only: demos and tests) or a durable Apache Kafka cluster (KRaft, SASL users, ACLs).",
    no_args_is_help=True,
)


class Engine(enum.StrEnum):
    embedded = "embedded"
    kafka = "kafka"


# --- the Kafka cluster the CLI started, remembered in the state directory -----------------


def _start_kafka(state_dir: Path, nodes: int | None, data_dir: Path | None) -> None:
    if broker.status(state_dir) is not None:
        raise fail("the embedded broker runs; stop it first with 'exchange broker stop'")
    running = engines.running_kafka(state_dir)
    if running is not None and (data_dir is None or data_dir.resolve() == running.dir):
        typer.echo(f"Apache Kafka already running, bootstrap servers: {running.bootstrap}")
        return
    if running is not None:
        raise fail(f"Apache Kafka already runs from {running.dir}; stop it first")
    cluster = engines.kafka_cluster(state_dir, data_dir, nodes)
    resumed = cluster.formatted
    began = time.monotonic()
    cluster.start()
    engines.remember(state_dir, cluster)
    what = "resumed from" if resumed else "formatted in"
    typer.echo(
        f"Apache Kafka started ({cluster.nodes} node(s), {what} {cluster.dir}, serving after "
        f"{time.monotonic() - began:.1f} s), bootstrap servers: {cluster.bootstrap}"
    )
    typer.echo(
        f"SASL_PLAINTEXT, SCRAM-SHA-512; super user 'admin', password in {cluster.password_file}. "
        "Its data survives 'exchange broker stop'."
    )


def _describe_kafka(cluster: KafkaCluster) -> None:
    running = cluster.running()
    state = "running" if len(running) == cluster.nodes else "stopped"
    if running and state == "stopped":
        state = f"degraded: nodes {', '.join(map(str, running))} of {cluster.nodes} run"
    typer.echo(f"engine: Apache Kafka {cluster.kafka_version} (KRaft), {state}")
    typer.echo(f"nodes: {cluster.nodes}, each broker and controller")
    typer.echo(f"bootstrap servers: {cluster.bootstrap}")
    for node in cluster.node_ids:
        typer.echo(
            f"  node {node}: CLIENT 127.0.0.1:{cluster.client_port(node)} (SASL_PLAINTEXT, "
            f"SCRAM-SHA-512), CONTROLLER 127.0.0.1:{cluster.controller_port(node)} "
            f"(SASL_PLAINTEXT, PLAIN), pid {cluster.pid(node) or '-'}, "
            f"log {cluster.log_path(node)}"
        )
    typer.echo(f"data directory: {cluster.dir} (survives a restart: yes)")
    typer.echo(
        f"super user: admin, password in {cluster.password_file}, "
        f"Kafka client config in {cluster.client_config_file}"
    )


@app.command()
@guarded
def start(
    engine: Annotated[
        Engine, typer.Option(help="embedded: Tansu, in memory; kafka: Apache Kafka, durable.")
    ] = Engine.embedded,
    port: Annotated[
        int | None,
        typer.Option(help="Port on 127.0.0.1 of the embedded broker (default: a free one)."),
    ] = None,
    nodes: Annotated[
        int | None,
        typer.Option(
            min=1, max=3, help="Kafka: 1 or 3 nodes at the first start (default 1); kept after."
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Kafka: the cluster's data directory (default: the last one used, else "
            "kafka/ in the state directory).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start a broker on 127.0.0.1 and print its bootstrap address."""
    state_dir = settings().state_dir
    if engine is Engine.kafka:
        if port is not None:
            raise fail(
                "--port is for the embedded broker; Kafka keeps the ports of its first start"
            )
        _start_kafka(state_dir, nodes, data_dir)
        return
    if nodes is not None or data_dir is not None:
        raise fail("--nodes and --data-dir are for --engine kafka")
    kafka = engines.running_kafka(state_dir)
    if kafka is not None:
        raise fail(
            f"Apache Kafka runs ({kafka.bootstrap}); stop it first with 'exchange broker stop'"
        )
    info, started = broker.start(state_dir, port)
    if started:
        typer.echo(f"embedded broker started (pid {info.pid}), bootstrap servers: {info.bootstrap}")
        typer.echo(
            "It keeps everything in memory: nothing survives a restart. "
            "For a durable broker: 'exchange broker start --engine kafka'."
        )
    else:
        typer.echo(
            f"embedded broker already running (pid {info.pid}), bootstrap servers: {info.bootstrap}"
        )


@app.command()
@guarded
def stop() -> None:
    """Stop the broker: the embedded one loses its data, Apache Kafka keeps it."""
    state_dir = settings().state_dir
    info = broker.stop(state_dir)
    if info is not None:
        typer.echo(f"embedded broker stopped (pid {info.pid}, {info.bootstrap})")
    kafka = engines.running_kafka(state_dir)
    if kafka is not None:
        kafka.stop()
        typer.echo(
            f"Apache Kafka stopped ({kafka.nodes} node(s)); its data is kept in {kafka.dir}: "
            "'exchange broker start --engine kafka' resumes it"
        )
    if info is None and kafka is None:
        typer.echo("no embedded broker is running")


@app.command()
@guarded
def status() -> None:
    """Say which broker runs, where, and what survives a restart. Exit code 1 if none runs."""
    state_dir = settings().state_dir
    info = broker.status(state_dir)
    if info is not None:
        typer.echo(
            f"running (pid {info.pid}), bootstrap servers: {info.bootstrap}, log: {info.log}\n"
            "engine: embedded (Tansu), memory only: its data does not survive a restart"
        )
        return
    if engines.remembered_dir(state_dir) is not None:
        cluster = engines.kafka_cluster(state_dir)
        if cluster.formatted:
            _describe_kafka(cluster)
            if cluster.running():
                return
            typer.echo("'exchange broker start --engine kafka' resumes it")
            raise typer.Exit(1)
    typer.echo("no embedded broker is running; start one with 'exchange broker start'")
    raise typer.Exit(1)
