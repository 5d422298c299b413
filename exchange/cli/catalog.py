"""``exchange catalog``: validate, load and show the resource catalog (政务信息资源目录)."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from exchange.catalog.loader import load_catalog
from exchange.catalog.model import Catalog
from exchange.cli.common import (
    BootstrapOption,
    connection,
    fail,
    guarded,
    print_json,
    run,
    signing_key,
    table,
)
from exchange.control import catalog_store
from exchange.errors import CatalogErrors

app = typer.Typer(help="The resource catalog and its shared list (共享清单).", no_args_is_help=True)

DirArg = Annotated[
    Path, typer.Argument(help="Catalog directory (departments.yaml, resources/, avro/).")
]


def _load(directory: Path) -> Catalog:
    try:
        return load_catalog(directory)
    except CatalogErrors as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None


@app.command()
def validate(directory: DirArg) -> None:
    """Check every rule of a catalog directory without touching the bus."""
    cat = _load(directory)
    fields = sum(len(r.fields) for r in cat.resources.values())
    typer.echo(
        f"catalog OK: {len(cat.departments)} departments, {len(cat.resources)} resources, "
        f"{fields} fields"
    )


@app.command()
def load(
    directory: DirArg,
    bootstrap_servers: BootstrapOption = None,
    actor: Annotated[
        str,
        typer.Option(
            "--as",
            "--actor",
            help="Who loads it. Once the catalog in force names catalog administrators "
            "(catalog_admin: true), this must be one of them, by department id, with --key. "
            "Otherwise any name, for the record (default: your user name).",
            show_default=False,
        ),
    ] = "",
    key: Annotated[
        Path | None,
        typer.Option(
            "--key",
            envvar="EXCHANGE_KEY_FILE",
            help="PEM file with the administrator's Ed25519 private key, to sign the load "
            "('exchange keys generate' makes one).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Publish a catalog and its schemas to the bus, all or nothing.

    A changed schema of an existing resource must be BACKWARD compatible with
    the version in force, or the whole load is rejected.

    Once the catalog in force names catalog administrators (目录管理员), only a
    load by one of them, signed with their key, replaces it; any other load is
    refused and audited, and nothing is written. The first catalog, and loads
    while the catalog in force names no administrator, need no signature.
    """
    cat = _load(directory)
    bus = guarded(connection)(bootstrap_servers)
    change = run(
        catalog_store.load(bus, cat, actor=actor or getpass.getuser(), signing_key=signing_key(key))
    )
    if change.empty:
        typer.echo(f"catalog unchanged (version {change.version} is in force)")
        return
    signed = f", signed by {actor}" if key is not None else ""
    typer.echo(f"catalog version {change.version} loaded on {bus}{signed}")
    for label, items in (
        ("added", change.added),
        ("removed", change.removed),
        ("schema changed", change.schema_changed),
        ("policy changed", change.policy_changed),
        ("departments changed", change.departments_changed),
    ):
        if items:
            typer.echo(f"  {label}: {', '.join(items)}")


@app.command()
def show(
    bootstrap_servers: BootstrapOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    directory: Annotated[
        Path | None, typer.Option("--dir", help="Show a catalog directory instead of the bus's.")
    ] = None,
) -> None:
    """Show the catalog in force: resources, providers and share types per field."""
    if directory is not None:
        cat, version = _load(directory), None
    else:
        snap = run(catalog_store.current(guarded(connection)(bootstrap_servers)))
        if snap is None:
            raise fail("no catalog loaded yet: run 'exchange catalog load schemas/'")
        cat, version = snap.catalog, snap.version
    if as_json:
        data = cat.model_dump(mode="json", by_alias=True)
        data["version"] = version
        print_json(data)
        return
    if version is not None:
        typer.echo(f"catalog version {version}\n")
    rows = [
        [
            r.id,
            r.name_zh,
            r.provider,
            f"{r.share.type.value} {r.share.type.zh}",
            " ".join(f"{f.name}:{f.share_type.value[0].upper()}" for f in r.fields),
        ]
        for r in cat.resources.values()
    ]
    typer.echo(table(rows, ["resource", "名称", "provider", "share type", "fields (U/C/N)"]))
