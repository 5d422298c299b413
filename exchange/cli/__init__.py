"""The ``exchange`` command line.

Only typer is imported here: each command's module is imported when that
command runs (:mod:`exchange.cli.lazy`), so ``exchange --help`` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli.lazy import LazyGroup

app = typer.Typer(
    help="Inter-department data exchange bus (政务数据共享交换总线): Avro records on Kafka, "
    "routed through the shared list (共享清单).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # the root help in plain text: rich's formatter alone took 0.2 s of 'exchange --help'
    rich_markup_mode=None,
    cls=LazyGroup,
)


def main() -> None:
    app()


@app.command()
def demo(
    catalog_dir: Annotated[Path, typer.Option("--catalog", help="Catalog directory.")] = Path(
        "schemas"
    ),
    engine: Annotated[
        str,
        typer.Option(
            help="embedded: an embedded broker started for the run, in memory (or "
            "EXCHANGE_BOOTSTRAP_SERVERS); kafka: the Apache Kafka cluster that 'exchange broker "
            "start --engine kafka' started, where every department, the router and the "
            "catalog administrator get their own user and ACLs, and everything stays.",
        ),
    ] = "embedded",
) -> None:
    """Run the 出生一件事 ("one thing" for a newborn) scenario end to end and clean up.

    Starts an embedded broker (or uses EXCHANGE_BOOTSTRAP_SERVERS, or the Apache
    Kafka cluster with --engine kafka) and a router, then shows what each
    department received and what was denied, and why.
    """
    from exchange.cli.common import fail, run, settings
    from exchange.dev import engines
    from exchange.dev.demo import run_demo

    if engine not in ("embedded", "kafka"):
        raise fail(f"--engine {engine!r}: use embedded or kafka")
    cluster = None
    if engine == "kafka":
        cluster = engines.running_kafka(settings().state_dir)
        if cluster is None:
            raise fail(
                "no Apache Kafka cluster is running: start one with "
                "'exchange broker start --engine kafka --nodes 3'"
            )
    run(run_demo(catalog_dir, echo=typer.echo, kafka=cluster))


@app.command()
def bench(
    quick: Annotated[
        bool,
        typer.Option(
            help="A smaller run, under a minute on 2 cores (the full run takes about 11 "
            "minutes, and on the embedded broker its last rows measure the broker)."
        ),
    ] = False,
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Also write the figures to this JSON file.")
    ] = None,
    engine: Annotated[
        str,
        typer.Option(
            help="embedded: an embedded broker started for the run (or "
            "EXCHANGE_BOOTSTRAP_SERVERS); kafka: a throwaway Apache Kafka cluster started for "
            "the run in a temporary directory and stopped at the end (or "
            "EXCHANGE_BOOTSTRAP_SERVERS, or with --running the cluster 'exchange broker start "
            "--engine kafka' started), each role with its own user and ACLs.",
        ),
    ] = "embedded",
    nodes: Annotated[
        int, typer.Option(min=1, max=3, help="Nodes of the throwaway Kafka cluster: 1 or 3.")
    ] = 1,
    running: Annotated[
        bool,
        typer.Option(
            help="--engine kafka: measure on the cluster 'exchange broker start --engine "
            "kafka' started instead (it gets the bench's catalog, users and ACLs, and keeps "
            "them: use a cluster of its own)."
        ),
    ] = False,
) -> None:
    """Measure routing speed, latency, policy scale and memory beside raw-Kafka baselines.

    Starts an embedded broker (or, with --engine kafka, an Apache Kafka cluster)
    unless EXCHANGE_BOOTSTRAP_SERVERS is set. Each row gives the value, the
    baseline measured in the same run, their ratio, the target and whether it
    is met; the table and the JSON say which engine.
    """
    from exchange.cli.common import fail, run, settings
    from exchange.dev import bench_backfill, engines
    from exchange.dev.bench import format_rows, run_bench, write_json

    if engine not in ("embedded", "kafka"):
        raise fail(f"--engine {engine!r}: use embedded or kafka")
    if nodes not in (1, 3):
        raise fail(f"--nodes {nodes}: a cluster has 1 or 3 nodes")
    if running and engine != "kafka":
        raise fail("--running is for --engine kafka")
    cluster = None
    if running:
        cluster = engines.running_kafka(settings().state_dir)
        if cluster is None:
            raise fail(
                "no Apache Kafka cluster is running: start one with "
                "'exchange broker start --engine kafka --nodes 3', or drop --running"
            )
    rows = run(
        run_bench(
            quick,
            echo=lambda m: typer.echo(m, err=True),
            engine=engine,
            nodes=nodes,
            cluster=cluster,
            extra=bench_backfill.rows,
        )
    )
    typer.echo(format_rows(rows))
    if json_file is not None:
        write_json(rows, json_file)
