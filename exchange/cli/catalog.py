"""``exchange catalog``: validate, load and show the resource catalog (政务信息资源目录)."""

from __future__ import annotations

import datetime as dt
import getpass
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from exchange.beijing import china_date
from exchange.catalog.calendar import calendar_check
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
from exchange.sharing.records import now

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


def _calendar(directory: Path, cat: Catalog, today: dt.date | None, *, strict: bool) -> None:
    """Say what the holiday calendar lacks on ``today``; exit 2 on an error if ``strict``."""
    check = calendar_check(directory, cat.calendar, today or china_date(now()))
    for notice in check.notices:
        typer.secho(f"notice: {notice}", fg=typer.colors.CYAN, err=True)
    for warning in check.warnings:
        typer.secho(f"warning: {warning}", fg=typer.colors.YELLOW, err=True)
    if check.errors and strict:
        typer.secho(str(CatalogErrors(check.errors)), fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    for error in check.errors:
        typer.secho(f"warning: {error}", fg=typer.colors.YELLOW, err=True)


TodayOption = Annotated[
    datetime | None,
    typer.Option(
        "--today",
        formats=["%Y-%m-%d"],
        help="Check the holiday calendar as on this (Beijing) date instead of today, "
        "e.g. to see whether the catalog still passes on 1 January.",
        show_default=False,
    ),
]


@app.command()
def validate(directory: DirArg, today: TodayOption = None) -> None:
    """Check every rule of a catalog directory without touching the bus.

    The holiday calendar (calendar/<year>.yaml, 法定节假日 and 调休): fails
    when the current year has no data (neither the chinesecalendar package
    nor a file), or when a deadline starting today reaches into a year
    without data; warns from 1 October when next year has none yet; notes a
    file that contradicts the package (the file wins).
    """
    cat = _load(directory)
    _calendar(directory, cat, today.date() if today else None, strict=True)
    fields = sum(len(r.fields) for r in cat.resources.values())
    typer.echo(
        f"catalog OK: {len(cat.departments)} departments, {len(cat.resources)} resources, "
        f"{fields} fields, holiday calendar files: "
        + (", ".join(str(y.year) for y in cat.calendar) or "none")
    )
    typer.echo(_workflow_line(cat))


def _workflow_line(cat: Catalog) -> str:
    """The sharing workflow the catalog sets (workflow.yaml, the authority)."""
    bureau = cat.authority()
    limits = cat.workflow.time_limits
    unpublished = limits.answer_unpublished or limits.answer
    return (
        "sharing workflow: data-sharing authority (主管部门) "
        + (bureau.id if bureau else "none")
        + ", compliance review (符合性审查) "
        + ("on" if cat.workflow.compliance_review else "off")
        + f"; time limits in working days: review {limits.review}, answer {limits.answer} "
        f"({unpublished} not yet on the platform), negotiation {limits.negotiation}, "
        f"decision {limits.decision}"
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
    allow_unsigned: Annotated[
        str | None,
        typer.Option(
            "--allow-unsigned",
            metavar="REASON",
            help="Load a catalog without signatures_required: true on a bus other than the "
            "embedded development broker anyway, for REASON (recorded in the audit log). "
            "Without it such a load is refused.",
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

    Outside the embedded development broker a catalog must set
    signatures_required: true (every department keyed and signing); another one
    is refused and audited unless --allow-unsigned REASON is given.
    """
    cat = _load(directory)
    _calendar(directory, cat, None, strict=False)  # a late holiday file never blocks a load
    bus = guarded(connection)(bootstrap_servers)
    change = run(
        catalog_store.load(
            bus,
            cat,
            actor=actor or getpass.getuser(),
            signing_key=signing_key(key),
            unsigned_override=allow_unsigned,
        )
    )
    if change.empty:
        typer.echo(f"catalog unchanged (version {change.version} is in force)")
        return
    signed = f", signed by {actor}" if key is not None else ""
    typer.echo(f"catalog version {change.version} loaded on {bus}{signed}")
    if allow_unsigned and not cat.signatures_required and not bus.development:
        typer.secho(
            f"warning: loaded without signatures_required, by override: {allow_unsigned}",
            fg=typer.colors.YELLOW,
            err=True,
        )
    for label, items in (
        ("added", change.added),
        ("removed", change.removed),
        ("schema changed", change.schema_changed),
        ("policy changed", change.policy_changed),
        ("departments changed", change.departments_changed),
        ("holiday calendar changed", change.calendar_changed),
        ("service identities changed", change.services_changed),
        ("workflow changed (new applications only)", change.workflow_changed),
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
