"""``exchange acls``: Kafka ACLs that confine each department at the broker."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from exchange.admin import acls as acl_model
from exchange.catalog.loader import load_catalog
from exchange.cli.common import BootstrapOption, connection, fail, guarded, print_json, settings


@guarded
def acls(
    catalog_dir: Annotated[Path, typer.Option("--catalog", help="Catalog directory.")] = Path(
        "schemas"
    ),
    output_format: Annotated[
        str, typer.Option("--format", help="kafka-acls (a kafka-acls.sh script) or json.")
    ] = "kafka-acls",
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Create every principal's SCRAM user and every ACL on the Kafka cluster of "
            "--bootstrap-servers, as its super user (EXCHANGE_SECURITY_PROTOCOL=SASL_PLAINTEXT "
            "or SASL_SSL, EXCHANGE_SASL_USERNAME, EXCHANGE_SASL_PASSWORD_FILE). The embedded "
            "broker has no users or ACLs.",
        ),
    ] = False,
    credentials_dir: Annotated[
        Path,
        typer.Option(
            "--credentials-dir",
            help="With --apply: where each principal's password is kept, as "
            "<principal>.password (0600; generated once, then re-used). Hand each "
            "department its own file.",
        ),
    ] = Path("credentials"),
    bootstrap_servers: BootstrapOption = None,
) -> None:
    """Generate the Kafka ACLs that confine each department (principal User:<dept>).

    A department may write gov.src.<dept>.* and read gov.dlv.<dept>.* with
    consumer groups <dept>.*; the router (User:gov-router) reads sources and
    writes deliveries; catalog-admin loads the catalog; auditor reads gov.audit.
    With --apply, the users (SASL/SCRAM-SHA-512) and the ACLs are created on the
    cluster instead of printed.
    """
    catalog = load_catalog(catalog_dir)
    rules = acl_model.generate(catalog, router_group=settings().router_group)
    if apply:
        from exchange.admin import users

        admin = connection(bootstrap_servers)
        done = users.provision(
            admin, catalog, credentials_dir, router_group=settings().router_group
        )
        typer.echo(
            f"{len(done.users)} users ({', '.join(done.users)}) and {done.acl_bindings} ACL "
            f"bindings on {admin.bootstrap}; passwords in {done.credentials}/<user>.password"
        )
        return
    if output_format == "json":
        print_json(acl_model.to_json(rules))
    elif output_format == "kafka-acls":
        typer.echo(acl_model.to_kafka_acls(rules), nl=False)
    else:
        raise fail(f"--format {output_format!r}: use kafka-acls or json")
