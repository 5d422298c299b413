"""The ``exchange`` command line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.cli import broker, catalog, data, router, sharing

app = typer.Typer(
    help="Inter-department data exchange bus (政务数据共享交换总线): Avro records on Kafka, "
    "routed through the shared list (共享清单).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(broker.app, name="broker")
app.add_typer(catalog.app, name="catalog")
app.command("sample")(data.sample_cmd)
app.command()(data.publish)
app.command()(data.consume)
app.command()(sharing.subscribe)
app.command()(sharing.explain)
app.command("apply")(sharing.apply)
app.command()(sharing.approve)
app.command()(sharing.reject)
app.command()(sharing.revoke)
app.command()(sharing.applications)
app.command()(router.router)


def main() -> None:
    app()


@app.command()
def demo(
    catalog_dir: Annotated[Path, typer.Option("--catalog", help="Catalog directory.")] = Path(
        "schemas"
    ),
) -> None:
    """Run the 出生一件事 ("one thing" for a newborn) scenario end to end and clean up.

    Starts an embedded broker (or uses EXCHANGE_BOOTSTRAP_SERVERS) and a router,
    then shows what each department received and what was denied, and why.
    """
    from exchange.cli.common import run
    from exchange.demo import run_demo

    run(run_demo(catalog_dir, echo=typer.echo))
