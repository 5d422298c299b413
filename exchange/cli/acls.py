"""``exchange acls``: Kafka ACLs that confine each department at the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.admin import acls as acl_model
from exchange.catalog.loader import load_catalog
from exchange.cli.common import fail, guarded, print_json, settings


@guarded
def acls(
    catalog_dir: Annotated[Path, typer.Option("--catalog", help="Catalog directory.")] = Path(
        "schemas"
    ),
    output_format: Annotated[
        str, typer.Option("--format", help="kafka-acls (a kafka-acls.sh script) or json.")
    ] = "kafka-acls",
    apply_to: Annotated[
        str | None,
        typer.Option(
            "--apply",
            help="Create the ACLs on this real Kafka cluster (HOST:PORT) through its admin API. "
            "The embedded broker has no ACL support.",
        ),
    ] = None,
) -> None:
    """Generate the Kafka ACLs that confine each department (principal User:<dept>).

    A department may write gov.src.<dept>.* and read gov.dlv.<dept>.* with
    consumer groups <dept>.*; the router (User:gov-router) reads sources and
    writes deliveries; catalog-admin loads the catalog; auditor reads gov.audit.
    """
    rules = acl_model.generate(load_catalog(catalog_dir), router_group=settings().router_group)
    if apply_to:
        n = acl_model.apply(rules, apply_to)
        typer.echo(f"created {n} ACL bindings on {apply_to}")
        return
    if output_format == "json":
        print_json(acl_model.to_json(rules))
    elif output_format == "kafka-acls":
        typer.echo(acl_model.to_kafka_acls(rules), nl=False)
    else:
        raise fail(f"--format {output_format!r}: use kafka-acls or json")
